"""SQLite's part of the engine: per-connection settings, and writers that take turns."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_

# Execution option that makes a SQLite transaction take the write lock when it begins.
SQLITE_WRITE = "sqlite_begin_immediate"
BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"


class WriterQueue:
    """SQLite has one write lock per file, and its busy handler is not fair: a writer that
    waits sleeps in growing steps (up to 100 ms), so a newer writer often takes the lock
    first, and under load an old one can wait past any timeout. The writers of this process
    therefore take turns here, in arrival order, and SQLite's busy handler is left to
    arbitrate only between processes. A turn lasts one write transaction (up to the
    connection's return to the pool) or one self-committing statement (`turn()`)."""

    def __init__(self, timeout: float) -> None:
        self._lock = asyncio.Lock()  # wakes its waiters first in, first out
        self._timeout = timeout
        self._holder: Any = None  # the driver connection whose transaction has the turn

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._lock.acquire()
        except TimeoutError:
            raise TimeoutError("no turn to write within the SQLite busy timeout") from None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._lock.release()

    def begin(self, dbapi_connection: Any) -> None:
        """Called as a write transaction begins (inside SQLAlchemy's greenlet)."""
        await_(self._acquire())
        self._holder = dbapi_connection

    def end(self, dbapi_connection: Any) -> None:
        """Called as a connection goes back to the pool or is thrown away: any transaction
        on it is over by then (committed, or rolled back by the pool's reset)."""
        if dbapi_connection is not None and dbapi_connection is self._holder:
            self._holder = None
            self._lock.release()


def configure_sqlite(engine: AsyncEngine, busy_timeout: float, writers: WriterQueue) -> None:
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from the driver, so that writers can BEGIN IMMEDIATE (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            f"busy_timeout={busy_ms}",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes cannot wait for the lock: SQLite
        # fails it with "database is locked". Writers take the lock up front and queue instead.
        immediate = connection.get_execution_options().get(SQLITE_WRITE, False)
        if immediate:
            writers.begin(connection.connection.dbapi_connection)
        connection.exec_driver_sql(BEGIN_IMMEDIATE if immediate else "BEGIN")

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # The pool's own reset is a ROLLBACK on every return, which on aiosqlite is a hop to
        # the connection's thread even when nothing is open: most returns come from
        # single-statement reads on the driver, outside any transaction. Roll back only a
        # transaction that is still open (SQLite knows, without a hop).
        if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        writers.end(dbapi_connection)

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        writers.end(dbapi_connection)
