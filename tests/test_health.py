from fastapi import FastAPI
from httpx import AsyncClient

from project.database import Database
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
        await app.state.database.dispose()
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
