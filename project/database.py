"""The async engine, the session factory and the per-request session dependency."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import await_

from project.config import Settings
from project.errors import PreconditionFailed, integrity_problem
from project.pool import FairQueuePool
from project.sqlite import SQLITE_WRITE, WriterQueue, configure_sqlite

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_engine(settings: Settings, writers: WriterQueue | None = None) -> AsyncEngine:
    """The engine for `settings`; on SQLite its writers take turns on `writers` (a queue of
    their own if none is given)."""
    options: dict[str, Any] = {
        "poolclass": FairQueuePool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        # Errors quote their SQL but not its values: those include emails and password hashes,
        # and an error ends up in the log.
        "hide_parameters": True,
    }
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            **options,
            connect_args={"timeout": settings.sqlite_busy_timeout},
            pool_reset_on_return=None,  # see `_on_reset` in project/sqlite.py
        )
        configure_sqlite(
            engine,
            settings.sqlite_busy_timeout,
            writers or WriterQueue(settings.sqlite_busy_timeout),
        )
        return engine
    engine = create_async_engine(
        settings.database_url,
        **options,
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
        raise integrity_problem(exc, conflict) from exc
    except StaleDataError as exc:
        await session.rollback()
        raise PreconditionFailed() from exc
