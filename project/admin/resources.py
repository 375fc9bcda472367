"""The views, one per resource. A hero's team and powers are `lazy="raise"`: sqladmin loads the
relationships it lists, shows or edits itself."""

import uuid
from typing import Any, ClassVar

from fastapi import Request
from pydantic import create_model
from sqladmin.filters import BooleanFilter, OperationColumnFilter
from sqlalchemy.ext.asyncio import AsyncSession
from wtforms import PasswordField, validators

from project import models
from project.admin.auth import signed_in
from project.admin.base import OWNER_FILTER, AppView, OwnedView, UUIDForeignKeyFilter, refusals
from project.admin.forms import FormData, validated
from project.services import heroes, powers, teams, users

PASSWORD = models.UserCreate.model_fields["password"]  # the API's own rule for a password
NewPassword = create_model("NewPassword", password=(str, PASSWORD))


class UserAdmin(AppView, model=models.User):
    """The password hash is never shown: a new password is hashed, and ends the user's sessions
    as `PATCH /api/v1/users/{id}` does."""

    rules, update_schema = users, models.UserUpdate
    icon = "fa-solid fa-user"
    form_columns = ("email", "full_name", "is_active", "is_superuser")
    column_list = column_sortable_list = form_columns
    column_searchable_list = ("email", "full_name")
    column_default_sort = ("email", False)
    # What to show, not what to hide: a column added later stays hidden.
    column_details_list = ("id", *form_columns, "created_at", "updated_at")
    column_labels: ClassVar[dict[Any, str]] = {"is_active": "Active", "is_superuser": "Superuser"}
    column_filters = tuple(BooleanFilter(name, title) for name, title in column_labels.items())

    async def scaffold_form(self, rules: list[str] | None = None) -> Any:
        form = await super().scaffold_form(rules)
        password = PasswordField(
            "Password",
            validators=[validators.Optional()],
            description="Required for a new user. For an existing one, leave it empty to keep "
            "the password; a new password signs the user out everywhere.",
            render_kw={"class": "form-control", "autocomplete": "new-password"},
        )
        return type(form.__name__, (form,), {"password": password})

    def body(self, data: FormData) -> dict[str, Any]:
        rights = {right: bool(data.get(right)) for right in ("is_active", "is_superuser")}
        return rights | {"email": data["email"], "full_name": data.get("full_name") or None}

    async def insert_model(self, request: Request, data: FormData) -> Any:
        account = {"email": data["email"], "password": data.get("password") or ""}
        body = validated(models.UserCreate, account | {"full_name": data.get("full_name") or None})
        active, superuser = bool(data.get("is_active", True)), bool(data.get("is_superuser"))
        async with self.database.driver() as db, refusals():
            item = await users.create(
                db, self.hasher, body.email, body.password, body.full_name, superuser, active
            )
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def update_model(self, request: Request, pk: str, data: FormData) -> Any:
        # Setting your own password keeps this sign-in, as the API's password change does.
        mine = signed_in(request)
        data = {**data, "keep": mine[1] if mine and mine[0] == uuid.UUID(pk) else None}
        if data.get("password"):
            password = validated(NewPassword, {"password": data["password"]}).password
            data["hash"] = await self.hasher.hash(password)  # before any transaction
        return await super().update_model(request, pk, data)

    async def change(self, session: AsyncSession, row: Any, data: FormData, body: Any) -> None:
        await users.update(session, row, body, data.get("hash"), data.get("keep"))


class NamedView(OwnedView):
    """Teams and powers: plain fields, where an empty box in an `optional` one is no value."""

    optional: ClassVar[frozenset[str]] = frozenset()

    def body(self, data: FormData) -> dict[str, Any]:
        body = {field: data.get(field) for field in self.fields}
        return body | {field: body[field] or None for field in self.optional}


class TeamAdmin(NamedView, model=models.Team):
    rules, create_schema, update_schema = teams, models.TeamCreate, models.TeamUpdate
    icon = "fa-solid fa-people-group"
    fields = ("name", "headquarters")
    column_list = (*fields, "owner_id", "updated_at")
    column_searchable_list = fields
    column_sortable_list = (*fields, "updated_at")


class PowerAdmin(NamedView, model=models.Power):
    rules, create_schema, update_schema = powers, models.PowerCreate, models.PowerUpdate
    icon = "fa-solid fa-bolt"
    fields = ("name", "description")
    optional = frozenset({"description"})
    column_list = (*fields, "owner_id", "updated_at")
    column_searchable_list = fields
    column_sortable_list = ("name", "updated_at")


class HeroAdmin(OwnedView, model=models.Hero):
    rules, create_schema, update_schema = heroes, models.HeroCreate, models.HeroUpdate
    icon = "fa-solid fa-mask"
    name_plural = "Heroes"
    show_compact_lists = False  # one power a line, not "(Flight) (Speed)"
    fields = ("name", "secret_name", "age", "team", "powers")
    column_list = (*fields, "owner_id")
    column_searchable_list = ("name", "secret_name")
    column_sortable_list = ("name", "secret_name", "age")
    column_filters = (
        UUIDForeignKeyFilter("team_id", "name", foreign_model=models.Team, title="Team"),
        OWNER_FILTER,
        OperationColumnFilter("age", title="Age"),
    )
    form_args: ClassVar[dict[str, dict[str, Any]]] = {"team": {"blank_text": "(no team)"}}

    def body(self, data: FormData) -> dict[str, Any]:
        named = {field: data.get(field) for field in ("name", "secret_name", "age")}
        return named | {"team_id": data.get("team") or None, "power_ids": data.get("powers") or []}
