"""Reading rows as the API shows them, the same way for every resource: one statement on
the driver with the caller's session checked in it; a page is that check and one statement."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, true
from sqlmodel import col

from project.auth.sessions import live_session
from project.auth.tokens import Caller
from project.data.paging import ListQuery, Pager
from project.data.views import View
from project.db.driver import STATEMENTS, Driver
from project.errors import AuthenticationFailed, NotFound, PermissionDenied
from project.models import AuthSession, User


def _caller_statement() -> Any:
    return (
        select(col(User.is_superuser))
        .join(AuthSession, true())
        .where(live_session(bindparam("sid"), bindparam("uid")))
    )


async def check_caller(db: Driver, caller: Caller, superuser: bool = False) -> bool:
    """Whether the caller is a superuser; 401 unless the token's session is live and its
    user active, 403 if `superuser` is required and the caller is not one."""
    compiled = STATEMENTS.get(db.dialect, "caller", _caller_statement)
    rows = await db.fetch(compiled, sid=caller.session_id, uid=caller.user_id)
    if not rows:
        raise AuthenticationFailed()
    if superuser and not rows[0][0]:
        raise PermissionDenied()
    return bool(rows[0][0])


async def read_one(
    db: Driver, view: View, row_id: uuid.UUID, caller: Caller, superuser: bool = False
) -> dict[str, Any]:
    """The row as the API shows it, if the caller may see it: one statement."""
    compiled = STATEMENTS.get(db.dialect, (view, "one"), view.one)
    rows = await db.fetch(compiled, id=row_id, sid=caller.session_id, uid=caller.user_id)
    if not rows:
        raise AuthenticationFailed()
    if superuser and not rows[0][0]:
        raise PermissionDenied()
    found = view.items(rows, start=1)
    if not found:
        raise NotFound(view.name)
    return found[0][0]


async def read_row(db: Driver, view: View, row_id: uuid.UUID) -> dict[str, Any]:
    """The row as the API shows it, for a caller already let at it (a change)."""
    found = view.items(
        await db.fetch(STATEMENTS.get(db.dialect, (view, "row"), view.row), id=row_id)
    )
    if not found:
        raise NotFound(view.name)
    return found[0][0]


async def read_page(
    db: Driver, view: View, query: ListQuery, pager: Pager, owner: uuid.UUID | None
) -> dict[str, Any]:
    """One page of the rows matching `query` (of `owner`'s, or everyone's for None): the
    list envelope."""
    filters = frozenset(name for name in view.filters if getattr(query, name) is not None)
    values = {name: view.filters[name].prepare(getattr(query, name)) for name in filters}
    values["owner"] = owner
    scoped, sort, after = owner is not None, query.sort, query.cursor is not None
    if after:
        values["after_key"], values["after_id"] = pager.decode(query, view.sorts[sort.lstrip("-")])
    page = STATEMENTS.get(
        db.dialect,
        (view, "page", scoped, sort, after, filters),
        lambda: view.page(scoped, sort, after, filters),
    )
    found = view.items(await db.fetch(page, limit=query.limit + 1, **values))
    body: dict[str, Any] = {"items": [item for item, _ in found[: query.limit]]}
    body["next_cursor"] = None
    if len(found) > query.limit:
        item, row = found[query.limit - 1]
        body["next_cursor"] = pager.encode(query, row[-1], item["id"])
    if query.include_total:
        total = STATEMENTS.get(
            db.dialect, (view, "total", scoped, filters), lambda: view.total(scoped, filters)
        )
        [(body["total"],)] = await db.fetch(total, **values)
    return body


async def list_rows(
    db: Driver, view: View, query: ListQuery, pager: Pager, caller: Caller, **superuser: bool
) -> dict[str, Any]:
    """A page of what the caller may see: their own rows, or everyone's for a superuser."""
    everyone = await check_caller(db, caller, **superuser)
    return await read_page(db, view, query, pager, None if everyone else caller.user_id)


@dataclass(frozen=True, slots=True)
class Rows:
    """A request's way to the rows, as its caller: a connection taken on first use (see
    `Driver`) and the cursors' signer."""

    db: Driver
    caller: Caller
    pager: Pager

    async def one(self, view: View, row_id: uuid.UUID, superuser: bool = False) -> dict[str, Any]:
        return await read_one(self.db, view, row_id, self.caller, superuser)

    async def page(self, view: View, query: ListQuery, superuser: bool = False) -> dict[str, Any]:
        return await list_rows(self.db, view, query, self.pager, self.caller, superuser=superuser)
