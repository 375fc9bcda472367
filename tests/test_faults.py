"""Faults done for real, against the real server process: the database goes away, writers
pile up on SQLite, the process is killed mid-stream or asked to stop. Nothing acknowledged is
lost, no error leaks a traceback, and the service recovers by itself."""

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlmodel import col

from project.config import Settings
from project.database import Database, migrate
from project.models import Power
from tests.conftest import alembic_config
from tests.factories import PASSWORD, assert_problem, sign_up
from tests.pgcluster import PostgresCluster, postgres_available
from tests.server import LiveServer

needs_postgres = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")


@pytest.fixture
def live(app: FastAPI, database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The real server on the suite's (emptied) database."""
    with LiveServer(database_url, tmp_path) as server:
        yield server


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresCluster]:
    """A PostgreSQL server this test may stop and restart, migrated."""
    with PostgresCluster(tmp_path) as cluster:
        cluster.create_database("faults")
        command.upgrade(alembic_config(cluster.url("faults")), "head")
        yield cluster


@needs_postgres
async def test_postgres_outage_is_503_then_recovers_without_a_restart(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    env = {"DB_CONNECT_TIMEOUT": "2", "DB_POOL_TIMEOUT": "2"}
    with LiveServer(own_postgres.url("faults"), tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            auth = await sign_up(http, "outage@example.com")
            assert (await http.get("/api/v1/heroes", headers=auth)).status_code == 200

            own_postgres.stop("immediate")
            for request in (
                http.get("/api/v1/heroes", headers=auth),
                http.post("/api/v1/powers", json={"name": "Lost"}, headers=auth),
                http.post(
                    "/api/v1/auth/login", data={"username": "x@example.com", "password": "p" * 8}
                ),
                http.get("/health/ready"),
            ):
                started = time.monotonic()
                response = await request
                assert time.monotonic() - started < 5, "a request hung while the database was down"
                assert_problem(response, 503)
                assert int(response.headers["Retry-After"]) > 0
            assert (await http.get("/health/live")).status_code == 200

            own_postgres.start()
            deadline = time.monotonic() + 10
            while (await http.get("/api/v1/heroes", headers=auth)).status_code != 200:
                assert time.monotonic() < deadline, "no recovery within 10 s of the restart"
                await asyncio.sleep(0.2)
            assert (await http.get("/health/ready")).status_code == 200
            created = await http.post("/api/v1/powers", json={"name": "Back"}, headers=auth)
            assert created.status_code == 201
    assert "Traceback" not in server.log()


@needs_postgres
@pytest.mark.parametrize("loss", ["restart", "terminate"])
async def test_losing_the_pooled_connections_costs_no_request(
    own_postgres: PostgresCluster, tmp_path: Path, loss: str
) -> None:
    """Pooled connections die with the server, or when it ends them. A read that finds its
    connection dead runs again on a fresh one; every other request gets a connection checked
    before use. Either way the first requests afterwards succeed."""
    with LiveServer(own_postgres.url("faults"), tmp_path, env={"DB_POOL_SIZE": "4"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            auth = await sign_up(http, f"{loss}@example.com")
            hero = await http.post(
                "/api/v1/heroes", json={"name": "Kept", "secret_name": "K"}, headers=auth
            )
            hero_url = f"/api/v1/heroes/{hero.json()['id']}"

            def burst() -> list[Awaitable[httpx.Response]]:
                return [
                    *(http.get("/api/v1/heroes", headers=auth) for _ in range(4)),
                    *(http.get(hero_url, headers=auth) for _ in range(4)),
                    http.post("/api/v1/powers", json={"name": uuid.uuid4().hex}, headers=auth),
                    http.patch(hero_url, json={"age": 30}, headers=auth),
                ]

            warm = await asyncio.gather(*burst())
            assert [r.status_code for r in warm] == [200] * 8 + [201, 200]
            if loss == "restart":
                own_postgres.stop("fast")
                own_postgres.start()
            else:
                admin = await asyncpg.connect(own_postgres.url("faults").replace("+asyncpg", ""))
                pooled = "FROM pg_stat_activity WHERE application_name = 'heroes-api'"
                try:  # on a busy machine one burst may be served on one connection: more bursts
                    for _ in range(10):
                        if await admin.fetchval(f"SELECT count(*) {pooled}") >= 2:
                            break
                        await asyncio.gather(*burst())
                    ended = await admin.fetchval(
                        f"SELECT count(pg_terminate_backend(pid)) {pooled}"
                    )
                finally:
                    await admin.close()
                assert ended >= 2
            after = await asyncio.gather(*burst())
            assert [r.status_code for r in after] == [200] * 8 + [201, 200], [r.text for r in after]
    assert "Traceback" not in server.log()


async def test_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    """64 concurrent writers on one SQLite file: no 500, no "database is locked", and every
    acknowledged write is there afterwards."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'contention.db'}"
    await migrate(url)
    acknowledged: list[str] = []
    failures: list[str] = []
    with LiveServer(url, tmp_path) as server:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            auth = await sign_up(http, "writer@example.com")
            team = (
                await http.post(
                    "/api/v1/teams", json={"name": "T", "headquarters": "H"}, headers=auth
                )
            ).json()
            deadline = time.monotonic() + 6

            async def writer(n: int) -> None:
                count = 0
                while time.monotonic() < deadline:
                    name = f"w{n}-{count}"
                    count += 1
                    # A read-then-write transaction: the team reference is checked first.
                    response = await http.post(
                        "/api/v1/heroes",
                        json={"name": name, "secret_name": "s", "team_id": team["id"]},
                        headers=auth,
                    )
                    if response.status_code == 201:
                        acknowledged.append(response.json()["id"])
                    else:
                        failures.append(f"{response.status_code} {response.text[:200]}")

            await asyncio.gather(*(writer(n) for n in range(64)))
            listed = await http.get(
                f"/api/v1/teams/{team['id']}/heroes?include_total=true&limit=1", headers=auth
            )
    assert failures == []
    assert len(acknowledged) > 64
    assert listed.json()["total"] == len(acknowledged)
    assert "database is locked" not in server.log()


async def test_sqlite_writers_in_sessions_and_on_the_driver_share_a_small_pool(
    tmp_path: Path,
) -> None:
    """A PATCH writes in a session, a POST without references in one statement on the driver,
    both in this process's turn to write. On a pool of two, under a crowd of both, none waits
    out the pool's timeout: each takes a connection first, then its turn, in the same order."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'mixed.db'}"
    await migrate(url)
    failures: list[str] = []
    env = {"DB_POOL_SIZE": "2", "DB_POOL_TIMEOUT": "3"}
    with LiveServer(url, tmp_path, env=env) as server:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
            auth = await sign_up(http, "mixed@example.com")
            body = {"name": "Target", "secret_name": "s"}
            hero = (await http.post("/api/v1/heroes", json=body, headers=auth)).json()
            deadline = time.monotonic() + 4

            async def writer(n: int) -> None:
                count = 0
                while time.monotonic() < deadline:
                    count += 1
                    if n % 2:
                        body = {"name": f"w{n}-{count}", "secret_name": "s"}
                        response = await http.post("/api/v1/heroes", json=body, headers=auth)
                    else:
                        url = f"/api/v1/heroes/{hero['id']}"
                        response = await http.patch(url, json={"age": count}, headers=auth)
                    if response.status_code not in (200, 201):
                        failures.append(f"{response.status_code} {response.text[:200]}")

            await asyncio.gather(*(writer(n) for n in range(32)))
    assert failures == []
    assert "Traceback" not in server.log()


async def test_sqlite_writers_of_one_process_take_turns_in_arrival_order(tmp_path: Path) -> None:
    """SQLite's busy handler lets a newer writer overtake older ones, so under load an old one
    can wait past any timeout. The writers of one process queue in arrival order instead:
    write transactions and the single-statement writes on the driver alike."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"
    await migrate(url)
    settings = Settings(_env_file=None, database_url=url, db_pool_size=16)  # type: ignore[call-arg]
    database = Database(settings)
    order: list[int] = []

    async def writer(n: int) -> None:
        if n % 3 == 2:  # as POST /heroes writes one row on the driver
            async with database.write_turn:
                order.append(n)
            return
        async with database.session(write=True) as session:
            await session.execute(text("SELECT 1"))  # begins: this transaction has its turn
            order.append(n)
            await session.commit()

    try:
        first = database.session(write=True)
        await first.execute(text("SELECT 1"))  # holds the write lock while the others arrive
        waiting = []
        for n in range(12):
            waiting.append(asyncio.create_task(writer(n)))
            await asyncio.sleep(0.03)  # n is waiting before n + 1 arrives
        assert order == []
        await first.close()
        await asyncio.wait_for(asyncio.gather(*waiting), timeout=30)
    finally:
        await database.engine.dispose()
    assert order == list(range(12))


async def _creates_until_killed(server: LiveServer, prefix: str) -> tuple[set[str], set[str]]:
    """Send concurrent creates, kill the server mid-stream; return (acknowledged, attempted)."""
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        auth = await sign_up(http, f"{prefix}@example.com")

        async def writer(n: int) -> None:
            for count in range(10_000):
                marker = f"{prefix}-{n}-{count}-{uuid.uuid4().hex[:8]}"
                attempted.add(marker)
                try:
                    response = await http.post(
                        "/api/v1/powers", json={"name": marker}, headers=auth
                    )
                except httpx.TransportError:
                    return  # the server died under this request
                if response.status_code == 201:
                    acknowledged.add(marker)
                    if len(acknowledged) >= 200:
                        enough.set()

        enough = asyncio.Event()
        writers = [asyncio.create_task(writer(n)) for n in range(16)]
        try:
            await asyncio.wait_for(enough.wait(), timeout=60)  # fail, rather than hang
        finally:
            server.kill()
            await asyncio.gather(*writers)
    return acknowledged, attempted


async def test_every_acknowledged_create_survives_a_kill(app: FastAPI, live: LiveServer) -> None:
    acknowledged, attempted = await _creates_until_killed(live, "crash")
    live.start()  # the same database, after a SIGKILL mid-stream
    async with app.state.database.session() as session:
        rows = (
            await session.execute(select(Power.name, func.count()).group_by(col(Power.name)))
        ).all()
    stored = dict(rows)
    assert acknowledged <= stored.keys(), (
        f"{len(acknowledged - stored.keys())} acknowledged creates lost"
    )
    assert all(count == 1 for count in stored.values()), "a create was stored twice"
    assert stored.keys() <= attempted
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        assert (await http.get("/health/ready")).status_code == 200


async def test_sigterm_lets_in_flight_requests_finish(app: FastAPI, live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
        # Registrations are slow on purpose (password hashing), so these are in flight.
        requests = [
            asyncio.create_task(
                http.post(
                    "/api/v1/auth/register",
                    json={"email": f"late{n}@example.com", "password": PASSWORD},
                )
            )
            for n in range(12)
        ]
        # Once the first is answered the server is working through the rest (a fixed pause
        # would guess: on a slow run they might not have reached it yet).
        await asyncio.wait(requests, return_when=asyncio.FIRST_COMPLETED)
        assert not all(request.done() for request in requests), "none left in flight"
        exit_code = await asyncio.to_thread(live.terminate)
        responses = await asyncio.gather(*requests, return_exceptions=True)
    statuses = [
        r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses
    ]
    assert statuses == [201] * 12
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert exit_code in (0, -15)
    assert "Finished server process" in live.log()


async def test_log_lines_are_written_while_the_server_runs(live: LiveServer) -> None:
    """Lines are written in batches by a thread: they still reach the log promptly, not
    only when the process exits."""
    request_id = f"prompt-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        await http.get("/health/live", headers={"X-Request-ID": request_id})
    deadline = time.monotonic() + 5
    while request_id not in live.log():
        assert time.monotonic() < deadline, "no log line within 5 s of the request"
        await asyncio.sleep(0.05)
    [line] = [line for line in live.log().splitlines() if request_id in line]
    assert json.loads(line)["route"] == "/health/live"


FORKED_WORKER = """
import logging, os, time
from project.web.logs import configure_logging
configure_logging("INFO")
pid = os.fork()
if pid == 0:  # a worker forked after the app was imported
    logging.getLogger("project.worker").info("from the forked worker")
    time.sleep(1)
    os._exit(0)  # no atexit: the line must have been written by then
os.waitpid(pid, 0)
"""


def test_a_forked_worker_writes_its_own_log_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKED_WORKER], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "from the forked worker" in done.stderr


async def test_logs_carry_no_password_token_or_hash(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        await http.post(
            "/api/v1/auth/register", json={"email": "quiet@example.com", "password": PASSWORD}
        )
        tokens = (
            await http.post(
                "/api/v1/auth/login", data={"username": "quiet@example.com", "password": PASSWORD}
            )
        ).json()
        await http.post(
            "/api/v1/auth/login",
            data={"username": "quiet@example.com", "password": "wrong-" + PASSWORD},
        )
        refreshed = (
            await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        ).json()
        await http.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
        )
        await http.post("/api/v1/auth/logout", json={"refresh_token": refreshed["refresh_token"]})
        await http.post(
            "/api/v1/auth/register", json={"email": "quiet2@example.com", "password": "short"}
        )
    live.terminate()  # log lines are written by a thread: let it finish
    log = live.log()
    assert '"route": "/api/v1/auth/login"' in log  # the requests were logged...
    for secret in (
        PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["access_token"],
        "$argon2",
    ):
        assert secret not in log  # ...and nothing secret with them
    lines = [line for line in log.splitlines() if '"logger": "project.access"' in line]
    assert len(lines) >= 8
    assert all('"request_id"' in line and '"duration_ms"' in line for line in lines)


async def test_head_keeps_the_connection_open(live: LiveServer) -> None:
    """HEAD then GET on one connection, as browsers and load balancers reuse them: both are
    answered, and the server logs no error (the first answer promises a body it does not
    send, which the server must know)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    request = "{} /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writer.write((request.format("HEAD") + request.format("GET")).encode())
    await writer.drain()
    received = b""
    while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b'{"status":"ok"}'):
        chunk = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert chunk, f"connection closed after: {received!r}"
        received += chunk
    writer.close()
    head, get = received.split(b"HTTP/1.1 200")[1:]
    assert b'"status":"ok"' not in head and b'"status":"ok"' in get
    assert "unhandled error" not in live.log()
