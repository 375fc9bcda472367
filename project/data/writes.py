"""Writing rows: a new row is one INSERT on the driver that checks the caller's session itself;
a change goes through the ORM, which keeps versions. A row refers only to its owner's rows."""

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, inspect, select, true
from sqlalchemy import insert as insert_into
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from project.auth.sessions import Caller, live_session
from project.data.rows import check_caller
from project.data.views import Embedded, View
from project.db.driver import Compiled, Driver, compile_once
from project.errors import AuthenticationFailed, InvalidField, NotFound, integrity_problem
from project.models import AuthSession, User, utcnow

Links = Mapping[str, Sequence[uuid.UUID]]


def _insert_statement(view: View, checked: bool) -> Any:
    table: Table = view.model.__table__
    names = [column.key for column in table.columns]
    row = select(*(bindparam(name, type_=table.c[name].type) for name in names))
    if checked:  # the caller's session is live, and the caller owns the row
        live = live_session(bindparam("sid"), bindparam(view.owner))
        row = row.where(select(col(User.id)).join(AuthSession, true()).where(live).exists())
    return insert_into(table).from_select(names, row).returning(table.c.id)


async def insert(
    db: Driver, view: View, row: SQLModel, caller: Caller | None = None, links: Links | None = None
) -> dict[str, Any]:
    """Insert `row` and its `links`; with `caller`, only if the caller's session is live and
    the caller owns it (401). The row as the API shows it."""
    state = inspect(row)
    mapper = state.mapper
    mapper.dispatch.before_insert(mapper, None, state)  # the model's hooks: keys, timestamps
    listed = {e.name: (links or {}).get(e.name, []) for e in view.embedded if e.many}
    named = {e.key: getattr(row, e.key) for e in view.references if e.key}
    embedded = await references(db, view, getattr(row, view.owner), named, listed)
    checked = caller is not None
    shape = (view, "insert", checked)
    statement = compile_once(db.dialect, shape, lambda: _insert_statement(view, checked))
    values = {column.key: getattr(row, column.key) for column in mapper.columns}
    try:
        async with db.transaction() if any(listed.values()) else db.turn():
            sid = None if caller is None else caller.session_id
            if not await db.fetch(statement, sid=sid, **values):
                raise AuthenticationFailed()
            for name, ids in listed.items():
                await _link(db, view, name, values["id"], ids, replace=False)
    except IntegrityError as exc:
        raise integrity_problem(exc, view.conflict) from exc
    return view.item(row, **embedded)


async def references(
    db: Driver, view: View, owner: uuid.UUID, named: Mapping[str, Any], listed: Links
) -> dict[str, Any]:
    """What a row of `owner`'s embeds once it names (by a foreign key) or lists (by
    relationship) these rows: each must be the owner's, or it is a 422 on its field."""
    embedded: dict[str, Any] = {}
    for e in (*view.references, *(e for e in view.embedded if e.many)):
        if e.many and e.name in listed:
            field = f"{e.model.__name__.lower()}_ids"
            embedded[e.name] = await _owners(db, e, listed[e.name], owner, ["body", field])
        elif e.key is not None and e.key in named:
            ref = named[e.key]
            found = await _owners(db, e, [] if ref is None else [ref], owner, ["body", e.key])
            if e in view.embedded:
                embedded[e.name] = found[0] if found else None
    return embedded


def _owned(e: Embedded, count: int) -> Any:
    model_id = e.model.__table__.c.id
    ids = [bindparam(f"id{i}", type_=model_id.type) for i in range(count)]
    return (
        select(*(getattr(e.model, field) for field in e.fields))
        .where(model_id.in_(ids), e.model.owner_id == bindparam("owner"))
        .order_by(*e.order_by)
    )


async def _owners(
    db: Driver, e: Embedded, ids: Sequence[uuid.UUID], owner: uuid.UUID, loc: list[str | int]
) -> list[dict[str, Any]]:
    """The rows `ids` of `e`'s table, which must all be `owner`'s (422 on `loc` if not)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return []
    statement = compile_once(db.dialect, (e, len(unique)), lambda: _owned(e, len(unique)))
    values = {f"id{i}": row_id for i, row_id in enumerate(unique)}
    rows = await db.fetch(statement, owner=owner, **values)
    found = [dict(zip(e.fields, row, strict=True)) for row in rows]
    known = {row["id"] for row in found}
    for position, wanted in enumerate(ids):
        if wanted not in known:
            what = f"The owner has no {e.model.__name__.lower()} with id {wanted}."
            raise InvalidField([*loc, position] if e.many else loc, what)
    return found


async def _link(
    db: Driver, view: View, name: str, row_id: uuid.UUID, ids: Sequence[uuid.UUID], replace: bool
) -> bool:
    """Link a row to the rows `ids` (replacing the links it has); whether its links changed."""
    prop = inspect(view.model).relationships[name]
    table = prop.secondary
    parent, target = prop.synchronize_pairs[0][1].key, prop.secondary_synchronize_pairs[0][1].key
    mine = table.c[parent] == bindparam("row_id")

    def statement(kind: str, build: Callable[[], Any]) -> Compiled:
        return compile_once(db.dialect, (view, name, kind), build)

    if replace:
        current = statement("links", lambda: select(table.c[target]).where(mine))
        if {i for (i,) in await db.fetch(current, row_id=row_id)} == set(ids):
            return False
        await db.fetch(statement("unlink", lambda: delete(table).where(mine)), row_id=row_id)
    if ids:
        link = statement("link", lambda: insert_into(table))
        await db.run_many(link, [{parent: row_id, target: i} for i in dict.fromkeys(ids)])
    return True


async def lock(
    session: AsyncSession,
    view: View,
    row_id: uuid.UUID,
    caller: Caller | None = None,
    superuser: bool = False,
) -> Any:
    """The row `row_id` that `caller` may change (401, 403 as `check_caller`, 404), locked if
    versioned: a concurrent change waits, then sees its version rather than failing its UPDATE.
    (Users lock every superuser's row in one order: see `ensure_not_last_superuser`.)"""
    model: Any = view.model
    stmt = select(model).where(col(model.id) == row_id)
    if caller is not None:
        db = await Driver.of(await session.connection())
        if not await check_caller(db, caller, superuser):
            stmt = stmt.where(getattr(model, view.owner) == caller.user_id)
    row = await session.scalar(stmt.with_for_update(of=model) if view.versioned else stmt)
    if row is None:
        raise NotFound(view.name)
    return row


async def change(
    session: AsyncSession,
    view: View,
    row: Any,
    changes: Mapping[str, Any],
    links: Links | None = None,
) -> None:
    """Apply `changes` and replace the links `links` lists, each referring to the owner's rows
    (422). Any change, a link's included, stamps `updated_at`: a version moves too."""
    db = await Driver.of(await session.connection())
    changed = {field: value for field, value in changes.items() if getattr(row, field) != value}
    await references(db, view, getattr(row, view.owner), changed, links or {})
    moved = bool(changed)
    for name, ids in (links or {}).items():
        moved = await _link(db, view, name, row.id, ids, replace=True) or moved
    if moved:
        row.sqlmodel_update(changed)
        row.updated_at = utcnow()
