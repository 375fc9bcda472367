"""Fixtures: a migrated database per run, a fresh app and empty tables per test.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL is set, e.g.
TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/heroes_test poetry run pytest
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.ext.asyncio
from alembic import command
from alembic.config import Config as AlembicConfig
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from project.app import create_app
from project.config import Settings
from project.database import ALEMBIC_INI
from tests.factories import TEST_HOSTS, Account, make_account

# The browser tests' fixtures (`watched`, and what it takes), for any module that asks.
pytest_plugins = ["tests.browser"]
TEST_SECRET = "test-secret-key-for-the-suite-only-" + "0123456789abcdef" * 2


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig(str(ALEMBIC_INI))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    return config


def pytest_report_header() -> str:
    return f"database: {os.environ.get('TEST_DATABASE_URL') or 'SQLite (temporary file)'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, migrated from scratch once per run."""
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )
    config = alembic_config(url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    return url


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


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """`caplog`, also catching the service's own records (its loggers do not propagate to
    the root logger, where `caplog` listens)."""
    service = logging.getLogger("project")
    service.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        service.removeHandler(caplog.handler)


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=database_url,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        auto_migrate=False,
        cors_origins=["https://app.example.com"],
        allowed_hosts=TEST_HOSTS,
        # No background task in the app under test unless a test asks for one: a test that
        # blocks the loop (a sync one, driving a server) would leave it mid-transaction.
        mail_sender=False,
    )


async def _empty_tables(app: FastAPI) -> None:
    async with app.state.database.engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await _empty_tables(application)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


AccountFactory = Callable[..., Awaitable[Account]]


@pytest.fixture
def account(client: AsyncClient, app: FastAPI) -> AccountFactory:
    """Makes a registered, logged-in user: `await account()` or `await account(superuser=True)`."""

    async def make(**kwargs: object) -> Account:
        return await make_account(client, app, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def alice(account: AccountFactory) -> Account:
    return await account(email="alice@example.com")


@pytest.fixture
async def bob(account: AccountFactory) -> Account:
    return await account(email="bob@example.com")


@pytest.fixture
async def admin(account: AccountFactory) -> Account:
    return await account(email="admin@example.com", superuser=True)


ROOT = Path(__file__).resolve().parent.parent
