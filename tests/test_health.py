import asyncio
from pathlib import Path

import pytest
from alembic import command
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from project.app import create_app
from project.config import Settings
from project.database import Database, Revisions
from tests.conftest import alembic_config
from tests.factories import assert_problem


async def test_live_answers_while_the_process_serves(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["pool"]["in_use"] == 0


async def test_ready_shows_the_pool_only_to_whoever_may_read_metrics(
    app: FastAPI, client: AsyncClient
) -> None:
    """A load balancer learns ready or not; how busy the pool is stays behind the metrics
    token (and, with no token set, is shown outside production only)."""
    token = "m" * 40
    for update, headers, shown in (
        ({"environment": "production"}, {}, False),
        ({"environment": "production", "metrics_token": SecretStr(token)}, {}, False),
        (
            {"environment": "production", "metrics_token": SecretStr(token)},
            {"Authorization": f"Bearer {token}"},
            True,
        ),
        ({"metrics_token": SecretStr(token)}, {"Authorization": "Bearer wrong"}, False),
    ):
        original = app.state.settings
        app.state.settings = original.model_copy(update=update)
        try:
            body = (await client.get("/health/ready", headers=headers)).json()
        finally:
            app.state.settings = original
        assert body["database"] == "ok"
        assert (body["pool"] is not None) is shown, (update, headers)


async def test_not_ready_when_the_database_is_gone(app: FastAPI, client: AsyncClient) -> None:
    # An engine whose database cannot be reached, the way a dead server looks to the app.
    unreachable = (
        "sqlite+aiosqlite:////nonexistent-dir/x.db"
        if app.state.settings.is_sqlite
        else "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    )
    settings = app.state.settings.model_copy(update={"database_url": unreachable})
    app.state.database = Database(settings)
    try:
        response = await client.get("/health/ready")
    finally:
        await app.state.database.engine.dispose()
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"].isdigit()
    assert "database" in body["detail"].lower()


async def test_not_ready_when_every_connection_is_taken(app: FastAPI, client: AsyncClient) -> None:
    database = app.state.database
    capacity = database.pool_status()["capacity"]
    held = [await database.engine.connect() for _ in range(capacity)]
    try:
        response = await client.get("/health/ready")
    finally:
        for connection in held:
            await connection.close()
    body = assert_problem(response, 503)
    assert "connection" in body["detail"]
    assert (await client.get("/health/ready")).status_code == 200


async def _on(app: FastAPI, client: AsyncClient, url: str, method: str, path: str) -> Response:
    """A request to the app pointed, for its length, at the database at `url`."""
    settings = app.state.settings.model_copy(update={"database_url": url})
    serving, app.state.database = app.state.database, Database(settings)
    try:
        if method == "POST":  # a sign-in, which reaches the database without a token
            form = {"username": "a@example.com", "password": "x" * 8}
            return await client.post(path, data=form)
        return await client.get(path)
    finally:
        await app.state.database.engine.dispose()
        app.state.database = serving


async def _readiness_on(app: FastAPI, client: AsyncClient, url: str) -> Response:
    return await _on(app, client, url, "GET", "/health/ready")


async def _set_revision(url: str, revision: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        await engine.dispose()


async def test_not_ready_until_the_database_is_migrated(
    app: FastAPI, client: AsyncClient, scratch_url: str, logged: pytest.LogCaptureFixture
) -> None:
    """A database nobody migrated would answer every API call with an error: readiness
    says so until it is migrated (no restart needed), and the log says what to run."""
    empty = assert_problem(await _readiness_on(app, client, scratch_url), 503)
    assert empty["detail"] == "The database schema is not up to date."
    assert "no schema yet: run `alembic upgrade head`" in logged.text
    assert "revision" not in empty["detail"]  # which, is for the operator only

    config = alembic_config(scratch_url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    assert_problem(await _readiness_on(app, client, scratch_url), 503)
    head = ", ".join(sorted(Revisions.load().heads))
    assert f"at revision 0001 and this code needs {head}" in logged.text

    await asyncio.to_thread(command.upgrade, config, "head")
    assert (await _readiness_on(app, client, scratch_url)).status_code == 200
    # Migrated further by a newer release during a rolling deployment: still ready.
    await _set_revision(scratch_url, "9999_from_a_newer_release")
    assert (await _readiness_on(app, client, scratch_url)).status_code == 200


async def test_a_database_down_at_startup_does_not_stop_the_service(
    settings: Settings, logged: pytest.LogCaptureFixture
) -> None:
    """Not even with a first superuser to make: it starts, says why it is not ready, and
    makes that superuser on a later start."""
    down = settings.model_copy(
        update={
            "database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "db_connect_timeout": 1.0,
            "first_superuser_email": "root@example.com",
            "first_superuser_password": SecretStr("a long enough password"),
        }
    )
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://t") as http:
            assert_problem(await http.get("/health/ready"), 503)
            assert (await http.get("/health/live")).status_code == 200
    assert "first superuser could not be made" in logged.text


async def test_a_database_that_is_not_there_is_a_503_not_a_500(
    app: FastAPI, client: AsyncClient, is_postgres: bool, tmp_path: Path
) -> None:
    """A DATABASE_URL naming a database that does not exist (or a wrong password, refused the
    same way), or a SQLite file in a directory that does not exist (SQLite makes a missing
    file, not a directory): the service cannot serve now, which is no bug of the client's
    or the code's."""
    url = make_url(app.state.settings.database_url)
    if is_postgres:
        url = url.set(database="no_such_database")
    else:
        url = url.set(database=str(tmp_path / "no_such_directory" / "heroes.db"))
    missing = url.render_as_string(hide_password=False)
    refused = await _on(app, client, missing, "POST", "/api/v1/auth/login")
    assert_problem(refused, 503)
    assert refused.headers["Retry-After"].isdigit()
    assert_problem(await _readiness_on(app, client, missing), 503)


async def test_startup_says_when_the_database_needs_migrating(
    settings: Settings, scratch_url: str, logged: pytest.LogCaptureFixture
) -> None:
    unmigrated = settings.model_copy(update={"database_url": scratch_url})
    app = create_app(unmigrated)
    async with app.router.lifespan_context(app):
        pass
    [line] = [r for r in logged.records if r.name == "project.app"]
    assert line.levelname == "ERROR"
    assert line.getMessage() == "The database has no schema yet: run `alembic upgrade head`."
