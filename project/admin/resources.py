"""Teams, heroes and powers in the admin, written through the API's own request models.

A hero's team and powers are `lazy="raise"`: sqladmin loads relationships it lists, shows or
edits with `selectinload` (they are in `column_list`, the details columns and `form_columns`),
and these views load them explicitly wherever they write.
"""

import uuid
from typing import Any, ClassVar, cast

from sqladmin.filters import ForeignKeyFilter, OperationColumnFilter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlmodel import col
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request

from project.admin.base import OwnedView, labels
from project.admin.forms import GONE, as_uuid, blank_to_none, check_version, validated
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
    utcnow,
)
from project.relations import leave_team, lose_power

TEAM_TAKEN = "This owner already has a team with this name (compared case-insensitively)."
POWER_TAKEN = "This owner already has a power with this name (compared case-insensitively)."
EMBEDDED = (selectinload(Hero.team), selectinload(Hero.powers))  # type: ignore[arg-type]


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


async def _owner(session: AsyncSession, owner_id: Any) -> uuid.UUID:
    owner = await session.get(User, as_uuid(owner_id))
    if owner is None:
        raise ValueError(GONE)
    return owner.id


class NamedView(OwnedView):
    """Teams and powers: a name unique per owner, a few plain fields, and heroes that refer
    to them. Each view says which fields it edits, its API models and what deleting it does."""

    fields: ClassVar[tuple[str, ...]]
    optional: ClassVar[frozenset[str]] = frozenset()  # an empty box means "none"
    create_schema: ClassVar[type[TeamCreate] | type[PowerCreate]]
    update_schema: ClassVar[type[TeamUpdate] | type[PowerUpdate]]
    taken: ClassVar[str]
    column_default_sort: ClassVar[Any] = [("name_key", False), ("id", False)]
    column_filters: ClassVar[list[Any]] = [_owner_filter()]

    def _body(self, data: dict[str, Any]) -> dict[str, Any]:
        body = {field: data.get(field) for field in self.fields}
        return body | {field: blank_to_none(body[field]) for field in self.optional}

    @property
    def table(self) -> type[Team] | type[Power]:
        return cast(type[Team] | type[Power], self.model)

    async def unlink(self, session: AsyncSession, row_id: uuid.UUID) -> None:
        """What the row's heroes go through when it is deleted."""
        raise NotImplementedError

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        body = validated(self.create_schema, self._body(data))
        async with self.database.session(write=True) as session:
            owner_id = await _owner(session, data["owner_id"])
            row = self.table.model_validate(body, update={"owner_id": owner_id})
            session.add(row)
            await self.commit(session, self.taken)
        return row

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        body = validated(self.update_schema, self._body(data))
        async with self.database.session(write=True) as session:
            row: Team | Power | None = await session.get(self.table, as_uuid(pk))
            if row is None:
                raise ValueError(GONE)
            check_version(row.version, data)
            row.sqlmodel_update(body.model_dump())
            await self.commit(session, self.taken)
        return row

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with self.database.session(write=True) as session:
            row: Team | Power | None = await session.get(self.table, as_uuid(pk))
            if row is None:
                return
            await self.unlink(session, row.id)
            await session.delete(row)
            await session.commit()


class TeamAdmin(NamedView, model=Team):
    icon = "fa-solid fa-people-group"
    fields = ("name", "headquarters")
    create_schema = TeamCreate
    update_schema = TeamUpdate
    taken = TEAM_TAKEN
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

    async def unlink(self, session: AsyncSession, row_id: uuid.UUID) -> None:
        await leave_team(session, row_id)


class PowerAdmin(NamedView, model=Power):
    icon = "fa-solid fa-bolt"
    fields = ("name", "description")
    create_schema = PowerCreate
    update_schema = PowerUpdate
    optional = frozenset({"description"})
    taken = POWER_TAKEN
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

    async def unlink(self, session: AsyncSession, row_id: uuid.UUID) -> None:
        await lose_power(session, row_id)


async def _team(session: AsyncSession, team_id: uuid.UUID | None, owner: uuid.UUID) -> Team | None:
    if team_id is None:
        return None
    team = await session.get(Team, team_id)
    if team is None or team.owner_id != owner:
        raise ValueError("The team must be one of the hero owner's teams.")
    return team


async def _powers(session: AsyncSession, ids: list[uuid.UUID], owner: uuid.UUID) -> list[Power]:
    wanted = set(ids)
    if not wanted:
        return []
    powers = list(await session.scalars(select(Power).where(col(Power.id).in_(wanted))))
    if len(powers) != len(wanted) or any(p.owner_id != owner for p in powers):
        raise ValueError("Every power must be one of the hero owner's powers.")
    return sorted(powers, key=lambda power: power.name_key)  # the order they load in


class HeroAdmin(OwnedView, model=Hero):
    icon = "fa-solid fa-mask"
    show_compact_lists = False  # one power a line, not "(Flight) (Speed)"
    name_plural = "Heroes"
    column_list: ClassVar[list[Any]] = ["name", "secret_name", "age", "team", "powers", "owner_id"]
    column_labels: ClassVar[dict[Any, str]] = labels(
        "name", "secret_name", "age", "team", "powers", "version", "created_at", "updated_at"
    )
    column_searchable_list: ClassVar[list[Any]] = ["name", "secret_name"]
    column_sortable_list: ClassVar[list[Any]] = ["name", "secret_name", "age"]
    column_default_sort: ClassVar[Any] = [("name_key", False), ("id", False)]
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

    def _body(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": data["name"],
            "secret_name": data["secret_name"],
            "age": data.get("age"),
            "team_id": blank_to_none(data.get("team")),
            "power_ids": data.get("powers") or [],
        }

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Hero:
        body = validated(HeroCreate, self._body(data))
        async with self.database.session(write=True) as session:
            owner_id = await _owner(session, data["owner_id"])
            fields = body.model_dump(exclude={"team_id", "power_ids"})
            hero = Hero.model_validate(fields, update={"owner_id": owner_id})
            hero.team = await _team(session, body.team_id, owner_id)
            hero.powers = await _powers(session, body.power_ids, owner_id)
            session.add(hero)
            await self.commit(session, "That conflicts with existing data.")
        return hero

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Hero:
        body = validated(HeroUpdate, self._body(data))
        async with self.database.session(write=True) as session:
            hero = await session.scalar(
                select(Hero).where(col(Hero.id) == as_uuid(pk)).options(*EMBEDDED)
            )
            if hero is None:
                raise ValueError(GONE)
            check_version(hero.version, data)
            hero.sqlmodel_update(body.model_dump(exclude={"team_id", "power_ids"}))
            hero.team = await _team(session, body.team_id, hero.owner_id)
            hero.powers = await _powers(session, body.power_ids, hero.owner_id)
            hero.updated_at = utcnow()  # an UPDATE (and a new version) even if only powers changed
            await self.commit(session, "That conflicts with existing data.")
        return hero

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with self.database.session(write=True) as session:
            hero = await session.get(Hero, as_uuid(pk))
            if hero is not None:
                await session.delete(hero)  # its power links go with it (ON DELETE CASCADE)
                await session.commit()
