"""The Host check (ALLOWED_HOSTS): every absolute URL the service builds (each `Location`, the
admin's redirects and links) names the Host the request came with, so a request for a host
the service is not is refused, in problem+json, before anything reads it. /health/ and
/metrics answer any Host: probes and scrapers ask by address and get no URL back."""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError

from project.app import create_app
from project.config import Settings
from tests.factories import PRODUCTION_DATABASE as DATABASE
from tests.factories import Account, assert_problem, production_settings
from tests.server import run_python

FOREIGN = ("evil.example", "evil.example:80", "testserver.evil.example", "eviltestserver")
# Host headers that name an allowed host in part, or not in a form a URL may hold.
MALFORMED = (
    "testserver:",
    "testserver:80:80",
    "testserver:8o",
    "testserver:²",
    "",
    "t@evil.example",
)


@asynccontextmanager
async def serving(settings: Settings, **update: Any) -> AsyncIterator[AsyncClient]:
    app = create_app(settings.model_copy(update=update))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def assert_refused(response: Any) -> None:
    assert "location" not in response.headers
    body = assert_problem(response, 400)
    assert body["detail"] == "The Host header names no host this service answers for."
    assert "evil" not in response.text


@pytest.mark.parametrize("host", FOREIGN + MALFORMED)
async def test_a_create_for_another_host_is_refused_and_names_no_location(
    client: AsyncClient, alice: Account, host: str
) -> None:
    body = {"name": "Avengers", "headquarters": "New York"}
    sent = {**alice.headers, "Host": host.encode("latin-1")}  # as bytes: `²` is no ASCII
    refused = await client.post("/api/v1/teams", json=body, headers=sent)
    assert_refused(refused)
    assert refused.headers["x-request-id"] and refused.headers["x-content-type-options"]
    listed = await client.get("/api/v1/teams", headers=alice.headers)
    assert listed.json()["items"] == [], "a refused request must not reach the handler"


@pytest.mark.parametrize("host", ["testserver", "TestServer", "testserver:8443", "t:80"])
async def test_an_allowed_host_is_served_whatever_its_port_or_case(
    client: AsyncClient, alice: Account, host: str
) -> None:
    body = {"name": "Avengers", "headquarters": "New York"}
    created = await client.post("/api/v1/teams", json=body, headers={**alice.headers, "Host": host})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"http://{host}/api/v1/teams/{created.json()['id']}"


async def test_the_admin_redirects_only_to_an_allowed_host(client: AsyncClient) -> None:
    assert_refused(await client.get("/admin/", headers={"Host": "evil.example"}))
    assert_refused(await client.get("/admin", headers={"Host": "evil.example"}))
    assert_refused(await client.get("/admin/login", headers={"Host": "evil.example:8000"}))
    redirect = await client.get("/admin/", headers={"Host": "testserver:8000"})
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "http://testserver:8000/admin/login"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
@pytest.mark.parametrize("host", ["10.1.2.3:8000", "localhost", "evil.example", ""])
async def test_health_answers_whatever_host_a_probe_sends(
    client: AsyncClient, path: str, host: str
) -> None:
    """Kubernetes probes send `Host: <pod address>:<port>`, Docker's HEALTHCHECK whatever it
    dials: a probe refused for its Host would restart or unlist a healthy service."""
    response = await client.get(path, headers={"Host": host})
    assert response.status_code == 200, response.text


async def test_only_the_health_paths_are_exempt(client: AsyncClient) -> None:
    for path in ("/health", "/healthz", "/docs", "/openapi.json", "/api/v1/health/live"):
        assert_refused(await client.get(path, headers={"Host": "evil.example"}))


async def test_metrics_answer_whatever_host_the_scraper_sends(settings: Settings) -> None:
    async with serving(settings, metrics_enabled=True) as http:
        assert (await http.get("/metrics", headers={"Host": "10.1.2.3:8000"})).status_code == 200


async def test_a_wildcard_allows_the_subdomains_only(settings: Settings, alice: Account) -> None:
    async with serving(settings, allowed_hosts=["*.example.com", "testserver"]) as http:
        for host in ("api.example.com", "API.Example.COM:443", "a.b.example.com"):
            assert (await http.get("/docs", headers={"Host": host})).status_code == 200, host
        for host in ("example.com", "evilexample.com", "example.com.evil", "x/y.example.com"):
            assert_refused(await http.get("/docs", headers={"Host": host}))
        for host in ("x@y.example.com", "y.example.com#", "y.example.com:8o"):
            assert_refused(await http.get("/docs", headers={"Host": host}))


async def test_an_address_is_matched_with_or_without_its_port(settings: Settings) -> None:
    async with serving(settings, allowed_hosts=["[::1]", "10.0.0.5"]) as http:
        for host in ("[::1]", "[::1]:8000", "10.0.0.5", "10.0.0.5:80"):
            assert (await http.get("/docs", headers={"Host": host})).status_code == 200, host
        for host in ("[::2]:8000", "10.0.0.50", "::1", "[::1]:"):
            assert_refused(await http.get("/docs", headers={"Host": host}))


async def test_a_star_allows_every_host(settings: Settings) -> None:
    async with serving(settings, allowed_hosts=["*"]) as http:
        response = await http.get("/admin/", headers={"Host": "anything.example"})
        assert response.headers["location"] == "http://anything.example/admin/login"


def test_development_allows_this_machine_by_default() -> None:
    for environment in ("development", "test"):
        for given in ({}, {"allowed_hosts": []}):
            settings = Settings(_env_file=None, environment=environment, **given)  # type: ignore[call-arg, arg-type]
            assert settings.allowed_hosts == ["localhost", "127.0.0.1"]


def from_environment() -> Settings:
    """Production settings with ALLOWED_HOSTS as the environment gives it."""
    key = {"secret_key": "k" * 48}
    return Settings(_env_file=None, environment="production", database_url=DATABASE, **key)  # type: ignore[call-arg, arg-type]


def test_allowed_hosts_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", " api.example.com, *.example.com ,,")
    assert from_environment().allowed_hosts == ["api.example.com", "*.example.com"]
    monkeypatch.setenv("ALLOWED_HOSTS", "*")
    assert from_environment().allowed_hosts == ["*"]


@pytest.mark.parametrize("given", [None, "", " , "])
def test_production_refuses_to_start_without_allowed_hosts(
    given: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    if given is not None:
        monkeypatch.setenv("ALLOWED_HOSTS", given)
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS must be set in production"):
        from_environment()
    with pytest.raises(ValidationError, match="ALLOWED_HOSTS must be set in production"):
        production_settings(allowed_hosts=[])


@pytest.mark.parametrize(
    "host",
    ["https://api.example.com", "api.example.com:8000", "api.example.com/", "*example.com",
     "*.", "a.*.example.com", "api example.com", "[::1"],
)  # fmt: skip
def test_a_host_that_cannot_be_matched_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"ALLOWED_HOSTS: {host!r} is not a host")):
        production_settings(allowed_hosts=["api.example.com", host])


def test_the_service_refuses_to_start_in_production_without_allowed_hosts() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ENVIRONMENT": "production",
        "SECRET_KEY": "k" * 48,
        "DATABASE_URL": DATABASE,
    }
    checked = run_python("-m", "project", "check-settings", env=env)
    assert checked.returncode == 2
    assert checked.stderr.startswith("ALLOWED_HOSTS must be set in production"), checked.stderr
    started = run_python("-c", "import project.app", env=env)
    assert started.returncode != 0
    assert "ALLOWED_HOSTS must be set in production" in started.stderr
