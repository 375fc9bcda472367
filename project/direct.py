"""Reads that skip the ORM session: one SELECT, compiled once per dialect, run straight on
the pooled driver connection (aiosqlite or asyncpg).

Through an `AsyncSession` a read costs a BEGIN, then a cursor, an execute, a fetch and a
close per statement (on SQLite each is a hop to aiosqlite's thread), then a ROLLBACK. One
SELECT needs none of that: it is its own snapshot. Values still pass through the column
types' own processors, so rows hold what the ORM would have loaded (UUIDs, aware datetimes).
"""

import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Insert, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from project.database import checkout

Processor = Callable[[Any], Any] | None
AnySelect = Select[*tuple[Any, ...]]
AnyInsert = Insert


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    names: tuple[str, ...]  # bind parameter names, in positional order
    defaults: dict[str, Any]  # values fixed in the statement itself
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    # (column index, processor, group): columns of one type share a group, whose values
    # are converted once per fetch (a page repeats its owner, a team, timestamps).
    converters: tuple[tuple[int, Callable[[Any], Any], int], ...]


def compile_select(stmt: AnySelect | AnyInsert, dialect: Dialect) -> Compiled:
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in stmt.exported_columns
    )
    groups: dict[Any, int] = {}
    converters = tuple(
        (i, process, groups.setdefault(column.type.__class__, len(groups)))
        for i, (process, column) in enumerate(zip(results, stmt.exported_columns, strict=True))
        if process is not None
    )
    return Compiled(compiled.string, names, dict(compiled.params), binds, results, converters)


class Statements:
    """Compiled statements by a key that fixes their shape (the values are bound later)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, Hashable], Compiled] = {}

    def get(
        self, dialect: Dialect, key: Hashable, build: Callable[[], AnySelect | AnyInsert]
    ) -> Compiled:
        found = self._cache.get((dialect.name, key))
        if found is None:
            found = self._cache[(dialect.name, key)] = compile_select(build(), dialect)
        return found


class Reader:
    """Runs compiled statements on the driver of one pooled connection: either the
    connection of an open `AsyncConnection` (`Reader.of`), or one taken from the pool by
    itself (`reader`), without the `Connection` object SQLAlchemy would build around it."""

    def __init__(
        self,
        engine: AsyncEngine,
        raw: PoolProxiedConnection,
        conn: AsyncConnection | None = None,
        retry: bool = False,
    ) -> None:
        self._engine = engine
        self._raw = raw
        self._driver: Any = raw.driver_connection
        self._conn = conn
        self._sqlite = engine.dialect.name == "sqlite"
        # Whether a statement that finds the connection lost may run again on a new one.
        self._retry = retry

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @classmethod
    async def of(cls, conn: AsyncConnection) -> "Reader":
        """A reader on `conn`, inside whatever transaction it has open."""
        return cls(conn.engine, await conn.get_raw_connection(), conn)

    async def release(self) -> None:
        """Hand a connection taken from the pool by itself back (its reset may need the
        driver: hence in SQLAlchemy's greenlet)."""
        await greenlet_spawn(self._raw.close)

    async def _lose(self) -> None:
        """The connection is in doubt: it is closed, never pooled again."""
        if self._conn is not None:
            await self._conn.invalidate()
        else:
            self._raw.invalidate()

    async def fetch(self, compiled: Compiled, **values: Any) -> list[tuple[Any, ...]]:
        """Run one compiled statement (a SELECT, or a write that commits by itself) with
        `values` for its bind parameters; the processed rows."""
        given = {**compiled.defaults, **values}
        args = [
            value if bind is None else bind(value)
            for bind, value in zip(compiled.binds, (given[n] for n in compiled.names), strict=True)
        ]
        # SQL logging and counting still see the statement (`conn` is None on a connection
        # taken from the pool by itself).
        on = self._engine.sync_engine if self._conn is None else self._conn.sync_connection
        events = on.dispatch  # type: ignore[union-attr]
        if events.before_cursor_execute:
            events.before_cursor_execute(self._conn, None, compiled.sql, args, None, False)
        while True:
            try:
                if self._sqlite:
                    rows: Sequence[Any] = await self._driver.execute_fetchall(compiled.sql, args)
                else:
                    rows = await self._driver.fetch(compiled.sql, *args)
                break
            except Exception as exc:
                lost = self._lost(exc)
                if lost:
                    await self._lose()
                    if self._retry and not isinstance(exc, TimeoutError):
                        # Handed out unchecked and found dead (the database restarted, or
                        # ended the connection): once more, on a connection checked first.
                        self._retry = False
                        self._raw = await checkout(self._engine)
                        self._driver = self._raw.driver_connection
                        continue
                if isinstance(
                    exc, (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
                ):
                    # A constraint the data broke (a row deleted meanwhile): a 409, as via
                    # the ORM.
                    raise IntegrityError(compiled.sql, None, exc) from exc
                raise DBAPIError(compiled.sql, None, exc, connection_invalidated=lost) from exc
        known: list[dict[Any, Any]] = [{} for _ in compiled.converters]
        processed = []
        for row in rows:
            cells = list(row)
            for i, process, group in compiled.converters:
                value = cells[i]
                if value is not None:
                    done = known[group].get(value)
                    if done is None:
                        done = known[group][value] = process(value)
                    cells[i] = done
            processed.append(tuple(cells))
        return processed

    def _lost(self, exc: Exception) -> bool:
        """Whether `exc` leaves the connection in doubt. An error the database answered
        leaves it usable, unless the server ended the session with it; anything else (a
        lost connection, a timeout) does not."""
        if isinstance(exc, sqlite3.Error):
            return False
        if isinstance(exc, asyncpg.PostgresError):
            return bool(self._driver.is_closed())
        return True


@asynccontextmanager
async def reader(engine: AsyncEngine, *, idempotent: bool = False) -> AsyncIterator[Reader]:
    """A pooled connection, outside any transaction: each statement is its own snapshot.

    With `idempotent` (statements that may safely run twice: reads), the connection is
    handed out without the pool's liveness check, which costs a round trip per request on
    PostgreSQL; a statement that finds it dead runs again on a checked one instead."""
    raw = await checkout(engine, checked=not idempotent)
    db = Reader(engine, raw, retry=idempotent)
    try:
        yield db
    finally:
        await db.release()
