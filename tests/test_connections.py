"""Database connections: never leaked, never exhausted silently, refused and slow
statements answered with 503 and recovered from, all against the real server process."""

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import alembic_config
from tests.factories import assert_problem, sign_up
from tests.pgcluster import PostgresCluster, postgres_available
from tests.server import LiveServer


@asynccontextmanager
async def _writes_blocked(database_url: str, hero_id: str) -> AsyncIterator[None]:
    """Another client holds a lock that a change to this hero must wait for: the hero's row
    on PostgreSQL, the database's write lock on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    connection = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SELECT 1 FROM heroes WHERE id = $1 FOR UPDATE", uuid.UUID(hero_id))
    try:
        yield
    finally:
        await transaction.rollback()
        await connection.close()


async def _settled(http: httpx.AsyncClient, app: FastAPI, is_postgres: bool) -> dict[str, Any]:
    """Wait for in-flight work to end, then report the pool and leftover transactions."""
    deadline = time.monotonic() + 15
    while True:
        ready = await http.get("/health/ready")
        idle_in_transaction = 0
        if is_postgres:
            async with app.state.database.engine.connect() as connection:
                idle_in_transaction = await connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                        " AND application_name = 'heroes-api' AND state LIKE 'idle in transaction%'"
                    )
                )
        if (
            ready.status_code == 200
            and ready.json()["pool"]["in_use"] == 0
            and not idle_in_transaction
        ):
            return {"ready": ready.json(), "idle_in_transaction": idle_in_transaction}
        if time.monotonic() > deadline:
            return {"ready": ready.text, "idle_in_transaction": idle_in_transaction}
        await asyncio.sleep(0.2)


TEAM = {"name": "T", "headquarters": "H"}


async def test_no_connection_leaks_after_a_burst_of_everything(
    app: FastAPI, database_url: str, is_postgres: bool, tmp_path: Path
) -> None:
    env = {
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "2",
        "DB_POOL_TIMEOUT": "2",
        "SQLITE_BUSY_TIMEOUT": "1",
        "DB_STATEMENT_TIMEOUT": "1",
    }
    with LiveServer(database_url, tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            auth = await sign_up(http, "pool@example.com")
            team = (await http.post("/api/v1/teams", json=TEAM, headers=auth)).json()
            hero = (
                await http.post(
                    "/api/v1/heroes", json={"name": "H", "secret_name": "S"}, headers=auth
                )
            ).json()
            stale = {**auth, "If-Match": '"0"'}
            stranger = {"name": "H", "secret_name": "S", "team_id": str(uuid.uuid4())}
            calls: list[Callable[[], Any]] = [
                lambda: http.get("/api/v1/heroes", headers=auth),  # 200
                lambda: http.post("/api/v1/powers", json={"name": uuid.uuid4().hex}, headers=auth),
                lambda: http.post("/api/v1/teams", json=TEAM, headers=auth),  # 409: taken
                lambda: http.patch(f"/api/v1/teams/{team['id']}", json=TEAM, headers=stale),  # 412
                lambda: http.get(f"/api/v1/heroes/{uuid.uuid4()}", headers=auth),  # 404
                lambda: http.post("/api/v1/heroes", json=stranger, headers=auth),  # 422
                lambda: http.get("/api/v1/heroes", headers={"Authorization": "Bearer x"}),  # 401
            ]
            # Changes to the locked hero wait and fail (503) or are given up by the client.
            async with (
                _writes_blocked(database_url, hero["id"]),
                httpx.AsyncClient(base_url=server.url, timeout=0.3) as impatient,
            ):
                blocked = [
                    asyncio.create_task(
                        impatient.patch(
                            f"/api/v1/heroes/{hero['id']}", json={"age": n}, headers=auth
                        )
                    )
                    for n in range(3)
                ]
                waited = [
                    asyncio.create_task(
                        http.patch(f"/api/v1/heroes/{hero['id']}", json={"age": 9}, headers=auth)
                    )
                ]
                results = await asyncio.gather(*blocked, *waited, return_exceptions=True)
            assert all(isinstance(r, httpx.TimeoutException) for r in results[:3])
            assert isinstance(results[3], httpx.Response)
            assert results[3].status_code == 503
            statuses = [
                r.status_code
                for r in await asyncio.gather(*(calls[n % len(calls)]() for n in range(70)))
            ]
            assert {200, 201, 401, 404, 409, 412, 422} <= set(statuses), statuses
            assert max(statuses) < 500
            state = await _settled(http, app, is_postgres)
    assert state["idle_in_transaction"] == 0, state
    assert isinstance(state["ready"], dict) and state["ready"]["pool"]["in_use"] == 0, state
    assert "Traceback" not in server.log()


async def test_an_exhausted_pool_is_503_after_the_pool_timeout(
    app: FastAPI, database_url: str, tmp_path: Path
) -> None:
    env = {"DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": "1",
           "DB_STATEMENT_TIMEOUT": "30", "SQLITE_BUSY_TIMEOUT": "30"}  # fmt: skip
    with LiveServer(database_url, tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            auth = await sign_up(http, "pool@example.com")
            hero = (
                await http.post(
                    "/api/v1/heroes", json={"name": "H", "secret_name": "S"}, headers=auth
                )
            ).json()
            async with _writes_blocked(database_url, hero["id"]):
                # This change waits for the lock and holds the only pooled connection meanwhile.
                holder = asyncio.create_task(
                    http.patch(f"/api/v1/heroes/{hero['id']}", json={"age": 1}, headers=auth)
                )
                await asyncio.sleep(0.5)
                started = time.monotonic()
                starved = await http.get("/api/v1/heroes", headers=auth)
                waited = time.monotonic() - started
                assert_problem(starved, 503)
                assert int(starved.headers["Retry-After"]) > 0
                assert 0.9 < waited < 5, waited
                started = time.monotonic()
                readiness = await http.get("/health/ready")
                assert_problem(readiness, 503)
                assert "in use" in readiness.json()["detail"]
                assert time.monotonic() - started < 0.9  # answered without waiting for a connection
            assert (await holder).status_code == 200
            assert (await http.get("/api/v1/heroes", headers=auth)).status_code == 200
            assert (await http.get("/health/ready")).status_code == 200


async def test_a_statement_over_the_timeout_is_cancelled_and_the_connection_reused(
    app: FastAPI, database_url: str, is_postgres: bool, tmp_path: Path
) -> None:
    if not is_postgres:
        pytest.skip("SQLite has no statement timeout; its busy timeout is covered above")
    env = {"DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0", "DB_STATEMENT_TIMEOUT": "1"}
    with LiveServer(database_url, tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            auth = await sign_up(http, "pool@example.com")
            hero = (
                await http.post(
                    "/api/v1/heroes", json={"name": "H", "secret_name": "S"}, headers=auth
                )
            ).json()
            async with _writes_blocked(database_url, hero["id"]):
                started = time.monotonic()
                cancelled = await http.patch(
                    f"/api/v1/heroes/{hero['id']}", json={"age": 1}, headers=auth
                )
                elapsed = time.monotonic() - started
            assert_problem(cancelled, 503)
            assert 0.9 < elapsed < 5, elapsed
            # The only pooled connection came back healthy: the next requests use it.
            for _ in range(3):
                assert (await http.get(f"/api/v1/heroes/{hero['id']}", headers=auth)).json()[
                    "age"
                ] is None
            changed = await http.patch(
                f"/api/v1/heroes/{hero['id']}", json={"age": 2}, headers=auth
            )
            assert changed.status_code == 200
            state = await _settled(http, app, is_postgres)
    assert state["idle_in_transaction"] == 0, state


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")
async def test_postgres_refusing_connections_is_503_until_some_free_up(tmp_path: Path) -> None:
    settings = {"superuser_reserved_connections": "0"}
    with PostgresCluster(tmp_path, max_connections=5, extra_settings=settings) as cluster:
        cluster.create_database("crowded")
        url = cluster.url("crowded")
        await asyncio.to_thread(_upgrade, url)
        # The app may open 4 connections and the server takes 5: enough once others leave.
        env = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "2"}
        with LiveServer(url, tmp_path, env=env) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                auth = await sign_up(http, "pool@example.com")
                raw = make_url(url).set(drivername="postgresql").render_as_string(False)
                crowd = await _crowd(raw)
                # The app's pooled connections end too (as a restarted pooler would end
                # them), so that every request needs a new one, which the server refuses.
                await _end_all_but(crowd[0], {c.get_server_pid() for c in crowd})
                crowd += await _crowd(raw)
                burst = await asyncio.gather(
                    *(http.get("/api/v1/heroes", headers=auth) for _ in range(6))
                )
                for response in burst:
                    assert_problem(response, 503)
                    assert int(response.headers["Retry-After"]) > 0
                for connection in crowd:
                    await connection.close()
                burst = await asyncio.gather(
                    *(http.get("/api/v1/heroes", headers=auth) for _ in range(6))
                )
                assert [r.status_code for r in burst] == [200] * 6
    assert "Traceback" not in server.log()


async def _crowd(raw_url: str) -> list[Any]:
    """Connections taking every slot the server has left."""
    crowd = []
    while True:
        try:
            crowd.append(await asyncpg.connect(raw_url, timeout=5))
        except asyncpg.TooManyConnectionsError:
            return crowd


async def _end_all_but(connection: Any, keep: set[int]) -> None:
    """End every other client's session, and wait until their slots are free."""
    others = (
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND NOT pid = ANY($1::int[])"
    )
    for (pid,) in await connection.fetch(others, list(keep)):
        await connection.execute("SELECT pg_terminate_backend($1)", pid)
    deadline = time.monotonic() + 10
    while await connection.fetch(others, list(keep)):
        assert time.monotonic() < deadline, "sessions did not end"
        await asyncio.sleep(0.05)


def _upgrade(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")
