"""The async engine, the session factory, the per-request session dependency, and the schema:
migrating it, and whether its Alembic revision is the one this code was written for."""

from collections.abc import AsyncIterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple, cast

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio.engine import create_async_engine
from sqlalchemy.orm.exc import StaleDataError

from project.config import Settings
from project.db.driver import Driver
from project.db.pool import FairQueuePool, ping
from project.db.sqlite import SQLITE_WRITE, WriterQueue, configure_sqlite
from project.errors import CONFLICT, PreconditionFailed, integrity_problem

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_engine(settings: Settings, writers: WriterQueue | None = None) -> AsyncEngine:
    """The engine for `settings`; on SQLite its writers take turns on `writers` (or their own)."""
    timeout, busy = settings.db_statement_timeout, settings.sqlite_busy_timeout
    options: dict[str, Any] = {
        "poolclass": FairQueuePool,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "hide_parameters": True,  # they include emails and password hashes; errors are logged
    }
    if settings.is_sqlite:  # no reset on return: see `_on_reset` in project/db/sqlite.py
        options |= {"connect_args": {"timeout": busy}, "pool_reset_on_return": None}
    else:
        options["pool_recycle"] = settings.db_pool_recycle
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout,
            "command_timeout": timeout + 1,
            "server_settings": {
                "application_name": "heroes-api",
                "statement_timeout": str(int(timeout * 1000)),
                "idle_in_transaction_session_timeout": str(int(timeout * 3000)),
            },
        }
    engine = create_async_engine(settings.database_url, **options)
    if settings.is_sqlite:
        configure_sqlite(engine, busy, writers or WriterQueue(busy))
    elif settings.db_pool_pre_ping:
        event.listen(engine.sync_engine, "checkout", ping)
    return engine


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        writers = WriterQueue(settings.sqlite_busy_timeout) if settings.is_sqlite else None
        self.engine = create_engine(settings, writers)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(**{SQLITE_WRITE: True}) if writers else None
        self.write_sessions = async_sessionmaker(writer or self.engine, expire_on_commit=False)
        # Around a write outside a session: on SQLite, this process's turn to write.
        self.write_turn = writers or nullcontext()

    def session(self, write: bool = False) -> AsyncSession:
        return (self.write_sessions if write else self.sessions)()

    def driver(self, idempotent: bool = False) -> Driver:
        """A connection of its own for statements on the driver, taken on first use."""
        return Driver(self.engine, idempotent=idempotent, turn=self.write_turn)

    def pool_status(self) -> dict[str, int]:
        size = self.settings.db_pool_size + self.settings.db_max_overflow
        return {"in_use": self.engine.pool.checkedout(), "capacity": size}  # type: ignore[attr-defined]


async def migrate(database_url: str) -> None:
    """`alembic upgrade head`, from inside a running event loop (env.py runs its own)."""
    config = AlembicConfig(str(ALEMBIC_INI))
    config.attributes.update(database_url=database_url, configure_logging=False)
    await anyio.to_thread.run_sync(command.upgrade, config, "head")


class Revisions(NamedTuple):
    """The Alembic revisions this code knows, and the heads it was written for."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def load(cls) -> "Revisions":
        """Read `alembic/versions` (blocking: files are read and imported)."""
        script = ScriptDirectory.from_config(AlembicConfig(str(ALEMBIC_INI)))
        known = frozenset(revision.revision for revision in script.walk_revisions())
        return cls(frozenset(script.get_heads()), known)

    async def problem(self, connection: AsyncConnection) -> str | None:
        """What keeps this database from serving this code, or None (a newer schema is fine)."""
        current: frozenset[str] = await connection.run_sync(
            lambda sync: frozenset(MigrationContext.configure(sync).get_current_heads())
        )
        if not current:
            return "The database has no schema yet: run `alembic upgrade head`."
        if current == self.heads or not current <= self.known:
            return None
        return (
            f"The database schema is at revision {', '.join(sorted(current))} and this code "
            f"needs {', '.join(sorted(self.heads))}: run `alembic upgrade head`."
        )


def get_database(request: Request) -> Database:
    return cast(Database, request.app.state.database)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, which handlers commit (code after `yield` follows the response)."""
    async with get_database(request).session(write=request.method in WRITE_METHODS) as session:
        request.state.db_session = session
        yield session


async def release(request: Request) -> None:
    """Hand the request's connections back before the response: a slow client must hold none."""
    if (session := getattr(request.state, "db_session", None)) is not None:
        await session.close()
    if (driver := getattr(request.state, "db_driver", None)) is not None:
        await driver.release()


async def commit(session: AsyncSession, conflict: str = CONFLICT, flush_only: bool = False) -> None:
    """Flush, commit unless `flush_only`: a unique clash is a 409, a lost version race a 412."""
    try:
        await session.flush()
    except (IntegrityError, StaleDataError) as exc:
        await session.rollback()
        if isinstance(exc, StaleDataError):
            raise PreconditionFailed() from exc
        raise integrity_problem(exc, conflict) from exc
    if not flush_only:
        await session.commit()
