"""The connection pool: connections handed out in the order they were asked for, checked
before use, or taken unchecked by a caller that retries instead."""

import asyncio
from contextvars import ContextVar
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_, memoized_property
from sqlalchemy.util.queue import AsyncAdaptedQueue


class _IdleConnections(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's idle connections, with no bound of their own: `FairQueuePool` decides
    which returning connections to keep. `maxsize` still reads `pool_size`, which the pool's
    accounting (`size()`, `checkedout()`) is built on."""

    @memoized_property
    def _queue(self) -> asyncio.Queue[ConnectionPoolEntry]:
        return asyncio.LifoQueue() if self.use_lifo else asyncio.Queue()


class FairQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async pool, with connections handed out in the order they were asked for.

    The stock pool is not fair (sqlalchemy/sqlalchemy#7679): a task that returns a
    connection and at once asks for another takes it back ahead of the tasks already
    waiting, and a woken waiter that finds the pool empty again goes to the back of the
    line. Under a steady load above the pool's size some requests then wait past the pool
    timeout and fail with 503 while others never wait. Here every checkout first takes a
    ticket from a first-in, first-out semaphore with one ticket per connection the pool may
    open, so the pool itself never makes anyone wait and the longest waiter is served first.

    A returning connection is kept when someone waits for a ticket, even beyond
    `pool_size` idle connections (bounded by the ticket count): the stock pool would close
    an overflow connection there and open a new one for the waiter a moment later."""

    _queue_class = _IdleConnections
    # Log as the pool it extends, under SQLAlchemy's loggers (quiet unless asked for).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._max_overflow < 0:  # pool_size=0 or max_overflow=-1: no bound to be fair about
            raise ValueError("FairQueuePool needs pool_size >= 1 and max_overflow >= 0")
        self._tickets = asyncio.Semaphore(self.size() + self._max_overflow)
        self._waiting = 0

    async def _ticket(self) -> None:
        self._waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._tickets.acquire()
        except TimeoutError:
            raise sa_exc.TimeoutError(
                f"QueuePool limit of size {self.size()} overflow {self._max_overflow} reached,"
                f" connection timed out, timeout {self._timeout:0.2f}",
                code="3o7r",
            ) from None
        finally:
            self._waiting -= 1

    def _do_get(self) -> ConnectionPoolEntry:
        if self._tickets.locked():
            await_(self._ticket())
        else:  # a ticket is free and nobody waits: taking it cannot block, so no timer
            await_(self._tickets.acquire())
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
    """A pool `checkout` hook: check a connection before handing it out, so that after a
    database restart a stale one is replaced instead of failing a request. One round trip
    (SQLAlchemy's own pre-ping takes three on asyncpg: BEGIN, the ping, ROLLBACK)."""
    if _UNCHECKED.get():
        return
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as exc:
        raise DisconnectionError("stale pooled connection") from exc


async def checkout(engine: AsyncEngine, *, checked: bool = True) -> PoolProxiedConnection:
    """A pooled connection, without the `Connection` SQLAlchemy builds around one. Errors
    come wrapped as `engine.connect()` wraps them (a refused connection is an
    `OperationalError`). `checked=False` skips the `ping`, for a caller that finds out by
    using the connection and then retries on a checked one."""
    token = _UNCHECKED.set(not checked)
    try:
        return await engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as exc:
        dialect = engine.dialect
        raise DBAPIError.instance(
            None,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(exc, None, None),
            dialect=dialect,
        ) from exc
    finally:
        _UNCHECKED.reset(token)
