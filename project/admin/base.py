"""What every admin view shares: the app it serves, and how it commits.

Views write through the service's own models and rules rather than sqladmin's generic
insert and update: those cannot hash a password, end sessions, check that a hero's team
has the hero's owner, or keep versions as the API does.
"""

import uuid
from datetime import datetime
from typing import Any, ClassVar

from fastapi import FastAPI
from sqladmin import ModelView
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy.ext.asyncio import AsyncSession
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request
from wtforms import HiddenField

from project.admin.forms import STALE, ChoicesConverter, as_uuid, owner_email, owner_emails
from project.database import Database, commit
from project.errors import Conflict, PreconditionFailed
from project.models import Power, Team
from project.security import PasswordHasher


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class AppView(ModelView):
    # Set by `install_admin` on a subclass made for each app: sqladmin keeps its wiring in
    # class attributes, and two apps in one process (the tests) must not share it.
    service: ClassVar[FastAPI]

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

    @staticmethod
    async def commit(session: AsyncSession, conflict: str) -> None:
        """Commit, or raise a message sqladmin shows above the form."""
        try:
            await commit(session, conflict)
        except Conflict:
            raise ValueError(conflict) from None
        except PreconditionFailed:
            raise ValueError(STALE) from None


def labels(*names: str) -> dict[Any, str]:
    """Column headings: "secret_name" reads "Secret name", and an owner is shown by email."""
    headings = {name: name.replace("_", " ").capitalize() for name in names}
    return headings | {"id": "ID", "owner_id": "Owner"}


def _name(row: Team | Power) -> str:
    return row.name


class OwnedView(AppView):
    """Teams, heroes and powers: each has an owner, a version and a name key. The owner is
    chosen when the row is created and never changes, as in the API."""

    column_formatters: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_formatters_detail: ClassVar[dict[Any, Any]] = {"owner_id": owner_email}
    column_type_formatters: ClassVar[dict[type, Any]] = {
        **AppView.column_type_formatters,
        Team: _name,
        Power: _name,
    }
    form_overrides: ClassVar[dict[str, Any]] = {"version": HiddenField}

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
