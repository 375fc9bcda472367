"""Users in the admin. The password hash is never shown: a superuser sets a new password,
which is hashed like any other, and a new password or deactivation ends the user's sessions
exactly as `PATCH /api/v1/users/{id}` does."""

from types import ModuleType
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from sqladmin.filters import BooleanFilter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from wtforms import PasswordField, validators

from project.admin.auth import signed_in
from project.admin.base import AppView, labels, refusals
from project.admin.forms import blank_to_none, validated
from project.models import PASSWORD_MAX, PASSWORD_MIN, User, UserCreate, UserUpdate
from project.services import users
from project.text import NO_NUL

HELP = (
    "Required for a new user. For an existing one, leave it empty to keep the password; "
    "a new password signs the user out everywhere."
)


class NewPassword(BaseModel):
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, pattern=NO_NUL)


class UserAdmin(AppView, model=User):
    rules: ClassVar[ModuleType] = users
    update_schema = UserUpdate
    icon = "fa-solid fa-user"
    column_list: ClassVar[list[Any]] = ["email", "full_name", "is_active", "is_superuser"]
    column_labels: ClassVar[dict[Any, str]] = labels(
        "email", "full_name", "created_at", "updated_at"
    ) | {
        "is_active": "Active",
        "is_superuser": "Superuser",
    }
    column_searchable_list: ClassVar[list[Any]] = ["email", "full_name"]
    column_sortable_list: ClassVar[list[Any]] = ["email", "full_name", "is_active", "is_superuser"]
    column_default_sort: ClassVar[Any] = [("email", False)]
    column_filters: ClassVar[list[Any]] = [
        BooleanFilter("is_active", title="Active"),
        BooleanFilter("is_superuser", title="Superuser"),
    ]
    # A list of what to show, not of what to hide: a column added later stays hidden.
    column_details_list: ClassVar[list[Any]] = [
        "id",
        "email",
        "full_name",
        "is_active",
        "is_superuser",
        "created_at",
        "updated_at",
    ]
    form_columns: ClassVar[list[Any]] = ["email", "full_name", "is_active", "is_superuser"]

    async def scaffold_form(self, rules: list[str] | None = None) -> Any:
        form = await super().scaffold_form(rules)
        password = PasswordField(
            "Password",
            validators=[validators.Optional()],
            description=HELP,
            render_kw={"class": "form-control", "autocomplete": "new-password"},
        )
        return type(form.__name__, (form,), {"password": password})

    def body(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "email": data["email"],
            "full_name": blank_to_none(data.get("full_name")),
            "is_active": bool(data.get("is_active")),
            "is_superuser": bool(data.get("is_superuser")),
        }

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        account = {"email": data["email"], "password": data.get("password") or ""}
        account["full_name"] = blank_to_none(data.get("full_name"))
        body = validated(UserCreate, account)
        async with self.database.driver() as db:
            with refusals():
                item = await users.create(
                    db,
                    self.hasher,
                    body.email,
                    body.password,
                    body.full_name,
                    is_active=bool(data.get("is_active", True)),
                    is_superuser=bool(data.get("is_superuser")),
                )
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        if data.get("password"):
            password = validated(NewPassword, {"password": data["password"]}).password
            data = {**data, "hash": await self.hasher.hash(password)}  # before any transaction
        return await super().update_model(request, pk, data)

    async def change(
        self, request: Request, session: AsyncSession, row: Any, data: dict[str, Any], body: Any
    ) -> None:
        # Setting your own password keeps this sign-in, as the API's password change does.
        mine = signed_in(request)
        keep = mine[1] if mine is not None and mine[0] == row.id else None
        await users.update(session, row, body, data.get("hash"), keep)
