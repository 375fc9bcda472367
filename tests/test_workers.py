"""Two workers behind one port on one PostgreSQL, started by scripts/start.sh as the image
starts them. Login state lives in the database, so reuse detection, logout, throttling and
ETag conflicts must hold when consecutive requests land on different workers; and /metrics
must count every worker's requests, whichever worker answers it.

Which worker serves a request is the kernel's choice (the workers share the listening
socket). To know it without adding anything to the service, ask the kernel: the server end
of a TCP connection is a socket that exactly one process holds, which /proc shows
(/proc/net/tcp maps the connection's ports to a socket inode, /proc/PID/fd/* link to the
sockets a process holds). A client with one keep-alive connection is then pinned to one
worker, and every response is checked against /proc to have come from that worker.
"""

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import alembic_config
from tests.factories import PASSWORD
from tests.pgcluster import PostgresCluster, postgres_available
from tests.test_deploy import StartScript

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")

WORKERS = 2
METRICS_TOKEN = "metrics-token-for-the-suite-" + "0123456789abcdef"
TCP_LISTEN = "0A"


# --- who holds which socket, according to /proc --------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        return inodes  # the process has exited meanwhile (a worker just killed): it holds none
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp_sockets() -> list[tuple[int, int, str, str]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket."""
    sockets = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        sockets.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), state, inode))
    return sockets


def worker_pids(server: StartScript) -> set[int]:
    """The server's child processes that hold its listening socket: its workers."""
    assert server.process is not None
    (listening,) = {
        inode
        for local, _, state, inode in _tcp_sockets()
        if local == server.port and state == TCP_LISTEN
    }
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == server.process.pid:
                children.add(int(entry.name))
    return {pid for pid in children if listening in _socket_inodes(pid)}


def served_by(response: httpx.Response, server: StartScript, workers: set[int]) -> int:
    """The worker holding the server end of the connection this response came over."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    (inode,) = {
        inode
        for local, remote, _, inode in _tcp_sockets()
        if local == server.port and remote == client_port and inode != "0"  # 0: closed
    }
    (pid,) = {pid for pid in workers if inode in _socket_inodes(pid)}
    return pid


class Worker:
    """An HTTP client pinned to one worker: one connection, kept alive, checked per request."""

    def __init__(
        self, server: StartScript, workers: set[int], http: httpx.Client, pid: int
    ) -> None:
        self.server, self.workers, self.http, self.pid = server, workers, http, pid

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        assert served_by(response, self.server, self.workers) == self.pid, "changed workers"
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)


def pin_one_client_per_worker(server: StartScript, timeout: float = 30) -> list[Worker]:
    """Open connections until each worker has accepted one; keep one client per worker."""
    deadline = time.monotonic() + timeout
    while len(workers := worker_pids(server)) < WORKERS:
        assert time.monotonic() < deadline, f"only {len(workers)} workers run"
        time.sleep(0.1)
    pinned: dict[int, httpx.Client] = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    while len(pinned) < len(workers):
        assert time.monotonic() < deadline, f"only workers {set(pinned)} of {workers} answered"
        http = httpx.Client(base_url=server.url, limits=limits, timeout=30)
        pid = served_by(http.get("/health/live"), server, workers)
        if pid in pinned:
            http.close()
        else:
            pinned[pid] = http
    return [Worker(server, workers, http, pid) for pid, http in pinned.items()]


# --- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartScript]:
    base = tmp_path_factory.mktemp("workers")
    with PostgresCluster(base) as cluster:
        cluster.create_database("workers")
        url = cluster.url("workers")
        command.upgrade(alembic_config(url), "head")
        env = {
            "METRICS_ENABLED": "true",
            "METRICS_TOKEN": METRICS_TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(base / "metrics"),
            # A connection outlives any pause in a test, so a client stays on its worker.
            "UVICORN_TIMEOUT_KEEP_ALIVE": "120",
        }
        with StartScript(url, base, env=env, workers=WORKERS) as started:
            yield started


@pytest.fixture
def pair(server: StartScript) -> Iterator[tuple[Worker, Worker]]:
    a, b = pin_one_client_per_worker(server)  # one per worker: two processes
    yield a, b
    a.http.close()
    b.http.close()


def _sign_up(worker: Worker) -> tuple[str, dict[str, Any]]:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD}
    assert worker.post("/api/v1/auth/register", json=body).status_code == 201
    return email, _login(worker, email, PASSWORD).json()


def _login(worker: Worker, email: str, password: str) -> httpx.Response:
    return worker.post("/api/v1/auth/login", data={"username": email, "password": password})


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"


# --- the tests -----------------------------------------------------------------------------


def test_a_refresh_token_reused_on_another_worker_ends_the_session(
    pair: tuple[Worker, Worker],
) -> None:
    a, b = pair
    _, stolen = _sign_up(a)
    rotated = b.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})
    assert rotated.status_code == 200
    replay = a.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    # The pair that worker B handed out died with the session, on either worker.
    assert b.get(ME, headers=_bearer(rotated.json())).status_code == 401
    assert (
        a.post(REFRESH, json={"refresh_token": rotated.json()["refresh_token"]}).status_code == 401
    )


def test_a_logout_on_one_worker_holds_on_the_other_at_once(pair: tuple[Worker, Worker]) -> None:
    a, b = pair
    _, tokens = _sign_up(a)
    assert b.get(ME, headers=_bearer(tokens)).status_code == 200
    assert (
        a.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 204
    )
    assert b.get(ME, headers=_bearer(tokens)).status_code == 401
    assert b.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_login_failures_count_across_workers(pair: tuple[Worker, Worker]) -> None:
    a, b = pair
    email, _ = _sign_up(a)
    statuses = [_login((a, b)[i % 2], email, "wrong password").status_code for i in range(5)]
    assert statuses == [401] * 5  # three failures on one worker, two on the other
    locked = _login(b, email, "wrong password")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert _login(a, email, PASSWORD).status_code == 429


def test_an_etag_from_one_worker_guards_a_change_on_the_other(
    pair: tuple[Worker, Worker],
) -> None:
    a, b = pair
    _, tokens = _sign_up(a)
    auth = _bearer(tokens)
    team = a.post("/api/v1/teams", json={"name": "Avengers", "headquarters": "NYC"}, headers=auth)
    assert team.status_code == 201
    url = f"/api/v1/teams/{team.json()['id']}"
    seen = b.get(url, headers=auth).headers["ETag"]

    first = a.patch(url, json={"name": "First"}, headers={**auth, "If-Match": seen})
    assert first.status_code == 200
    second = b.patch(url, json={"name": "Second"}, headers={**auth, "If-Match": seen})
    assert second.status_code == 412
    assert a.get(url, headers=auth).json()["name"] == "First"
    fresh = first.headers["ETag"]
    assert b.get(url, headers={**auth, "If-None-Match": fresh}).status_code == 304


# --- metrics over several workers ----------------------------------------------------------


def _scrape(worker: Worker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = worker.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _requests(samples: dict[Any, float], handler: str, status: str) -> float:
    labels = (("handler", handler), ("method", "GET"), ("status", status))
    return samples.get(("http_requests_total", labels), 0.0)


def test_metrics_add_up_every_worker_whichever_answers(pair: tuple[Worker, Worker]) -> None:
    a, b = pair
    missing = f"/api/v1/teams/{uuid.uuid4()}"
    before = _requests(_scrape(a), "/api/v1/teams/{id}", "401")
    for _ in range(3):
        assert a.get(missing).status_code == 401
    for _ in range(2):
        assert b.get(missing).status_code == 401
    for scraper in (a, b):
        samples = _scrape(scraper)
        assert _requests(samples, "/api/v1/teams/{id}", "401") == before + 5
        capacity = samples[("db_pool_connections_capacity", ())]
        assert capacity == WORKERS * (10 + 5)  # DB_POOL_SIZE + DB_MAX_OVERFLOW per worker


def test_a_crashed_worker_drops_out_of_the_pool_gauges(
    server: StartScript, pair: tuple[Worker, Worker]
) -> None:
    """uvicorn replaces a killed worker; the gauges then count the live workers only, not
    the dead one's last numbers as well."""
    _, b = pair
    os.kill(b.pid, signal.SIGKILL)
    b.http.close()
    deadline = time.monotonic() + 30
    while len(workers := worker_pids(server)) < WORKERS or b.pid in workers:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)
    for scraper in pin_one_client_per_worker(server):  # waits for the new worker to serve
        samples = _scrape(scraper)
        scraper.http.close()
        assert samples[("db_pool_connections_capacity", ())] == WORKERS * (10 + 5)
        assert samples[("db_pool_connections_in_use", ())] == 0
