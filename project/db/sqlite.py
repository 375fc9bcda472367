"""SQLite's part of the engine: per-connection settings, and writers that take turns."""

import asyncio
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_

# Execution option that makes a SQLite transaction take the write lock when it begins.
SQLITE_WRITE = "sqlite_begin_immediate"
BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"


class WriterQueue(asyncio.Lock):
    """SQLite's busy handler is unfair (newer writers win), so this process's writers take turns:
    a lock, which wakes waiters in order, held no longer than the busy timeout allows."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self._holder: Any = None  # the driver connection whose transaction has the turn

    async def acquire(self) -> Literal[True]:
        try:
            async with asyncio.timeout(self._timeout):
                return await super().acquire()
        except TimeoutError:
            raise TimeoutError("no turn to write within the SQLite busy timeout") from None

    def begin(self, dbapi_connection: Any) -> None:
        """As a write transaction begins (inside SQLAlchemy's greenlet)."""
        await_(self.acquire())
        self._holder = dbapi_connection

    def end(self, dbapi_connection: Any, *_: Any) -> None:
        """As a connection goes back to the pool or is thrown away, its transaction over."""
        if dbapi_connection is not None and dbapi_connection is self._holder:
            self._holder = None
            self.release()


def configure_sqlite(engine: AsyncEngine, busy_timeout: float, writers: WriterQueue) -> None:
    events = engine.sync_engine
    for name in ("checkin", "invalidate"):
        event.listen(events, name, writers.end)

    @event.listens_for(events, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is ours to send (see `_on_begin`)
        cursor = dbapi_connection.cursor()
        busy = f"busy_timeout={int(busy_timeout * 1000)}"
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", busy, "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(events, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads, then writes fails at once: writers lock up front.
        if immediate := connection.get_execution_options().get(SQLITE_WRITE, False):
            writers.begin(connection.connection.dbapi_connection)
        connection.exec_driver_sql(BEGIN_IMMEDIATE if immediate else "BEGIN")

    @event.listens_for(events, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # Not the pool's ROLLBACK on every return (a hop to aiosqlite's thread): only when open.
        if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()
