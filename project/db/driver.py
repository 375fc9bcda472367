"""Statements run straight on a pooled driver connection (aiosqlite or asyncpg), compiled
once per dialect and shape.

Through an `AsyncSession` a read costs a BEGIN, then a cursor, an execute, a fetch and a
close per statement (on SQLite each is a hop to aiosqlite's thread), then a ROLLBACK. One
SELECT needs none of that: it is its own snapshot. Values still pass through the column
types' own processors, so rows hold what the ORM would have loaded (UUIDs, aware datetimes).
"""

import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import ReturnsRows
from sqlalchemy.util import greenlet_spawn

from project.db.pool import checkout
from project.db.sqlite import BEGIN_IMMEDIATE

Processor = Callable[[Any], Any] | None
Turn = Callable[[], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    names: tuple[str, ...]  # bind parameter names, in positional order
    defaults: dict[str, Any]  # values fixed in the statement itself
    binds: tuple[Processor, ...]
    # (column index, processor, group): columns of one type share a group, whose values are
    # converted once per fetch (a page repeats its owner, a team, timestamps).
    converters: tuple[tuple[int, Callable[[Any], Any], int], ...]


def compile_statement(stmt: ReturnsRows, dialect: Dialect) -> Compiled:
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    columns = stmt.exported_columns
    groups: dict[Any, int] = {}
    converters = tuple(
        (i, process, groups.setdefault(column.type.__class__, len(groups)))
        for i, column in enumerate(columns)
        if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
    )
    return Compiled(compiled.string, names, dict(compiled.params), binds, converters)


class Statements:
    """Compiled statements by a key that fixes their shape (the values are bound later)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, Hashable], Compiled] = {}

    def get(self, dialect: Dialect, key: Hashable, build: Callable[[], ReturnsRows]) -> Compiled:
        found = self._cache.get((dialect.name, key))
        if found is None:
            found = self._cache[(dialect.name, key)] = compile_statement(build(), dialect)
        return found


STATEMENTS = Statements()


class Driver:
    """Runs compiled statements on the driver of one pooled connection: that of an open
    `AsyncConnection` (`Driver.of`, inside its transaction), or one taken from the pool on
    first use, where each statement commits on its own unless in `transaction()`, and
    handed back by `release` (or the end of `async with`).

    With `idempotent` (statements that may safely run twice: reads), that connection is
    taken without the pool's `ping`, which costs a round trip per request on PostgreSQL; a
    statement that finds it dead runs again on a checked one instead."""

    def __init__(
        self,
        engine: AsyncEngine,
        raw: PoolProxiedConnection | None = None,
        conn: AsyncConnection | None = None,
        idempotent: bool = False,
        turn: Turn = nullcontext,
    ) -> None:
        self._engine = engine
        self._raw = raw
        self._driver: Any = raw and raw.driver_connection
        self._conn = conn
        self._sqlite = engine.dialect.name == "sqlite"
        self._retry = idempotent
        self.turn = turn  # a writer's turn (SQLite: one writer of this process at a time)

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    async def __aenter__(self) -> "Driver":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.release()

    @classmethod
    async def of(cls, conn: AsyncConnection) -> "Driver":
        return cls(conn.engine, await conn.get_raw_connection(), conn)

    async def _connect(self, checked: bool) -> Any:
        self._raw = await checkout(self._engine, checked=checked)
        self._driver = self._raw.driver_connection
        return self._driver

    async def release(self) -> None:
        """Hand a connection taken from the pool back, once (its reset may need the driver:
        hence in SQLAlchemy's greenlet)."""
        raw, self._raw, self._driver = self._raw, None, None
        if raw is not None and self._conn is None:
            await greenlet_spawn(raw.close)

    async def _lose(self) -> None:
        """The connection is in doubt: it is closed, never pooled again."""
        if self._conn is not None:
            await self._conn.invalidate()
        elif self._raw is not None:
            self._raw.invalidate()

    def _arguments(self, compiled: Compiled, values: dict[str, Any]) -> list[Any]:
        given = {**compiled.defaults, **values}
        return [
            value if bind is None else bind(value)
            for bind, value in zip(compiled.binds, (given[n] for n in compiled.names), strict=True)
        ]

    async def fetch(self, compiled: Compiled, **values: Any) -> list[tuple[Any, ...]]:
        """Run one compiled statement with `values` for its bind parameters; the rows, their
        values processed as the column types say."""
        args = self._arguments(compiled, values)
        # SQL logging and counting still see the statement.
        on = self._engine.sync_engine if self._conn is None else self._conn.sync_connection
        events = on.dispatch  # type: ignore[union-attr]
        if events.before_cursor_execute:
            events.before_cursor_execute(self._conn, None, compiled.sql, args, None, False)
        while True:
            try:
                driver = self._driver or await self._connect(checked=not self._retry)
                if self._sqlite:
                    rows: Sequence[Any] = await driver.execute_fetchall(compiled.sql, args)
                else:
                    rows = await driver.fetch(compiled.sql, *args)
                break
            except Exception as exc:
                if self._retry and self._lost(exc) and not isinstance(exc, TimeoutError):
                    # Handed out unchecked and found dead (the database restarted, or ended
                    # the connection): once more, on a connection checked first.
                    await self._lose()
                    self._retry = False
                    await self._connect(checked=True)
                    continue
                await self._raise(exc, compiled.sql)
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

    async def run_many(self, compiled: Compiled, rows: Sequence[dict[str, Any]]) -> None:
        """Run one compiled write once per row of values."""
        args = [self._arguments(compiled, values) for values in rows]
        try:
            driver = self._driver or await self._connect(checked=True)
            await driver.executemany(compiled.sql, args)
        except Exception as exc:
            await self._raise(exc, compiled.sql)

    async def _raise(self, exc: Exception, sql: str) -> NoReturn:
        """`exc` as SQLAlchemy would have wrapped it; a connection left in doubt is closed."""
        lost = self._lost(exc)
        if lost:
            await self._lose()
        if isinstance(exc, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
            raise IntegrityError(sql, None, exc) from exc
        raise DBAPIError(sql, None, exc, connection_invalidated=lost) from exc

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
    async def transaction(self) -> AsyncIterator[None]:
        """Every statement run inside is written, or none is (on a connection of its own)."""
        async with self.turn():
            try:
                driver = self._driver or await self._connect(checked=True)
                if self._sqlite:
                    await driver.execute(BEGIN_IMMEDIATE)
                    done, undo = driver.commit, driver.rollback
                else:
                    tx = driver.transaction()
                    await tx.start()
                    done, undo = tx.commit, tx.rollback
            except Exception as exc:
                await self._raise(exc, "BEGIN")
            try:
                yield
            except BaseException:
                try:
                    await undo()
                except Exception:
                    await self._lose()
                raise
            try:
                await done()
            except Exception as exc:
                await self._raise(exc, "COMMIT")
