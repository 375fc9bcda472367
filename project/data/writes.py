"""Writing rows, the same way for every resource.

A new row is one INSERT on the driver that checks the caller's session itself (with the
rows it lists, their links in the same transaction), and the model's own insert hooks run
on it first, as a flush would run them. A change goes through the ORM's unit of work, which
keeps versions, on a row locked for it. Every row a row refers to must be its owner's.
"""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, inspect, select, true
from sqlalchemy import insert as insert_into
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from project.auth.sessions import Caller, live_session
from project.data.rows import check_caller
from project.data.views import Embedded, View
from project.db.driver import STATEMENTS, Driver
from project.errors import AuthenticationFailed, InvalidField, NotFound, integrity_problem
from project.models import AuthSession, User, utcnow

Links = Mapping[str, Sequence[uuid.UUID]]


def _insert_statement(view: View, checked: bool) -> Any:
    table: Table = view.model.__table__
    names = [column.key for column in table.columns]
    row = select(*(bindparam(name, type_=table.c[name].type) for name in names))
    if checked:  # the caller's session is live, and the caller owns the row
        caller = select(col(User.id)).join(AuthSession, true())
        row = row.where(
            caller.where(live_session(bindparam("sid"), bindparam(view.owner))).exists()
        )
    return insert_into(table).from_select(names, row).returning(table.c.id)


async def insert(
    db: Driver, view: View, row: SQLModel, caller: Caller | None = None, links: Links | None = None
) -> dict[str, Any]:
    """Insert `row`, and link it to the rows `links` lists by relationship; with `caller`,
    only if the caller's session is live and the caller owns it (401). The row as the API
    shows it."""
    state = inspect(row)
    mapper = state.mapper
    mapper.dispatch.before_insert(mapper, None, state)  # the model's hooks: keys, timestamps
    listed = {e.name: (links or {}).get(e.name, []) for e in view.embedded if e.many}
    named = {e.key: getattr(row, e.key) for e in view.references if e.key}
    embedded = await references(db, view, getattr(row, view.owner), named, listed)
    checked = caller is not None
    statement = STATEMENTS.get(
        db.dialect, (view, "insert", checked), lambda: _insert_statement(view, checked)
    )
    values = {column.key: getattr(row, column.key) for column in mapper.columns}

    async def write() -> None:
        sid = None if caller is None else caller.session_id
        if not await db.fetch(statement, sid=sid, **values):
            raise AuthenticationFailed()
        for name, ids in listed.items():
            await _link(db, view, name, row.id, ids)  # type: ignore[attr-defined]

    try:
        async with db.transaction() if any(listed.values()) else db.turn():
            await write()
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
            embedded[e.name] = await _owned(db, e, listed[e.name], owner, ["body", field])
        elif e.key is not None and e.key in named:
            ref = named[e.key]
            found = await _owned(db, e, [] if ref is None else [ref], owner, ["body", e.key])
            if e in view.embedded:
                embedded[e.name] = found[0] if found else None
    return embedded


def _owned_statement(e: Embedded, count: int) -> Any:
    model_id = e.model.__table__.c.id
    ids = [bindparam(f"id{i}", type_=model_id.type) for i in range(count)]
    return (
        select(*(getattr(e.model, field) for field in e.fields))
        .where(model_id.in_(ids), e.model.owner_id == bindparam("owner"))
        .order_by(*e.order_by)
    )


async def _owned(
    db: Driver, e: Embedded, ids: Sequence[uuid.UUID], owner: uuid.UUID, loc: list[str | int]
) -> list[dict[str, Any]]:
    unique = list(dict.fromkeys(ids))
    if not unique:
        return []
    statement = STATEMENTS.get(
        db.dialect, (e, len(unique)), lambda: _owned_statement(e, len(unique))
    )
    values = {f"id{i}": row_id for i, row_id in enumerate(unique)}
    found = [
        dict(zip(e.fields, row, strict=True))
        for row in await db.fetch(statement, owner=owner, **values)
    ]
    known = {row["id"] for row in found}
    for position, wanted in enumerate(ids):
        if wanted not in known:
            where = [*loc, position] if e.many else loc
            raise InvalidField(
                where, f"The owner has no {e.model.__name__.lower()} with id {wanted}."
            )
    return found


def _link_table(view: View, name: str) -> tuple[Table, str, str]:
    """A many-to-many relationship's table, and its columns for each side."""
    prop = inspect(view.model).relationships[name]
    [(_, parent)] = prop.synchronize_pairs
    [(_, target)] = prop.secondary_synchronize_pairs
    return prop.secondary, parent.key, target.key


async def _link(
    db: Driver, view: View, name: str, row_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    table, parent, target = _link_table(view, name)
    statement = STATEMENTS.get(
        db.dialect,
        (view, "link", name),
        lambda: insert_into(table).values({c.key: bindparam(c.key, type_=c.type) for c in table.c}),
    )
    await db.run_many(statement, [{parent: row_id, target: i} for i in dict.fromkeys(ids)])


async def _relink(
    db: Driver, view: View, name: str, row_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> bool:
    """Replace a row's links of one relationship; whether they changed."""
    table, parent, target = _link_table(view, name)
    current = STATEMENTS.get(
        db.dialect,
        (view, "links", name),
        lambda: select(table.c[target]).where(table.c[parent] == bindparam("row_id")),
    )
    if {i for (i,) in await db.fetch(current, row_id=row_id)} == set(ids):
        return False
    unlink = STATEMENTS.get(
        db.dialect,
        (view, "unlink", name),
        lambda: delete(table).where(table.c[parent] == bindparam("row_id")),
    )
    await db.fetch(unlink, row_id=row_id)
    if ids:
        await _link(db, view, name, row_id, ids)
    return True


async def lock(
    session: AsyncSession,
    view: View,
    row_id: uuid.UUID,
    caller: Caller | None = None,
    superuser: bool = False,
) -> Any:
    """The row `row_id` that `caller` may change (401, 403 as `check_caller`, 404). A
    versioned row is locked until the transaction ends: a concurrent change waits for this
    one and then sees its version, instead of failing its versioned UPDATE. (A user, whose
    rules lock every superuser's row in one order, is not: see `ensure_not_last_superuser`.)"""
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
) -> bool:
    """Set the fields `changes` changes and replace the links `links` lists, each row
    referred to being the row owner's (422). Any change, a link's included, stamps
    `updated_at`, so a versioned row's version moves too. Whether anything changed."""
    db = await Driver.of(await session.connection())
    changed = {field: value for field, value in changes.items() if getattr(row, field) != value}
    await references(db, view, getattr(row, view.owner), changed, links or {})
    moved = bool(changed)
    for name, ids in (links or {}).items():
        moved = await _relink(db, view, name, row.id, ids) or moved
    if moved:
        row.sqlmodel_update(changed)
        row.updated_at = utcnow()
    return moved
