"""Every dependency a route takes, each defined once as an `Annotated` alias."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from project.auth.credentials import PasswordHasher
from project.auth.sessions import Caller, TokenCodec
from project.config import Settings
from project.data.rows import Rows, read_row
from project.data.views import View
from project.data.writes import lock
from project.database import commit, get_database, get_session
from project.db.driver import Driver
from project.errors import ACCOUNT_GONE, AuthenticationFailed, NotFound, PreconditionFailed
from project.mail import Letters
from project.models import User
from project.services import users
from project.web.routing import json_body, require_match


def _app(name: str) -> Callable[[Request], Awaitable[Any]]:
    """What the app made at startup. `async`: FastAPI runs a plain `def` in a thread."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


class RowsBearer(OAuth2PasswordBearer):
    """The bearer scheme (in /docs, *Authorize* signs in through the login endpoint): checks
    the token's signature and expiry, and gives the caller's way to the rows, in one dependency."""

    def __init__(self) -> None:
        super().__init__("/api/v1/auth/login", "OAuth2PasswordBearer", auto_error=False)

    async def __call__(self, request: Request) -> Rows:  # type: ignore[override]
        if len(request.headers.getlist("authorization")) > 1:
            # One is read and a proxy may have checked another: trust neither.
            raise AuthenticationFailed("Send one Authorization header, not several.")
        token = await super().__call__(request)
        if not token:
            raise AuthenticationFailed("Not authenticated: send `Authorization: Bearer <token>`.")
        caller = request.app.state.tokens.decode(token, "access")
        return Rows(await _driver(request), caller, request.app.state.pager)


async def _driver(request: Request) -> Driver:
    """A connection taken on first use, handed back by the route once the response is
    built (`release`): not a `yield` dependency, which costs an exit stack per request."""
    db = get_database(request).driver(idempotent=request.method == "GET")
    request.state.db_driver = db
    return db


SettingsDep = Annotated[Settings, Depends(_app("settings"))]
HasherDep = Annotated[PasswordHasher, Depends(_app("hasher"))]
TokensDep = Annotated[TokenCodec, Depends(_app("tokens"))]
LettersDep = Annotated[Letters, Depends(_app("letters"))]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
DriverDep = Annotated[Driver, Depends(_driver)]
RowsDep = Annotated[Rows, Depends(RowsBearer())]

M = TypeVar("M")
B = TypeVar("B")


@dataclass
class Edit(Generic[M]):
    """A row the caller may change, and the ways its change ends, each checking the request's
    preconditions against the row as it is first; a row deleted meanwhile is `gone`."""

    row: M
    view: View
    session: AsyncSession
    caller: Caller
    request: Request
    gone: NotFound | AuthenticationFailed

    async def _read(self) -> dict[str, Any]:
        db = await Driver.of(await self.session.connection())
        return await read_row(db, self.view, self.row.id)  # type: ignore[attr-defined]

    async def _preconditions(self) -> None:
        if self.view.versioned:
            require_match(self.request, self.view.etag(await self._read()) or "")

    async def commit(self, flush_only: bool = False) -> None:
        """Commit what the route changed (or only flush it, to read the row back first)."""
        try:
            await commit(self.session, self.view.conflict, flush_only=flush_only)
        except PreconditionFailed:
            if self.view.versioned:
                raise
            raise self.gone from None  # no version to have changed: the row is gone

    async def change(
        self, apply: Callable[[AsyncSession, M, B], Awaitable[None]], body: B
    ) -> Response:
        """Apply `body` with `apply`; the row as it is then, with its new ETag."""
        await self._preconditions()
        await apply(self.session, self.row, body)
        await self.commit(flush_only=True)
        item = await self._read()
        await self.commit()
        etag = self.view.etag(item)
        return json_body(item, headers=None if etag is None else {"ETag": etag})

    async def delete(self, remove: Callable[[AsyncSession, M], Awaitable[None]]) -> None:
        await self._preconditions()
        try:
            await remove(self.session, self.row)
        except NotFound:
            raise self.gone from None
        await self.commit()


def editing(view: View, superuser: bool = False) -> Callable[..., Awaitable[Edit[Any]]]:
    """A dependency: the `{id}` row of `view` the caller may change, or 401/403/404. Each
    router names its own: `OwnedTeam = Annotated[Edit[Team], Depends(editing(teams.VIEW))]`."""

    async def load(
        session: SessionDep,
        rows: RowsDep,
        request: Request,
        id: uuid.UUID = Path(description=f"The {view.name}'s id."),
    ) -> Edit[Any]:
        row = await lock(session, view, id, rows.caller, superuser)
        return Edit(row, view, session, rows.caller, request, NotFound(view.name))

    return load


async def _me(session: SessionDep, rows: RowsDep, request: Request) -> Edit[User]:
    try:
        user = await lock(session, users.VIEW, rows.caller.user_id, rows.caller)
    except NotFound:  # deleted while this request waited for it
        raise AuthenticationFailed(ACCOUNT_GONE) from None
    return Edit(user, users.VIEW, session, rows.caller, request, AuthenticationFailed(ACCOUNT_GONE))


Me = Annotated[Edit[User], Depends(_me)]
AnyUser = Annotated[Edit[User], Depends(editing(users.VIEW, superuser=True))]
