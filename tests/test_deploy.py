"""The deployment files: docker-compose.yml against the Compose Specification's schema, the
Dockerfile and .dockerignore checked statically (no Docker engine runs here), and
scripts/start.sh, the image's command, run natively on a PostgreSQL of the test's own:
it migrates only when asked, serves with several workers, and replicas that start together
do not race on the migration."""

import copy
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import sqlalchemy as sa
import yaml
from uvicorn.main import main as uvicorn_command

from project.config import Settings
from tests.conftest import ROOT
from tests.pgcluster import PostgresCluster, postgres_available
from tests.server import LiveServer
from tests.test_migrations import TABLES, _drift, _run

needs_postgres = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")

START_SCRIPT = ROOT / "scripts" / "start.sh"
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
EXAMPLE_ENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "SECRET_KEY": "s" * 48,
    "ALLOWED_HOSTS": "api.example.com",
}


class StartScript(LiveServer):
    """scripts/start.sh run natively, as the image runs it: HOST, PORT and WEB_CONCURRENCY
    from the environment, from any working directory."""

    cwd = "/"

    def command(self) -> list[str]:
        return [str(START_SCRIPT)]

    def launch_env(self) -> dict[str, str]:
        return {
            **self.env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.workers),
            # `python` on PATH is the suite's interpreter, as /app/.venv/bin is in the image.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }


# --- docker-compose.yml --------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`, applied to every string."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise KeyError(f"{name} is required: {argument}")
        return argument if operator == ":-" else ""

    return _VARIABLE.sub(substitute, value)


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return raw if env is None else _interpolate(raw, env)  # type: ignore[no-any-return]


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # The schema declares draft 7 (as "https://json-schema.org/draft-07/schema", a spelling
    # jsonschema does not look up), so name the validator rather than guess.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification() -> None:
    assert _schema_errors(_compose()) == []
    # Compose validates after interpolation too, when numbers and ports are filled in.
    assert _schema_errors(_compose(EXAMPLE_ENV)) == []


def test_the_schema_check_catches_a_broken_compose_file() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["app"]["depends_on"]["migrate"]["condition"] = "service_completed"
    broken["services"]["db"]["healthcheck"]["intervall"] = "5s"
    errors = _schema_errors(broken)
    assert any("service_completed" in e for e in errors)
    assert any("intervall" in e for e in errors)


def test_compose_refuses_to_start_without_the_secrets() -> None:
    for missing in EXAMPLE_ENV:
        env = {k: v for k, v in EXAMPLE_ENV.items() if k != missing}
        with pytest.raises(KeyError, match=missing):
            _compose(env)


def test_compose_runs_database_then_migration_then_app() -> None:
    services = _compose(EXAMPLE_ENV)["services"]
    db, migrate, app = services["db"], services["migrate"], services["app"]

    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert migrate["command"] == ["python", "-m", "alembic", "upgrade", "head"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert app["depends_on"]["db"] == {"condition": "service_healthy"}
    # The app runs the image's CMD (scripts/start.sh) and does not migrate a second time.
    assert "command" not in app
    assert app["environment"].get("RUN_MIGRATIONS", "false") == "false"
    assert migrate["image"] == app["image"] and migrate["build"] == app["build"] == "."
    assert migrate["environment"] == app["environment"]


def test_compose_trusts_the_forwarded_address_of_its_networks_gateway_only() -> None:
    """Behind the host's proxy every connection comes from the compose network's gateway:
    the app must take the client's address from X-Forwarded-For, trusting that peer alone,
    or one client's failed sign-ins would lock every client out."""
    compose = _compose(EXAMPLE_ENV)
    (network,) = compose["networks"]["default"]["ipam"]["config"]
    trusted = compose["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert trusted == network["gateway"]
    assert ipaddress.ip_address(trusted) in ipaddress.ip_network(network["subnet"])
    serve = shlex.split(START_SCRIPT.read_text().partition("exec python -m uvicorn")[2])
    assert "--proxy-headers" in serve
    allowed = serve.index("--forwarded-allow-ips") + 1
    assert serve[allowed] == "${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}"
    # An operator's own choice wins over the compose file's.
    chosen = _compose({**EXAMPLE_ENV, "FORWARDED_ALLOW_IPS": "10.1.2.3"})
    assert chosen["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"] == "10.1.2.3"


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return found.returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="the docker compose plugin is not installed")
def test_docker_compose_itself_accepts_the_file() -> None:
    """`docker compose config` parses, interpolates and validates without an engine."""
    command = ["docker", "compose", "--file", str(ROOT / "docker-compose.yml"), "config"]
    accepted = subprocess.run(
        [*command, "--quiet"], env={**os.environ, **EXAMPLE_ENV}, capture_output=True, timeout=30
    )
    assert accepted.returncode == 0, accepted.stderr
    without_key = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    refused = subprocess.run(
        command, env={**without_key, "POSTGRES_PASSWORD": "x"}, capture_output=True, timeout=30
    )
    assert refused.returncode != 0
    assert b"SECRET_KEY" in refused.stderr


def _start_script_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+)", START_SCRIPT.read_text()))


def test_compose_environment_is_a_valid_production_configuration() -> None:
    environment: dict[str, str] = _compose(EXAMPLE_ENV)["services"]["app"]["environment"]
    known = {name.upper() for name in Settings.model_fields} | _start_script_variables()
    assert set(environment) <= known, f"not a setting: {set(environment) - known}"

    fields = {k.lower(): v for k, v in environment.items() if k.lower() in Settings.model_fields}
    settings = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    assert settings.environment == "production"
    assert settings.database_url == "postgresql+asyncpg://heroes:pg-secret@db:5432/heroes"
    assert settings.allowed_hosts == ["api.example.com"]
    assert not settings.migrate_at_startup
    assert not settings.metrics_enabled and settings.metrics_token is None
    # The database's connection limit covers the default pools of every worker.
    workers = int(environment["WEB_CONCURRENCY"])
    per_worker = settings.db_pool_size + settings.db_max_overflow
    max_connections = int(_compose(EXAMPLE_ENV)["services"]["db"]["command"][-1].split("=")[1])
    assert per_worker * workers < max_connections


def _deploying_guide() -> str:
    """The operators' guide (docs/operations.md): deploying, and every setting."""
    return (ROOT / "docs" / "operations.md").read_text()


def test_the_deploying_guide_names_only_variables_that_exist() -> None:
    """Every `VARIABLE` the guide names is read by something: the settings, start.sh, the
    compose file, or uvicorn (UVICORN_<option>, FORWARDED_ALLOW_IPS)."""
    known = (
        {name.upper() for name in Settings.model_fields}
        | _start_script_variables()
        | set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
        | {f"UVICORN_{option.name.upper()}" for option in uvicorn_command.params}
        | {"FORWARDED_ALLOW_IPS"}
    )
    instructions = {name for stage in _dockerfile() for name, _ in stage}  # `HEALTHCHECK`
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`", _deploying_guide()))
    assert named, "the guide names no variable"
    assert named - instructions <= known, f"unknown variables: {named - instructions - known}"


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def _dockerfile() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages, each a list of (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def _args(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [arguments for name, arguments in stage if name == instruction]


def test_dockerfile_builds_from_the_lock_and_runs_slim_and_unprivileged() -> None:
    stages = _dockerfile()
    assert len(stages) >= 2, "multi-stage: build tools stay out of the image"
    builder, runtime = stages[0], stages[-1]
    python_image = re.search(r"PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text())
    assert python_image is not None and python_image.group(1) == "python:3.11-slim"

    assert any("poetry.lock" in a for a in _args(builder, "COPY"))
    install = " ".join(_args(builder, "RUN"))
    assert "poetry install --only main --no-root" in install
    assert not any("poetry" in a for a in _args(runtime, "RUN")), "no Poetry at run time"
    assert any(a.startswith("--from=builder") and ".venv" in a for a in _args(runtime, "COPY"))

    users = _args(runtime, "USER")
    assert users and users[-1] not in ("root", "0"), "the server must not run as root"
    names = [name for name, _ in runtime]
    assert names.index("USER") > max(i for i, n in enumerate(names) if n in ("RUN", "COPY"))


def test_dockerfile_serves_through_the_start_script_and_checks_readiness() -> None:
    runtime = _dockerfile()[-1]
    assert json.loads(_args(runtime, "CMD")[-1]) == ["/app/scripts/start.sh"]
    assert _args(runtime, "WORKDIR")[-1] == "/app"
    assert "scripts/ scripts/" in _args(runtime, "COPY")
    assert os.access(START_SCRIPT, os.X_OK), "the image runs start.sh directly: keep it +x"
    healthcheck = _args(runtime, "HEALTHCHECK")[-1]
    assert "/health/ready" in healthcheck
    assert "WEB_CONCURRENCY=2" in " ".join(_args(runtime, "ENV"))


def test_only_what_the_image_copies_enters_the_build_context() -> None:
    """.dockerignore starts from nothing and lets in exactly the Dockerfile's COPY sources,
    so .env (development secrets), heroes.db and .venv never reach the image."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for stage in _dockerfile():
        for arguments in _args(stage, "COPY"):
            words = shlex.split(arguments)
            if any(w.startswith("--from") for w in words):
                continue
            copied |= {w.rstrip("/") for w in words[:-1] if not w.startswith("--")}
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


# --- scripts/start.sh ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    with PostgresCluster(tmp_path_factory.mktemp("deploy-pg")) as server:
        yield server


def _tables(url: str) -> set[str]:
    names: list[str] = _run(url, lambda connection: sa.inspect(connection).get_table_names())
    return set(names)


def _healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, with this machine's interpreter for `python`."""
    healthcheck = _args(_dockerfile()[-1], "HEALTHCHECK")[-1]
    command: list[str] = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@needs_postgres
def test_start_script_migrates_only_when_asked_then_serves(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    cluster.create_database("start")
    url = cluster.url("start")
    # As in the image: production settings; TMPDIR is where start.sh makes its metrics dir.
    env = {"ENVIRONMENT": "production", "TMPDIR": str(tmp_path)}

    with StartScript(url, tmp_path, env=env):
        pass
    assert _tables(url) == set(), "start.sh migrated without RUN_MIGRATIONS=true"

    with StartScript(url, tmp_path, env={**env, "RUN_MIGRATIONS": "true"}, workers=2) as server:
        assert _tables(url) == TABLES | {"alembic_version"}
        ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"
        assert "server" not in ready.headers  # no software and version for an attacker to read
        body = {"email": "deployed@example.com", "password": "correct horse battery"}
        assert httpx.post(f"{server.url}/api/v1/auth/register", json=body).status_code == 201

        healthcheck = subprocess.run(
            _healthcheck_command(), env={**os.environ, "PORT": str(server.port)}, timeout=10
        )
        assert healthcheck.returncode == 0

    # The same HEALTHCHECK fails once nothing answers: Docker would mark the container unhealthy.
    dead = subprocess.run(
        _healthcheck_command(),
        env={**os.environ, "PORT": str(server.port)},
        capture_output=True,
        timeout=10,
    )
    assert dead.returncode != 0
    assert list(tmp_path.glob("heroes-metrics.*")), "start.sh made no metrics directory"
    # uvicorn's own lines are JSON too, for the same log shipper.
    lines = [line for line in server.log().splitlines() if "server process" in line]
    assert lines and all(json.loads(line)["logger"].startswith("uvicorn") for line in lines)


def test_start_script_stops_at_a_bad_setting_before_serving(tmp_path: Path) -> None:
    """A bad setting ends the start at once with a message, rather than in every worker,
    which the server would replace again and again while the process looks alive."""
    from project.config import DEVELOPMENT_SECRET_KEY

    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": DEVELOPMENT_SECRET_KEY,
        "PORT": "1",  # nothing may start serving
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    refused = subprocess.run(
        [str(START_SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "development key" in refused.stderr
    assert "Uvicorn running" not in refused.stderr


# `python -m alembic upgrade head`, but held at a start line until every migrator has
# imported the project (the slow part), so that their migrations really do overlap.
MIGRATOR = """
import pathlib, sys, time
import alembic.config, project.models
here = pathlib.Path(sys.argv[1])
(here / f"ready-{sys.argv[2]}").touch()
deadline = time.monotonic() + 60
while not (here / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
alembic.config.main(["upgrade", "head"], prog="alembic")
"""


@needs_postgres
def test_migrations_started_together_do_not_race(cluster: PostgresCluster, tmp_path: Path) -> None:
    """Three `alembic upgrade head` on one empty database at the same moment, as replicas
    with RUN_MIGRATIONS=true (or the migrate jobs of several deployments) run it: all
    succeed, one migrates while the others wait on the advisory lock, the schema is head."""
    cluster.create_database("race")
    url = cluster.url("race")
    env = {**os.environ, "DATABASE_URL": url, "ENVIRONMENT": "test"}
    migrators = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, str(tmp_path), str(i)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(migrators):
        assert time.monotonic() < deadline, "the migrators did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [migrator.communicate(timeout=120)[0] for migrator in migrators]
    assert [m.returncode for m in migrators] == [0, 0, 0], "\n".join(outputs)
    assert _tables(url) == TABLES | {"alembic_version"}
    assert _run(url, _drift) == []
