"""What every admin view shares: the app it serves, and writes through the services.

Views create, change and delete through the same service functions as the API, never
through sqladmin's generic insert and update: those cannot hash a password, end sessions,
check that a hero's team has the hero's owner, or keep versions as the API does.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import ModuleType
from typing import Any, ClassVar

from fastapi import FastAPI
from pydantic import BaseModel
from sqladmin import ModelView
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy.ext.asyncio import AsyncSession
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request
from wtforms import HiddenField

from project.admin.forms import (
    GONE,
    STALE,
    ChoicesConverter,
    as_uuid,
    owner_email,
    owner_emails,
    validated,
)
from project.auth.passwords import PasswordHasher
from project.data.writes import lock
from project.database import Database, commit
from project.errors import NotFound, PreconditionFailed, ProblemError
from project.models import Power, Team, User


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def refusals() -> Iterator[None]:
    """A service's refusal (a taken name, another owner's team, a row changed or gone
    meanwhile) as the message sqladmin shows above the form."""
    try:
        yield
    except PreconditionFailed:
        raise ValueError(STALE) from None
    except ProblemError as exc:
        raise ValueError(exc.errors[0].msg if exc.errors else exc.detail) from None


class AppView(ModelView):
    # Set by `install_admin` on a subclass made for each app: sqladmin keeps its wiring in
    # class attributes, and two apps in one process (the tests) must not share it.
    service: ClassVar[FastAPI]
    rules: ClassVar[ModuleType]  # the resource's service module
    create_schema: ClassVar[type[BaseModel]]
    update_schema: ClassVar[type[BaseModel]]

    can_export = False
    page_size = 25
    form_converter = ChoicesConverter
    column_type_formatters: ClassVar[dict[type, Any]] = {**BASE_FORMATTERS, datetime: _utc}

    @property
    def database(self) -> Database:
        database: Database = self.service.state.database
        return database

    @property
    def hasher(self) -> PasswordHasher:
        hasher: PasswordHasher = self.service.state.hasher
        return hasher

    # sqladmin parses ids deep inside its queries, and a malformed one would be a 500 there.
    @staticmethod
    def _require_id(pk: Any) -> None:
        try:
            as_uuid(pk)
        except ValueError:
            raise HTTPException(status.HTTP_404_NOT_FOUND) from None

    async def get_object_for_details(self, request: Request) -> Any:
        self._require_id(request.path_params.get("pk"))
        return await super().get_object_for_details(request)

    async def get_object_for_edit(self, request: Request) -> Any:
        self._require_id(request.path_params.get("pk"))
        return await super().get_object_for_edit(request)

    async def get_object_for_delete(self, value: Any) -> Any:
        self._require_id(value)
        return await super().get_object_for_delete(value)

    def body(self, data: dict[str, Any]) -> dict[str, Any]:
        """The API request body a submitted form stands for."""
        raise NotImplementedError

    async def _row(self, session: AsyncSession, pk: Any) -> Any:
        try:
            return await lock(session, self.rules.VIEW, as_uuid(pk))
        except NotFound:
            return None

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        body = validated(self.update_schema, self.body(data))
        async with self.database.session(write=True) as session:
            row = await self._row(session, pk)
            if row is None:
                raise ValueError(GONE)
            with refusals():
                await self.change(request, session, row, data, body)
                await commit(session, self.rules.VIEW.conflict)
        return row

    async def change(
        self, request: Request, session: AsyncSession, row: Any, data: dict[str, Any], body: Any
    ) -> None:
        # The edit form carries the version it was opened at: an edit of a row changed since
        # is refused instead of silently overwriting it, as `If-Match` does in the API.
        if str(data.get("version")) != str(row.version):
            raise PreconditionFailed()
        await self.rules.update(session, row, body)

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with self.database.session(write=True) as session:
            row = await self._row(session, pk)
            if row is not None:
                with refusals():
                    await self.rules.delete(session, row)
                    await commit(session)


def labels(*names: str) -> dict[Any, str]:
    """Column headings: "secret_name" reads "Secret name", and an owner is shown by email."""
    headings = {name: name.replace("_", " ").capitalize() for name in names}
    return headings | {"id": "ID", "owner_id": "Owner"}


def _name(row: Team | Power) -> str:
    return row.name


class OwnedView(AppView):
    """Teams, heroes and powers: each has an owner and a version. The owner is chosen when
    the row is created and never changes, as in the API."""

    column_formatters: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_formatters_detail: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_type_formatters: ClassVar[dict[type, Any]] = {
        **AppView.column_type_formatters,
        Team: _name,
        Power: _name,
    }
    form_overrides: ClassVar[dict[str, Any]] = {"version": HiddenField}
    column_default_sort: ClassVar[Any] = [("name_key", False), ("id", False)]

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        body = validated(self.create_schema, self.body(data))
        async with self.database.session() as session:
            owner = await session.get(User, as_uuid(data["owner_id"]))
        if owner is None:
            raise ValueError(GONE)
        async with self.database.driver() as db:
            with refusals():
                item = await self.rules.create(db, owner.id, body)
        return self.model(id=item["id"])  # all sqladmin needs: where to go next

    async def _remember_owners(self, request: Request, rows: list[Any]) -> None:
        owners: set[uuid.UUID] = {row.owner_id for row in rows}
        request.state.owner_emails = await owner_emails(self.session_maker, owners)

    async def list(self, request: Request) -> Any:
        page = await super().list(request)
        await self._remember_owners(request, page.rows)
        return page

    async def get_object_for_details(self, request: Request) -> Any:
        row = await super().get_object_for_details(request)
        if row is not None:
            await self._remember_owners(request, [row])
        return row
