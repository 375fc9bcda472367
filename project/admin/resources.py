"""Teams, heroes and powers in the admin: sqladmin's pages, the services' rules.

A hero's team and powers are `lazy="raise"`: sqladmin loads relationships it lists, shows or
edits with `selectinload` (they are in `column_list`, the details columns and `form_columns`).
"""

from types import ModuleType
from typing import Any, ClassVar

from sqladmin.filters import ForeignKeyFilter, OperationColumnFilter
from starlette import status
from starlette.exceptions import HTTPException

from project.admin.base import OwnedView, labels
from project.admin.forms import as_uuid, blank_to_none
from project.models import (
    Hero,
    HeroCreate,
    HeroUpdate,
    Power,
    PowerCreate,
    PowerUpdate,
    Team,
    TeamCreate,
    TeamUpdate,
    User,
)
from project.services import heroes, powers, teams


class UUIDForeignKeyFilter(ForeignKeyFilter):
    """sqladmin's filter passes the query-string value as is; a UUID column wants a UUID."""

    async def get_filtered_query(self, query: Any, value: Any, model: Any) -> Any:
        if value not in (None, "", "__all"):  # "__all" (or nothing): no filter
            try:
                value = as_uuid(value)
            except ValueError:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "Not an id.") from None
        return await super().get_filtered_query(query, value, model)


def _owner_filter() -> UUIDForeignKeyFilter:
    return UUIDForeignKeyFilter("owner_id", "email", foreign_model=User, title="Owner")


class NamedView(OwnedView):
    """Teams and powers: a name, a few plain fields; an empty box in an `optional` one is
    no value."""

    fields: ClassVar[tuple[str, ...]]
    optional: ClassVar[frozenset[str]] = frozenset()
    column_filters: ClassVar[list[Any]] = [_owner_filter()]

    def body(self, data: dict[str, Any]) -> dict[str, Any]:
        body = {field: data.get(field) for field in self.fields}
        return body | {field: blank_to_none(body[field]) for field in self.optional}


class TeamAdmin(NamedView, model=Team):
    rules: ClassVar[ModuleType] = teams
    icon = "fa-solid fa-people-group"
    fields = ("name", "headquarters")
    create_schema = TeamCreate
    update_schema = TeamUpdate
    column_list: ClassVar[list[Any]] = ["name", "headquarters", "owner_id", "updated_at"]
    column_labels: ClassVar[dict[Any, str]] = labels(
        "name", "headquarters", "version", "created_at", "updated_at"
    )
    column_searchable_list: ClassVar[list[Any]] = ["name", "headquarters"]
    column_sortable_list: ClassVar[list[Any]] = ["name", "headquarters", "updated_at"]
    column_details_list: ClassVar[list[Any]] = [
        "id",
        "name",
        "headquarters",
        "owner_id",
        "version",
        "created_at",
        "updated_at",
    ]
    form_columns: ClassVar[list[Any]] = ["owner_id", "name", "headquarters", "version"]
    form_create_rules: ClassVar[list[str]] = ["owner_id", "name", "headquarters"]
    form_edit_rules: ClassVar[list[str]] = ["name", "headquarters", "version"]


class PowerAdmin(NamedView, model=Power):
    rules: ClassVar[ModuleType] = powers
    icon = "fa-solid fa-bolt"
    fields = ("name", "description")
    create_schema = PowerCreate
    update_schema = PowerUpdate
    optional = frozenset({"description"})
    column_list: ClassVar[list[Any]] = ["name", "description", "owner_id", "updated_at"]
    column_labels: ClassVar[dict[Any, str]] = labels(
        "name", "description", "version", "created_at", "updated_at"
    )
    column_searchable_list: ClassVar[list[Any]] = ["name", "description"]
    column_sortable_list: ClassVar[list[Any]] = ["name", "updated_at"]
    column_details_list: ClassVar[list[Any]] = [
        "id",
        "name",
        "description",
        "owner_id",
        "version",
        "created_at",
        "updated_at",
    ]
    form_columns: ClassVar[list[Any]] = ["owner_id", "name", "description", "version"]
    form_create_rules: ClassVar[list[str]] = ["owner_id", "name", "description"]
    form_edit_rules: ClassVar[list[str]] = ["name", "description", "version"]


class HeroAdmin(OwnedView, model=Hero):
    rules: ClassVar[ModuleType] = heroes
    create_schema = HeroCreate
    update_schema = HeroUpdate
    icon = "fa-solid fa-mask"
    show_compact_lists = False  # one power a line, not "(Flight) (Speed)"
    name_plural = "Heroes"
    column_list: ClassVar[list[Any]] = ["name", "secret_name", "age", "team", "powers", "owner_id"]
    column_labels: ClassVar[dict[Any, str]] = labels(
        "name", "secret_name", "age", "team", "powers", "version", "created_at", "updated_at"
    )
    column_searchable_list: ClassVar[list[Any]] = ["name", "secret_name"]
    column_sortable_list: ClassVar[list[Any]] = ["name", "secret_name", "age"]
    column_filters: ClassVar[list[Any]] = [
        UUIDForeignKeyFilter("team_id", "name", foreign_model=Team, title="Team"),
        _owner_filter(),
        OperationColumnFilter("age", title="Age"),
    ]
    column_details_list: ClassVar[list[Any]] = [
        "id",
        "name",
        "secret_name",
        "age",
        "team",
        "powers",
        "owner_id",
        "version",
        "created_at",
        "updated_at",
    ]
    form_columns: ClassVar[list[Any]] = [
        "owner_id",
        "name",
        "secret_name",
        "age",
        "team",
        "powers",
        "version",
    ]
    form_create_rules: ClassVar[list[str]] = [
        "owner_id",
        "name",
        "secret_name",
        "age",
        "team",
        "powers",
    ]
    form_edit_rules: ClassVar[list[str]] = [
        "name",
        "secret_name",
        "age",
        "team",
        "powers",
        "version",
    ]
    form_args: ClassVar[dict[str, dict[str, Any]]] = {"team": {"blank_text": "(no team)"}}

    def body(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": data["name"],
            "secret_name": data["secret_name"],
            "age": data.get("age"),
            "team_id": blank_to_none(data.get("team")),
            "power_ids": data.get("powers") or [],
        }
