"""Reading rows as the API shows them, the same way for every resource: one statement on
the driver with the caller's session checked in it; a page is that check and one statement."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, true
from sqlmodel import col

from project.auth.sessions import Caller, live_session
from project.data.paging import ListQuery, Pager
from project.data.views import Row, View
from project.db.driver import Driver, compile_once
from project.errors import AuthenticationFailed, NotFound, PermissionDenied
from project.models import AuthSession, User


def _caller() -> Any:
    live = live_session(bindparam("sid"), bindparam("uid"))
    return select(col(User.is_superuser)).join(AuthSession, true()).where(live)


def _superuser(rows: Sequence[Row], superuser: bool) -> bool:
    """Whether the caller (the rows' first column) is a superuser: 401 without rows (the
    token's session has ended, or its user is inactive), 403 if one is wanted and it is not."""
    if not rows:
        raise AuthenticationFailed()
    if superuser and not rows[0][0]:
        raise PermissionDenied()
    return bool(rows[0][0])


async def check_caller(db: Driver, caller: Caller, superuser: bool = False) -> bool:
    """Whether the caller is a superuser (401, 403 as `_superuser`)."""
    statement = compile_once(db.dialect, "caller", _caller)
    rows = await db.fetch(statement, sid=caller.session_id, uid=caller.user_id)
    return _superuser(rows, superuser)


async def read_row(db: Driver, view: View, row_id: uuid.UUID) -> dict[str, Any]:
    """The row as the API shows it, for a caller already let at it (a change)."""
    rows = await db.fetch(compile_once(db.dialect, (view, "row"), view.row), id=row_id)
    if not (found := view.items(rows)):
        raise NotFound(view.name)
    return found[0][0]


@dataclass(frozen=True, slots=True)
class Rows:
    """A request's way to the rows, as its caller: a connection taken on first use, a pager."""

    db: Driver
    caller: Caller
    pager: Pager

    async def one(self, view: View, row_id: uuid.UUID, superuser: bool = False) -> dict[str, Any]:
        """The row as the API shows it, if the caller may see it: one statement."""
        one = compile_once(self.db.dialect, (view, "one"), view.one)
        rows = await self.db.fetch(
            one, id=row_id, sid=self.caller.session_id, uid=self.caller.user_id
        )
        _superuser(rows, superuser)
        if not (found := view.items(rows, start=1)):
            raise NotFound(view.name)
        return found[0][0]

    async def page(self, view: View, query: ListQuery, superuser: bool = False) -> dict[str, Any]:
        """The list envelope: what the caller may see (everything, for a superuser) of `query`."""
        everyone = await check_caller(self.db, self.caller, superuser)
        filters = frozenset(name for name in view.filters if getattr(query, name) is not None)
        values = {name: view.filters[name].prepare(getattr(query, name)) for name in filters}
        values["owner"] = None if everyone else self.caller.user_id
        scoped, sort, after = not everyone, query.sort, query.cursor is not None
        if after:
            key = view.sorts[sort.lstrip("-")]
            values["after_key"], values["after_id"] = self.pager.decode(query, key)
        shape = (view, "page", scoped, sort, after, filters)
        page = compile_once(self.db.dialect, shape, lambda: view.page(*shape[2:]))
        found = view.items(await self.db.fetch(page, limit=query.limit + 1, **values))
        body: dict[str, Any] = {"items": [item for item, _ in found[: query.limit]]}
        body["next_cursor"] = None
        if len(found) > query.limit:
            item, row = found[query.limit - 1]
            body["next_cursor"] = self.pager.encode(query, row[-1], item["id"])
        if query.include_total:
            counted = (view, "total", scoped, filters)
            total = compile_once(self.db.dialect, counted, lambda: view.total(scoped, filters))
            [(body["total"],)] = await self.db.fetch(total, **values)
        return body
