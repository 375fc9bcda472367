"""The load generator: wrk, pinned to its own core, with a Lua script that reports JSON."""

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
LOAD_CORE = "1"
TIMEOUT = "5s"  # a request slower than this counts as an error (wrk's default is 2 s)


@dataclass
class Result:
    """One wrk run: throughput, latency in milliseconds, and every kind of error added up."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ensure_wrk() -> str:
    """wrk's path, installing Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:  # noqa: S603
        subprocess.run(["apt-get", "update", "-q"], check=True)  # noqa: S607
        subprocess.run(install, check=True)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install")
    return found


def script(name: str, run_dir: Path) -> Path:
    """A scenario's Lua script with the JSON reporter appended, written into `run_dir`."""
    path = run_dir / f"{name}.lua"
    if not path.exists():
        path.write_text((LUA / f"{name}.lua").read_text() + "\n" + (LUA / "report.lua").read_text())
    return path


def command(
    url: str,
    lua: Path,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> list[str]:
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    cmd += ["--timeout", TIMEOUT, "-s", str(lua)]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    return [*cmd, url, "--", *(args or [])]


def parse(output: str) -> Result:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    kinds = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")}
    seconds = raw["duration_us"] / 1e6
    return Result(
        requests=raw["requests"],
        seconds=round(seconds, 2),
        rps=round(raw["requests"] / seconds, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=sum(kinds.values()),
        error_kinds=kinds,
    )


def run(cmd: list[str]) -> Result:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return parse(done.stdout)


def start(cmd: list[str]) -> subprocess.Popen[str]:
    """wrk in the background (S4's logins), to be read with `finish`."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603


def finish(process: subprocess.Popen[str]) -> Result:
    output, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    return parse(output)
