"""The views: they write through the API's services, never sqladmin's own rule-less writes."""

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from fastapi import HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, create_model
from sqladmin import ModelView, action
from sqladmin.fields import SelectField
from sqladmin.filters import BooleanFilter
from sqladmin.formatters import BASE_FORMATTERS
from sqlmodel import col, select
from starlette.datastructures import State
from wtforms import HiddenField, PasswordField, validators

import project.admin.forms as forms
from project import models
from project.admin.forms import FormData
from project.data.writes import lock
from project.database import commit
from project.errors import NotFound, PreconditionFailed
from project.models import User, UserCreate
from project.services import accounts, heroes, powers, teams, users

NewPassword = create_model("NewPassword", password=(str, UserCreate.model_fields["password"]))
OWNER_FILTER = forms.UUIDForeignKeyFilter("owner_id", "email", foreign_model=User, title="Owner")
RESET_ASK = "Email this user a link to choose a new password?"
VERIFY_ASK = "Email this user a new link to confirm their address?"
TEAM_FILTER = forms.UUIDForeignKeyFilter("team_id", "name", foreign_model=models.Team, title="Team")


class AppView(ModelView):
    state: ClassVar[State]  # the app's: set by `install_admin`, on a subclass of its own per app
    rules: Any  # the resource's service module
    create_schema: ClassVar[type[BaseModel]]
    update_schema: ClassVar[type[BaseModel]]
    fields: ClassVar[tuple[str, ...]] = ()  # what the form edits

    can_export, page_size, form_converter = False, 25, forms.ChoicesConverter
    column_type_formatters: ClassVar[dict[type, Any]] = {
        **BASE_FORMATTERS,
        datetime: lambda moment: moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        **dict.fromkeys((models.Team, models.Power), lambda row: row.name),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        words = {name: str(name).replace("_", " ").capitalize() for name in cls.column_details_list}
        cls.column_labels = words | {"id": "ID", "owner_id": "Owner"} | cls.column_labels

    async def get_object_for_details(self, request: Request) -> Any:
        # Every id sqladmin is given comes here first: a malformed one is not found, not a 500.
        try:
            uuid.UUID(request.path_params["pk"])
        except ValueError:
            raise HTTPException(status.HTTP_404_NOT_FOUND) from None
        return await super().get_object_for_details(request)

    def search_query(self, stmt: Any, term: str) -> Any:
        if "\x00" in term:  # PostgreSQL compares no text holding one; no row holds one either
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "A search cannot hold NUL.")
        return super().search_query(stmt, term)

    def body(self, data: FormData) -> dict[str, Any]:
        """The API request body a submitted form stands for: an empty box is no value."""
        return {field: None if data.get(field) == "" else data.get(field) for field in self.fields}

    async def _row(self, session: Any, pk: Any) -> Any:
        try:
            return await lock(session, self.rules.VIEW, uuid.UUID(pk))
        except NotFound:
            return None

    async def update_model(self, request: Request, pk: str, data: FormData, **extra: Any) -> Any:
        """Through the service's `update`, which also takes `extra` (a user's new password)."""
        with forms.refusals():
            body = self.update_schema.model_validate(self.body(data))
            async with self.state.database.session(write=True) as session:
                if (row := await self._row(session, pk)) is None:
                    raise ValueError(forms.GONE)
                # As `If-Match` in the API: a row changed since the form was opened is refused.
                if "version" in data and str(data["version"]) != str(row.version):
                    raise PreconditionFailed()
                await self.rules.update(session, row, body, **extra)
                await commit(session, self.rules.VIEW.conflict)
        return row

    async def delete_model(self, request: Request, pk: Any) -> None:
        with forms.refusals():
            async with self.state.database.session(write=True) as session:
                if (row := await self._row(session, pk)) is not None:
                    await self.rules.delete(session, row)
                    await commit(session)


def owner_email(model: Any, attribute: Any, request: Request) -> str:
    return str(getattr(request.state, "owner_emails", {}).get(model.owner_id, model.owner_id))


class OwnedView(AppView):
    """Rows with a version and an owner set once, at creation; their pages follow from `fields`."""

    column_filters: ClassVar[Sequence[Any]] = (OWNER_FILTER,)
    column_formatters: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_formatters_detail = column_formatters
    column_default_sort: ClassVar[Any] = [("name_key", False), ("id", False)]
    form_include_pk = True  # for the owner id: a foreign key, which sqladmin leaves out otherwise
    form_overrides: ClassVar[dict[str, Any]] = {"owner_id": SelectField, "version": HiddenField}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        fields = cls.fields
        cls.column_details_list = ("id", *fields, "owner_id", "version", "created_at", "updated_at")
        cls.form_columns = ("owner_id", *fields, "version")
        cls.form_create_rules, cls.form_edit_rules = ["owner_id", *fields], [*fields, "version"]
        cls.column_list = cls.column_list or (*fields, "owner_id", "updated_at")
        cls.column_searchable_list = cls.column_searchable_list or fields
        super().__init_subclass__(**kwargs)

    async def insert_model(self, request: Request, data: FormData) -> Any:
        with forms.refusals():
            body = self.create_schema.model_validate(self.body(data))
            async with self.state.database.session() as session:
                if await session.get(User, data["owner_id"]) is None:
                    raise ValueError(forms.GONE)
            async with self.state.database.driver() as db:
                item = await self.rules.create(db, data["owner_id"], body)
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def list(self, request: Request) -> Any:
        return await self._with_owners(request, await super().list(request))

    async def get_object_for_details(self, request: Request) -> Any:
        return await self._with_owners(request, await super().get_object_for_details(request))

    async def _with_owners(self, request: Request, found: Any) -> Any:
        """`found` (a page of rows, a row or None), its owners' emails kept for `owner_email`."""
        if owners := {row.owner_id for row in getattr(found, "rows", [found] if found else [])}:
            stmt = select(col(User.id), col(User.email)).where(col(User.id).in_(owners))
            async with self.state.database.session() as session:
                request.state.owner_emails = dict((await session.execute(stmt)).all())
        return found


class UserAdmin(AppView, model=models.User):
    """A new password is hashed, and ends the user's sessions as `PATCH /api/v1/users/{id}` does."""

    rules, update_schema = users, models.UserUpdate
    icon = "fa-solid fa-user"
    fields = ("email", "full_name", "is_active", "is_superuser")
    form_columns = column_list = column_sortable_list = fields
    column_searchable_list = ("email", "full_name")
    column_default_sort = ("email", False)
    column_details_list = ("id", *fields, "email_verified_at", "created_at", "updated_at")
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

    async def insert_model(self, request: Request, data: FormData) -> Any:
        account = self.body(data)
        rights = {right: account.pop(right) for right in ("is_active", "is_superuser")}
        with forms.refusals():
            body = UserCreate(**account, password=data.get("password") or "")
            async with self.state.database.driver() as db:
                item = await users.create(db, self.state.hasher, **body.model_dump(), **rights)
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def update_model(self, request: Request, pk: str, data: FormData, **extra: Any) -> Any:
        # Setting your own password keeps this sign-in, as the API's password change does.
        if request.session["user_id"] == str(uuid.UUID(pk)):
            extra["keep"] = uuid.UUID(request.session["sid"])
        if data.get("password"):  # hashed before the transaction opens
            with forms.refusals():
                new: Any = NewPassword(password=data["password"])
            extra["password_hash"] = await self.state.hasher.hash(new.password)
        return await super().update_model(request, pk, data, **extra)

    @action("send-reset-link", "Send a password reset link", RESET_ASK, add_in_list=False)
    async def send_reset_link(self, request: Request) -> Response:
        return await self._mail(request, accounts.send_reset)

    @action("send-verification", "Resend the verification email", VERIFY_ASK, add_in_list=False)
    async def send_verification(self, request: Request) -> Response:
        return await self._mail(request, accounts.send_verification)

    async def _mail(self, request: Request, send: Any) -> Response:
        """Mail each chosen user as the API would (the same service), then show the first."""
        pks = [pk for pk in request.query_params.get("pks", "").split(",") if pk]
        async with self.state.database.session(write=True) as session:
            for pk in pks:
                with contextlib.suppress(ValueError):  # a malformed id: no such user
                    if (user := await self._row(session, pk)) is not None:
                        await send(session, self.state.letters, user)
            await session.commit()
        where = {"identity": self.identity, "pk": pks[0]} if pks else {"identity": self.identity}
        page = request.url_for("admin:details" if pks else "admin:list", **where)
        return RedirectResponse(page, status.HTTP_302_FOUND)


class TeamAdmin(OwnedView, model=models.Team):
    rules, create_schema, update_schema = teams, models.TeamCreate, models.TeamUpdate
    icon = "fa-solid fa-people-group"
    fields = ("name", "headquarters")
    column_sortable_list = (*fields, "updated_at")


class PowerAdmin(OwnedView, model=models.Power):
    rules, create_schema, update_schema = powers, models.PowerCreate, models.PowerUpdate
    icon = "fa-solid fa-bolt"
    fields = ("name", "description")
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
    column_filters = (TEAM_FILTER, OWNER_FILTER, forms.NumberFilter("age", title="Age"))
    form_args: ClassVar[dict[str, dict[str, Any]]] = {"team": {"blank_text": "(no team)"}}

    def body(self, data: FormData) -> dict[str, Any]:
        body = super().body(data)
        body["team_id"], body["power_ids"] = body.pop("team"), body.pop("powers") or []
        return body
