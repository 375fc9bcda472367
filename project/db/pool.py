"""The connection pool: first come, first served; checked before use, unless the user retries."""

import asyncio
from contextvars import ContextVar
from typing import Any

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_, memoized_property
from sqlalchemy.util.queue import AsyncAdaptedQueue


class _IdleConnections(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """Unbounded (`FairQueuePool` decides what to keep); `maxsize` still reads `pool_size`."""

    @memoized_property
    def _queue(self) -> asyncio.Queue[ConnectionPoolEntry]:
        return asyncio.LifoQueue() if self.use_lifo else asyncio.Queue()


class FairQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async pool, first come, first served (sqlalchemy/sqlalchemy#7679): checkouts
    take FIFO semaphore tickets, and a connection returned is kept while someone waits for one."""

    _queue_class = _IdleConnections
    # Log as the pool it extends, under SQLAlchemy's loggers (quiet unless asked for).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # Settings: pool_size >= 1, max_overflow >= 0
        self._tickets, self._waiting = asyncio.Semaphore(self.size() + self._max_overflow), 0

    async def _ticket(self) -> None:
        self._waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._tickets.acquire()
        except TimeoutError:
            raise exc.TimeoutError(
                f"QueuePool limit of size {self.size()} overflow {self._max_overflow} reached,"
                f" connection timed out, timeout {self._timeout:0.2f}",
                code="3o7r",
            ) from None
        finally:
            self._waiting -= 1

    def _do_get(self) -> ConnectionPoolEntry:
        # A free ticket with nobody waiting cannot block: no timer.
        await_(self._ticket() if self._tickets.locked() else self._tickets.acquire())
        try:
            return super()._do_get()
        except BaseException:
            self._tickets.release()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            if self._waiting or self._pool.qsize() < self.size():
                self._pool.put(record, False)
            else:
                try:
                    record.close()
                finally:
                    self._dec_overflow()
        finally:
            self._tickets.release()


# Set while checking out a connection whose user retries on a fresh one instead.
_UNCHECKED: ContextVar[bool] = ContextVar("unchecked_checkout", default=False)


def ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A `checkout` hook that replaces a stale connection in one round trip (pre-ping: three)."""
    try:
        if not _UNCHECKED.get():
            await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as error:
        raise exc.DisconnectionError("stale pooled connection") from error


async def checkout(engine: AsyncEngine, *, checked: bool = True) -> PoolProxiedConnection:
    """A pooled connection without a `Connection` around it, errors wrapped as `connect()`'s."""
    dialect, dbapi, token = engine.dialect, engine.dialect.loaded_dbapi, _UNCHECKED.set(not checked)
    try:
        return await engine.raw_connection()
    except dbapi.Error as error:
        lost = dialect.is_disconnect(error, None, None)
        raise exc.DBAPIError.instance(
            None, None, error, dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from error
    finally:
        _UNCHECKED.reset(token)
