"""The async engine, the session factory and the per-request session dependency."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm.exc import StaleDataError

from project.config import Settings
from project.db.driver import Driver
from project.db.pool import FairQueuePool, ping
from project.db.schema import ALEMBIC_INI
from project.db.sqlite import SQLITE_WRITE, WriterQueue, configure_sqlite
from project.errors import CONFLICT, PreconditionFailed, integrity_problem

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
            pool_reset_on_return=None,  # see `_on_reset` in project/db/sqlite.py
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
        event.listen(engine.sync_engine, "checkout", ping)
    return engine


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

    def driver(self, idempotent: bool = False) -> Driver:
        """A connection of its own, taken on first use, for statements on the driver (see
        `project.db.driver`); `async with` hands it back."""
        return Driver(self.engine, idempotent=idempotent, turn=self.write_turn)

    def write_turn(self) -> AbstractAsyncContextManager[None]:
        """Around a write outside a session: on SQLite, this process's turn to write."""
        return nullcontext() if self._writers is None else self._writers.turn()

    def pool_status(self) -> dict[str, int]:
        return {
            "in_use": self.engine.pool.checkedout(),  # type: ignore[attr-defined]
            "capacity": self.settings.db_pool_size + self.settings.db_max_overflow,
        }

    async def dispose(self) -> None:
        await self.engine.dispose()


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
    The route closes it earlier, as soon as the response is built (see `release`)."""
    async with get_database(request).session(write=request.method in WRITE_METHODS) as session:
        request.state.db_session = session
        yield session


async def release(request: Request) -> None:
    """Hand the request's connections back to the pool before the response is sent: a slow
    client must not hold a connection, nor leave one idle in a transaction."""
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is not None:
        await session.close()
    driver: Driver | None = getattr(request.state, "db_driver", None)
    if driver is not None:
        await driver.release()


async def flush(session: AsyncSession, conflict: str = CONFLICT) -> None:
    """Write what the session holds, turning a unique clash into 409 and a lost version race
    into 412. The clash comes from the database constraint itself, so two racing requests
    cannot both pass."""
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise integrity_problem(exc, conflict) from exc
    except StaleDataError as exc:
        await session.rollback()
        raise PreconditionFailed() from exc


async def commit(session: AsyncSession, conflict: str = CONFLICT) -> None:
    """`flush`, then commit."""
    await flush(session, conflict)
    await session.commit()
