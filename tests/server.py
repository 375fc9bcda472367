"""The real service in a process of its own (uvicorn), for tests that kill, stop or load it.

with LiveServer(database_url, tmp_path) as server:
    httpx.get(f"{server.url}/health/ready")
    server.kill()  # SIGKILL, as a crash
    server.start()  # same port, same database
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.conftest import ROOT, TEST_SECRET
from tests.pgcluster import free_port

STARTUP_SECONDS = 60


def run_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """This Python run with `args` in the repository, as an operator runs it: no terminal."""
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


class LiveServer:
    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.workers = workers
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET,
            "ALLOWED_HOSTS": "127.0.0.1",  # what its clients dial
            "AUTO_MIGRATE": "false",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    cwd: Path | str = ROOT

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "project.app:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--timeout-graceful-shutdown", "30",
        ]  # fmt: skip

    def launch_env(self) -> dict[str, str]:
        return self.env

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=self.launch_env(),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at startup:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start in {STARTUP_SECONDS}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL to the server and its workers: they die mid-request, as in a crash."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as a deployment does, and wait for the process to exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "LiveServer":
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Stop it the way a deployment does, so its last log lines are written out; a
        # server that does not stop in time is killed.
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=15)
        self.kill()
