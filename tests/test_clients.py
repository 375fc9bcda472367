"""The clients frontends generate from /openapi.json: @hey-api/openapi-ts (TypeScript, fetch)
and openapi-python-client, at the versions clients/package-lock.json and poetry.lock pin.

Each is generated from the app's schema (clients/generate.py), type-checked (`tsc --strict`,
`mypy --strict` on the generated package and the flow), then drives a frontend's session
against the real server (clients/flow.ts, clients/flow.py). Without Node the test skips,
except where `CI` is set: there it fails, so CI cannot pass without it.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.conftest import ROOT
from tests.server import LiveServer

CLIENTS = ROOT / "clients"
BUILD = ROOT / "build" / "clients"  # ignored by git
TS_OUT, PY_PACKAGES = BUILD / "ts", BUILD / "py"


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        reason = "needs Node.js and npm (apt-get install nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must check the generated clients: {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture
def server(database_url: str, tmp_path: Path, app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(database_url, tmp_path) as live:
        yield live


def test_the_typescript_client_builds_and_drives_a_session(node: str, server: LiveServer) -> None:
    run(sys.executable, CLIENTS / "generate.py", "ts", TS_OUT)
    run(CLIENTS / "node_modules" / ".bin" / "tsc", "--strict", "-p", CLIENTS / "tsconfig.json")
    output = run(node, BUILD / "flow" / "clients" / "flow.js", server.url)
    assert "typescript client flow: ok" in output


def test_the_python_client_builds_and_drives_a_session(server: LiveServer) -> None:
    run(sys.executable, CLIENTS / "generate.py", "py", PY_PACKAGES / "heroes_client")
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", BUILD / ".mypy_cache"]
    run(
        *mypy,
        PY_PACKAGES / "heroes_client",
        CLIENTS / "flow.py",
        env={"MYPYPATH": str(PY_PACKAGES)},
    )
    output = run(
        sys.executable, CLIENTS / "flow.py", server.url, env={"PYTHONPATH": str(PY_PACKAGES)}
    )
    assert "python client flow: ok" in output
