"""Prometheus /metrics in one process: requests and latency by route template and status,
the pool gauge, and who may read it. tests/test_workers.py checks the numbers add up over
several workers."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from project.app import create_app
from project.config import Settings
from tests.factories import Account, assert_problem, create, production_settings

TOKEN = "a-metrics-token-of-32-characters-or-more"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_enabled": True})


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def scrape(client: AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(handler: str, method: str, status: int) -> tuple[tuple[str, str], ...]:
    return (("handler", handler), ("method", method), ("status", str(status)))


async def test_requests_are_counted_by_route_template_and_status(
    client: AsyncClient, alice: Account
) -> None:
    hero = await create(client, alice, "heroes", name="Thor", secret_name="Donald Blake")
    assert (await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)).is_success
    missing = uuid.uuid4()
    for _ in range(2):
        response = await client.get(f"/api/v1/heroes/{missing}", headers=alice.headers)
        assert response.status_code == 404
    assert (await client.get(f"/no/such/{missing}")).status_code == 404

    samples = await scrape(client)
    template = "/api/v1/heroes/{id}"
    assert samples[("http_requests_total", labels(template, "GET", 200))] == 1
    assert samples[("http_requests_total", labels(template, "GET", 404))] == 2
    assert samples[("http_requests_total", labels("/api/v1/heroes", "POST", 201))] == 1
    # An unknown path counts as handler "none": scanners cannot blow up the series count.
    assert samples[("http_requests_total", labels("none", "GET", 404))] == 1
    # Latency by the same labels: a histogram whose count matches the requests.
    count = samples[("http_request_duration_seconds_count", labels(template, "GET", 404))]
    assert count == 2
    handlers = {dict(key[1]).get("handler") for key in samples}
    assert not any(str(missing) in str(handler) for handler in handlers), "raw path leaked"
    assert "/metrics" not in handlers, "scrapes are not counted as traffic"


async def test_the_admins_pages_count_under_their_own_paths(client: AsyncClient) -> None:
    assert (await client.get("/admin/login")).status_code == 200
    samples = await scrape(client)
    assert samples[("http_requests_total", labels("/admin/login", "GET", 200))] == 1
    assert ("http_requests_total", labels("/login", "GET", 200)) not in samples


async def test_made_up_methods_do_not_mint_label_values(client: AsyncClient) -> None:
    for method in ("FOO", "BAR"):
        assert (await client.request(method, "/api/v1/heroes")).status_code == 405
    samples = await scrape(client)
    assert samples[("http_requests_total", labels("/api/v1/heroes", "other", 405))] == 2
    methods = {dict(key[1]).get("method") for key in samples}
    assert not methods & {"FOO", "BAR"}


async def test_the_pool_gauge_counts_connections_in_use(app: FastAPI, client: AsyncClient) -> None:
    database = app.state.database
    held = [await database.engine.connect() for _ in range(3)]
    try:
        samples = await scrape(client)
        assert samples[("db_pool_connections_in_use", ())] == 3
    finally:
        for connection in held:
            await connection.close()
    samples = await scrape(client)
    assert samples[("db_pool_connections_in_use", ())] == 0
    capacity = database.pool_status()["capacity"]
    assert samples[("db_pool_connections_capacity", ())] == capacity


async def test_metrics_are_off_unless_enabled(settings: Settings) -> None:
    async with serving(settings.model_copy(update={"metrics_enabled": False})) as client:
        assert_problem(await client.get("/metrics"), 404)


async def test_metrics_need_the_token_when_one_is_set(settings: Settings) -> None:
    protected = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    async with serving(protected) as client:
        for headers in (
            {},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer"},
        ):
            refused = await client.get("/metrics", headers=headers)
            assert_problem(refused, 401)
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert "http_requests_total" not in refused.text
        assert await scrape(client, Authorization=f"Bearer {TOKEN}")


async def test_metrics_stay_out_of_the_api_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths


def test_production_refuses_open_or_weakly_guarded_metrics() -> None:
    def metrics_on(**values: Any) -> Settings:
        return production_settings(metrics_enabled=True, **values)

    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        metrics_on()
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        metrics_on(metrics_token="")  # METRICS_TOKEN= in a compose file means unset
    with pytest.raises(ValidationError, match="32 characters"):
        metrics_on(metrics_token="short")
    assert metrics_on(metrics_token=TOKEN).metrics_token == SecretStr(TOKEN)
