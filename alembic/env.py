"""Async Alembic environment: the URL comes from Settings, the metadata from project.models."""

import asyncio
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from project import models
from project.config import Settings
from project.database import create_engine
from project.db.sqlite import SQLITE_WRITE

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata

# Several workers or replicas may start at once; on PostgreSQL only one migrates at a time.
MIGRATION_LOCK_ID = 0x4845524F  # "HERO"


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render the project's column types as plain SQLAlchemy, so migrations import nothing
    from the application and stay valid when models.py changes."""
    if type_ == "type" and isinstance(obj, models.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else (url or "").split(":")[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=dialect.startswith("sqlite"),
        render_item=render_item,
        literal_binds=connection is None,
        # SQLite does transactional DDL once the driver stops managing BEGIN (database.py).
        transactional_ddl=True,
    )


def run_migrations_offline() -> None:
    _configure(url=Settings().database_url)
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """Foreign key enforcement on SQLite, set outside any transaction (inside one the pragma
    does nothing). A batch operation copies a table into a new one and drops the old: with
    enforcement on, dropping `users` would cascade and delete every team, hero and power."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection)
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
    if dialect == "sqlite":
        _sqlite_foreign_keys(connection, on=False)
    try:
        with context.begin_transaction():
            context.run_migrations()
            if dialect == "sqlite":
                # What enforcement would have refused, refused now: nothing is committed.
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:10]}")
    finally:
        if dialect == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        if dialect == "sqlite":
            _sqlite_foreign_keys(connection, on=True)


async def run_async_migrations() -> None:
    settings = Settings()
    url = config.attributes.get("database_url") or settings.database_url
    engine = create_engine(settings.model_copy(update={"database_url": url}))
    try:
        # On SQLite the migration takes the write lock up front, which serializes migrators.
        async with engine.connect() as connection:
            connection = await connection.execution_options(**{SQLITE_WRITE: True})
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
