"""The async engine, the session factory and the per-request session dependency."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import (
    AsyncAdaptedQueuePool,
    ConnectionPoolEntry,
    PoolProxiedConnection,
    PoolResetState,
)
from sqlalchemy.util import await_, memoized_property
from sqlalchemy.util.queue import AsyncAdaptedQueue

from project.config import Settings
from project.errors import Conflict, PreconditionFailed

# Execution option that makes a SQLite transaction take the write lock when it begins.
SQLITE_WRITE = "sqlite_begin_immediate"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def create_engine(settings: Settings, writers: WriterQueue | None = None) -> AsyncEngine:
    """The engine for `settings`; on SQLite its writers take turns on `writers` (a queue of
    their own if none is given)."""
    pool: dict[str, Any] = {
        "poolclass": FairQueuePool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
    }
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            **pool,
            connect_args={"timeout": settings.sqlite_busy_timeout},
            pool_reset_on_return=None,  # see `_on_reset`
        )
        _configure_sqlite(engine, settings, writers or WriterQueue(settings.sqlite_busy_timeout))
        return engine
    engine = create_async_engine(
        settings.database_url,
        **pool,
        pool_recycle=settings.db_pool_recycle,
        connect_args={
            "timeout": settings.db_connect_timeout,
            "command_timeout": settings.db_statement_timeout + 1,
            "server_settings": {
                "application_name": "heroes-api",
                "statement_timeout": str(int(settings.db_statement_timeout * 1000)),
                "idle_in_transaction_session_timeout": str(
                    int(settings.db_statement_timeout * 3000)
                ),
            },
        },
    )
    if settings.db_pool_pre_ping:
        event.listen(engine.sync_engine, "checkout", _ping)
    return engine


# Set while checking out a connection whose user retries on a fresh one instead (see
# `checkout`).
_UNCHECKED: ContextVar[bool] = ContextVar("unchecked_checkout", default=False)


def _ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Check a pooled connection before handing it out, so that after a database restart a
    stale connection is replaced instead of failing a request. One round trip: SQLAlchemy's
    own pre-ping takes three on asyncpg (BEGIN, the ping, ROLLBACK), a cost the fast
    single-statement paths would pay on every request."""
    if _UNCHECKED.get():
        return
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as exc:
        raise DisconnectionError("stale pooled connection") from exc


async def checkout(engine: AsyncEngine, *, checked: bool = True) -> PoolProxiedConnection:
    """A pooled connection, without the `Connection` object SQLAlchemy builds around one,
    for statements run straight on its driver. Errors come wrapped as `engine.connect()`
    wraps them (a refused connection is an `OperationalError`).

    `checked=False` skips the check above, for a caller that finds out by using the
    connection and then retries on a checked one: a read that is its own statement, which
    then costs one round trip instead of two."""
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


def _configure_sqlite(engine: AsyncEngine, settings: Settings, writers: WriterQueue) -> None:
    busy_ms = int(settings.sqlite_busy_timeout * 1000)

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
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

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


class Database:
    """The engine of this process and the session factories bound to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._writers = WriterQueue(settings.sqlite_busy_timeout) if settings.is_sqlite else None
        self.engine = create_engine(settings, self._writers)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        writer = (
            self.engine.execution_options(**{SQLITE_WRITE: True})
            if settings.is_sqlite
            else self.engine
        )
        self.write_sessions = async_sessionmaker(writer, expire_on_commit=False)

    def session(self, write: bool = False) -> AsyncSession:
        return (self.write_sessions if write else self.sessions)()

    def write_turn(self) -> AbstractAsyncContextManager[None]:
        """Around a write that commits by itself outside a session (one INSERT on the
        driver): on SQLite, this process's turn to write (see `WriterQueue`)."""
        return nullcontext() if self._writers is None else self._writers.turn()

    def pool_status(self) -> dict[str, int]:
        return {
            "in_use": self.engine.pool.checkedout(),  # type: ignore[attr-defined]
            "capacity": self.settings.db_pool_size + self.settings.db_max_overflow,
        }

    async def dispose(self) -> None:
        await self.engine.dispose()


ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


async def migrate(database_url: str) -> None:
    """`alembic upgrade head`, from inside a running event loop (env.py runs its own)."""

    def upgrade() -> None:
        config = AlembicConfig(str(ALEMBIC_INI))
        config.attributes["database_url"] = database_url
        config.attributes["configure_logging"] = False
        command.upgrade(config, "head")

    await anyio.to_thread.run_sync(upgrade)


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request. Handlers commit before they return: code after this
    `yield` runs after the response is sent, so it only closes (and rolls back leftovers).
    The route closes it earlier, as soon as the response is built (see `release_session`)."""
    async with get_database(request).session(write=request.method in WRITE_METHODS) as session:
        request.state.db_session = session
        yield session


async def release_session(request: Request) -> None:
    """Close the request's session, ending its transaction and returning its connection to
    the pool before the response is sent: a slow client must not hold a connection, nor
    leave one idle in a transaction."""
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is not None:
        await session.close()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def commit(
    session: AsyncSession, conflict: str = "That conflicts with existing data."
) -> None:
    """Commit, turning a unique clash into 409 and a lost version race into 412. The clash
    comes from the database constraint itself, so two racing requests cannot both pass."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc
    except StaleDataError as exc:
        await session.rollback()
        raise PreconditionFailed() from exc
