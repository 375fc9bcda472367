"""Schemathesis against the service's own OpenAPI document, on the real server, logged in
as a normal user: every check, positive and negative data, and the stateful phase.

Bounded for CI; for a longer hunt, raise the budget and change the seed:
FUZZ_EXAMPLES=200 FUZZ_SEED=7 poetry run pytest tests/test_fuzz.py
"""

import os
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI

from tests.conftest import ROOT
from tests.server import LiveServer

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "25")
SEED = os.environ.get("FUZZ_SEED", "20261125")


def test_schemathesis_finds_nothing(app: FastAPI, database_url: str, tmp_path: Path) -> None:
    # The fuzzer fails many logins from one address on purpose; throttling them is tested
    # elsewhere, and here it would only lock the fuzzer's own account out.
    env = {"LOGIN_MAX_FAILURES_PER_CLIENT": "1000000"}
    with LiveServer(database_url, tmp_path, env=env) as server:
        command = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
            "run", f"{server.url}/openapi.json",
            "--checks", "all", "--mode", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", EXAMPLES, "--seed", SEED,
            "--request-timeout", "30", "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path),
        ]  # fmt: skip
        result = subprocess.run(
            command,
            cwd=ROOT,
            env={
                **os.environ,
                "FUZZ_BASE_URL": server.url,
                "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
            },
            capture_output=True,
            text=True,
            timeout=900,
        )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "generated" in summary
    assert "Traceback" not in server.log()
