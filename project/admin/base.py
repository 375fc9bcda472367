"""What the views share. They write through the API's services, never sqladmin's generic insert
and update, which cannot hash a password, end sessions, check owners or keep versions."""

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import ModuleType
from typing import Any, ClassVar, cast

from fastapi import FastAPI, HTTPException, Request, status
from pydantic import BaseModel
from sqladmin import ModelView
from sqladmin.fields import SelectField
from sqladmin.filters import ForeignKeyFilter
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from wtforms import HiddenField

from project.admin.forms import GONE, STALE, ChoicesConverter, FormData, validated
from project.auth.passwords import PasswordHasher
from project.data.writes import lock
from project.database import Database, commit
from project.errors import NotFound, PreconditionFailed, ProblemError
from project.models import Power, Team, User


@asynccontextmanager
async def refusals() -> AsyncIterator[None]:
    """A service's refusal (a taken name, a row changed meanwhile) as the form's message."""
    try:
        yield
    except PreconditionFailed:
        raise ValueError(STALE) from None
    except ProblemError as exc:
        raise ValueError(exc.errors[0].msg if exc.errors else exc.detail) from None


class AppView(ModelView):
    service: ClassVar[FastAPI]  # set by `install_admin`, on a subclass of its own per app
    rules: ModuleType  # the resource's service module
    create_schema: ClassVar[type[BaseModel]]
    update_schema: ClassVar[type[BaseModel]]
    body: Callable[[FormData], dict[str, Any]]  # the API request body a submitted form stands for

    can_export, page_size = False, 25
    form_converter = ChoicesConverter
    column_type_formatters: ClassVar[dict[type, Any]] = {
        **BASE_FORMATTERS,
        datetime: lambda moment: moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        **dict.fromkeys((Team, Power), lambda row: row.name),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Headings read "Secret name", not "secret_name"; an owner is shown by email.
        super().__init_subclass__(**kwargs)
        words = {name: str(name).replace("_", " ").capitalize() for name in cls.column_details_list}
        cls.column_labels = words | {"id": "ID", "owner_id": "Owner"} | cls.column_labels

    @property
    def database(self) -> Database:
        return cast(Database, self.service.state.database)

    @property
    def hasher(self) -> PasswordHasher:
        return cast(PasswordHasher, self.service.state.hasher)

    async def get_object_for_details(self, request: Request) -> Any:
        # Every id sqladmin is given comes here first: a malformed one is not found, not a 500.
        try:
            uuid.UUID(request.path_params["pk"])
        except ValueError:
            raise HTTPException(status.HTTP_404_NOT_FOUND) from None
        return await super().get_object_for_details(request)

    async def _row(self, session: AsyncSession, pk: Any) -> Any:
        try:
            return await lock(session, self.rules.VIEW, uuid.UUID(pk))
        except NotFound:
            return None

    async def update_model(self, request: Request, pk: str, data: FormData) -> Any:
        body = validated(self.update_schema, self.body(data))
        async with self.database.session(write=True) as session, refusals():
            if (row := await self._row(session, pk)) is None:
                raise ValueError(GONE)
            await self.change(session, row, data, body)
            await commit(session, self.rules.VIEW.conflict)
        return row

    async def change(self, session: AsyncSession, row: Any, data: FormData, body: Any) -> None:
        # As `If-Match` in the API: an edit of a row changed since the form was opened is refused.
        if str(data.get("version")) != str(row.version):
            raise PreconditionFailed()
        await self.rules.update(session, row, body)

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with self.database.session(write=True) as session, refusals():
            if (row := await self._row(session, pk)) is not None:
                await self.rules.delete(session, row)
                await commit(session)


class UUIDForeignKeyFilter(ForeignKeyFilter):
    """sqladmin filters by the query string's text; a UUID column wants a UUID."""

    async def get_filtered_query(self, query: Any, value: Any, model: Any) -> Any:
        if value != "__all":  # the filter's "All"
            try:
                value = uuid.UUID(value)
            except ValueError:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "Not an id.") from None
        return await super().get_filtered_query(query, value, model)


OWNER_FILTER = UUIDForeignKeyFilter("owner_id", "email", foreign_model=User, title="Owner")


def owner_email(model: Any, attribute: Any, request: Request) -> str:
    """The owner's email, from those `OwnedView` looked up for the whole page."""
    emails: dict[Any, str] = getattr(request.state, "owner_emails", {})
    return emails.get(model.owner_id, str(model.owner_id))


class OwnedView(AppView):
    """Rows with a version, and an owner chosen at creation that never changes (as in the API).
    A view names the `fields` its form edits; the rest of its pages follow from them."""

    fields: ClassVar[tuple[str, ...]] = ()
    column_filters: ClassVar[Sequence[Any]] = (OWNER_FILTER,)
    column_formatters: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_formatters_detail: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_default_sort: ClassVar[Any] = [("name_key", False), ("id", False)]
    form_include_pk = True  # for the owner id: a foreign key, which sqladmin leaves out otherwise
    form_overrides: ClassVar[dict[str, Any]] = {"owner_id": SelectField, "version": HiddenField}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        fields = cls.fields
        cls.column_details_list = ("id", *fields, "owner_id", "version", "created_at", "updated_at")
        cls.form_columns = ("owner_id", *fields, "version")
        cls.form_create_rules, cls.form_edit_rules = ["owner_id", *fields], [*fields, "version"]
        super().__init_subclass__(**kwargs)

    async def insert_model(self, request: Request, data: FormData) -> Any:
        body = validated(self.create_schema, self.body(data))
        async with self.database.session() as session:
            if await session.get(User, data["owner_id"]) is None:
                raise ValueError(GONE)
        async with self.database.driver() as db, refusals():
            item = await self.rules.create(db, data["owner_id"], body)
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def list(self, request: Request) -> Any:
        page = await super().list(request)
        await self._remember_owners(request, page.rows)
        return page

    async def get_object_for_details(self, request: Request) -> Any:
        row = await super().get_object_for_details(request)
        await self._remember_owners(request, [] if row is None else [row])
        return row

    async def _remember_owners(self, request: Request, rows: Iterable[Any]) -> None:
        if owners := {row.owner_id for row in rows}:
            stmt = select(col(User.id), col(User.email)).where(col(User.id).in_(owners))
            async with self.database.session() as session:
                request.state.owner_emails = dict((await session.execute(stmt)).all())
