"""The processes under test: uvicorn (one worker, uvloop, httptools) pinned to core 0, and
a PostgreSQL of the harness's own pinned to core 1 with the load generator, so that the
server process under test has a core to itself."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.pgcluster import PostgresCluster, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = "0"
DATABASE_CORES = {1}
STARTUP_SECONDS = 60


class Server:
    """`uvicorn APP` in its own process group; `stop` ends it and everything it started."""

    def __init__(
        self,
        name: str,
        app: str,
        env: dict[str, str],
        log_dir: Path,
        probe: str,
        *,
        factory: bool = False,
        wrapper: list[str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.probe = probe
        self.command = [
            "taskset", "-c", SERVER_CORE, *(wrapper or [sys.executable]), "-m", "uvicorn", app,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            *(["--factory"] if factory else []),
        ]  # fmt: skip
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup; see {self.log_path}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + self.probe, timeout=1).status_code < 500:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start in {STARTUP_SECONDS}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop, which lets a profiler write its report), then
        SIGKILL to the whole group if it has not ended in time."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def postgres(base_dir: Path) -> PostgresCluster:
    """A started PostgreSQL (tests/pgcluster.py), its processes pinned to the load core.
    Backends forked later inherit the postmaster's affinity."""
    cluster = PostgresCluster(base_dir, max_connections=100)
    cluster.__enter__()
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        for pid in (postmaster, *_children(postmaster)):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, DATABASE_CORES)
        cluster.create_database("bench")
    except BaseException:
        cluster.cleanup()
        raise
    return cluster
