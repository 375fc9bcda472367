"""Statements compiled once per dialect and shape, run on the driver without a session's BEGIN,
cursor calls and ROLLBACK. Rows still hold what the ORM would load (the types' processors)."""

import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, NamedTuple, NoReturn

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import ReturnsRows
from sqlalchemy.util import greenlet_spawn

from project.db.pool import checkout
from project.db.sqlite import BEGIN_IMMEDIATE


class Compiled(NamedTuple):
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # (name, processor), in order
    defaults: dict[str, Any]  # values fixed in the statement itself
    # (column index, processor, group): a group (one per type) converts each value once a fetch.
    converters: tuple[tuple[int, Callable[[Any], Any], int], ...]

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        given = {**self.defaults, **values}
        return [given[n] if bind is None else bind(given[n]) for n, bind in self.binds]


_COMPILED: dict[tuple[str, Hashable], Compiled] = {}


def compile_once(dialect: Dialect, key: Hashable, build: Callable[[], ReturnsRows]) -> Compiled:
    """`build()` compiled once per dialect and `key`, which fixes its shape (values bound later)."""
    if (found := _COMPILED.get((dialect.name, key))) is not None:
        return found
    stmt = build()
    compiled = stmt.compile(dialect=dialect)
    binds = tuple(
        (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup or ()
    )
    groups: dict[Any, int] = {}
    converters = tuple(
        (i, process, groups.setdefault(type(column.type), len(groups)))
        for i, column in enumerate(stmt.exported_columns)
        if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
    )
    found = Compiled(compiled.string, binds, compiled.params, converters)
    _COMPILED[dialect.name, key] = found
    return found


class Driver(AbstractAsyncContextManager["Driver"]):
    """Runs compiled statements on one connection: an `AsyncConnection`'s (`of`) or the pool's,
    taken on first use till `release`. An `idempotent` one skips `ping`, reruns if it was dead."""

    def __init__(
        self,
        engine: AsyncEngine,
        raw: PoolProxiedConnection | None = None,
        conn: AsyncConnection | None = None,
        idempotent: bool = False,
        turn: AbstractAsyncContextManager[Any] = nullcontext(),
    ) -> None:
        self._engine, self.dialect, self._raw, self._conn = engine, engine.dialect, raw, conn
        self._events = (engine.sync_engine if conn is None else conn.sync_connection).dispatch  # type: ignore[union-attr]
        self._driver: Any = raw and raw.driver_connection
        self._sqlite, self._retry = self.dialect.name == "sqlite", idempotent
        self._turn = turn  # a writer's turn (SQLite: one writer of this process at a time)

    @classmethod
    async def of(cls, conn: AsyncConnection) -> "Driver":
        return cls(conn.engine, await conn.get_raw_connection(), conn)

    async def _connect(self, checked: bool = True) -> Any:
        self._raw = await checkout(self._engine, checked=checked)
        self._driver = self._raw.driver_connection
        return self._driver

    async def release(self, *_: object) -> None:
        """Hand a connection taken from the pool back, once (its reset may need the greenlet)."""
        raw, self._raw, self._driver = self._raw, None, None
        if raw is not None and self._conn is None:
            await greenlet_spawn(raw.close)

    __aexit__ = release

    async def _lose(self) -> None:
        """Close a connection in doubt, never to be pooled again."""
        if self._conn is not None:
            await self._conn.invalidate()
        elif self._raw is not None:
            self._raw.invalidate()

    async def fetch(self, compiled: Compiled, **values: Any) -> list[tuple[Any, ...]]:
        sql, args = compiled.sql, compiled.arguments(values)
        if self._events.before_cursor_execute:  # for SQL logging and counting
            self._events.before_cursor_execute(self._conn, None, sql, args, None, False)
        while True:
            try:
                driver = self._driver or await self._connect(checked=not self._retry)
                rows: Sequence[Any] = await (
                    driver.execute_fetchall(sql, args) if self._sqlite else driver.fetch(sql, *args)
                )
                break
            except Exception as exc:
                if not (self._retry and self._lost(exc)) or isinstance(exc, TimeoutError):
                    await self._raise(exc, sql)
                # Handed out unchecked and found dead: once more, on a connection checked first.
                await self._lose()
                self._retry = False
                await self._connect()
        known: list[dict[Any, Any]] = [{} for _ in compiled.converters]
        processed = []
        for row in rows:
            cells = list(row)
            for i, process, group in compiled.converters:
                if (value := cells[i]) is not None:
                    done = known[group].get(value)
                    if done is None:
                        done = known[group][value] = process(value)
                    cells[i] = done
            processed.append(tuple(cells))
        return processed

    async def run_many(self, compiled: Compiled, rows: Sequence[dict[str, Any]]) -> None:
        args = [compiled.arguments(values) for values in rows]
        try:
            await (self._driver or await self._connect()).executemany(compiled.sql, args)
        except Exception as exc:
            await self._raise(exc, compiled.sql)

    async def _raise(self, exc: Exception, sql: str) -> NoReturn:
        """`exc` as SQLAlchemy would have wrapped it; a connection left in doubt is closed."""
        if lost := self._lost(exc):
            await self._lose()
        if isinstance(exc, sqlite3.IntegrityError | asyncpg.IntegrityConstraintViolationError):
            raise IntegrityError(sql, None, exc) from exc
        raise DBAPIError(sql, None, exc, connection_invalidated=lost) from exc

    def _lost(self, exc: Exception) -> bool:
        """Whether `exc` leaves the connection in doubt (not an answer from a live session)."""
        if isinstance(exc, sqlite3.Error):
            return False
        return not isinstance(exc, asyncpg.PostgresError) or bool(self._driver.is_closed())

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Any]:
        """The writer's turn, the connection in hand first, as a session's writer takes them:
        waiting without one, while those ahead wait holding every connection, would deadlock."""
        try:
            driver = self._driver or await self._connect()
        except Exception as exc:
            await self._raise(exc, "BEGIN")
        async with self._turn:
            yield driver

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Every statement run inside is written, or none is (on a connection of its own)."""
        async with self.turn() as driver:
            try:
                # aiosqlite's connection and asyncpg's transaction both commit and roll back.
                tx = driver if self._sqlite else driver.transaction()
                await (driver.execute(BEGIN_IMMEDIATE) if self._sqlite else tx.start())
            except Exception as exc:
                await self._raise(exc, "BEGIN")
            try:
                yield
            except BaseException:
                try:
                    await tx.rollback()
                except Exception:
                    await self._lose()
                raise
            try:
                await tx.commit()
            except Exception as exc:
                await self._raise(exc, "COMMIT")
