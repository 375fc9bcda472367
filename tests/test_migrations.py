"""Migrations go up and down on the suite's database engine, and models.py never drifts
from them. These run against a database of their own, next to the shared test one."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url
from sqlmodel import SQLModel

import project.models  # noqa: F401  (registers every table on SQLModel.metadata)
from project.config import Settings
from project.database import create_engine
from tests.conftest import alembic_config

TABLES = set(SQLModel.metadata.tables)  # every table the models describe


def _run(url: str, work: Any) -> Any:
    """Run `work(sync_connection)` on a fresh engine for `url`."""

    async def go() -> Any:
        engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _admin(url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE)."""

    async def go() -> None:
        engine = sa.ext.asyncio.create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(sa.text(statement))
        finally:
            await engine.dispose()

    asyncio.run(go())


@pytest.fixture
def scratch_url(database_url: str, tmp_path: Any) -> Iterator[str]:
    """An empty database of the same kind as the suite's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_migrations"
    _admin(database_url, f'DROP DATABASE IF EXISTS "{name}"')
    _admin(database_url, f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    _admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names()) - {"alembic_version"}


def _drift(connection: Connection, metadata: sa.MetaData = SQLModel.metadata) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": metadata}
    )
    return list(compare_metadata(context, metadata))


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "head")
    assert _run(scratch_url, _tables) == TABLES
    command.downgrade(config, "base")
    assert _run(scratch_url, _tables) == set()
    command.upgrade(config, "head")
    assert _run(scratch_url, _tables) == TABLES


def test_models_and_migrations_do_not_drift(scratch_url: str) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    assert _run(scratch_url, _drift) == []


def test_drift_check_notices_a_column_added_without_a_migration(scratch_url: str) -> None:
    """The drift test above can fail: a model change with no migration is reported."""
    command.upgrade(alembic_config(scratch_url), "head")
    changed = sa.MetaData(naming_convention=SQLModel.metadata.naming_convention)
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["heroes"].append_column(sa.Column("nickname", sa.String(50)))
    diff = _run(scratch_url, lambda connection: _drift(connection, changed))
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "heroes", "nickname")]
