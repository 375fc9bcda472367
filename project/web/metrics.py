"""Prometheus metrics at /metrics: requests and latency by route template and status, and
the database connections in use, through prometheus_client.

Requests are observed by a small ASGI middleware rather than prometheus-fastapi-instrumentator:
that one searches every route again for the template and builds a Request, a Response and an
info object per request, about 60 µs of a 160 µs request to /health/live on this machine.
The router has already found the route (`scope["route"]`); the rest is two label lookups.

With several workers, prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, which
scripts/start.sh sets) has every worker write its numbers to files there, and whichever
worker answers /metrics adds them all up.
"""

import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from project.config import Settings
from project.database import Database
from project.errors import AuthenticationFailed
from project.web.middleware import route_template

METRICS_PATH = "/metrics"
# Any other method is "other": a client must not be able to mint label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live(?:sum|all|max|min|mostrecent)_(\d+)\.db$")


class PoolGauges:
    """Connections this worker has checked out of its pool, and how many it may."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # "livesum": /metrics shows the sum over the workers that are alive.
        self.in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.capacity = Gauge(
            "db_pool_connections_capacity",
            "Database connections the pool may open (DB_POOL_SIZE + DB_MAX_OVERFLOW).",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def watch(self, database: Database) -> None:
        pool = database.engine.pool
        status = database.pool_status()
        self.capacity.set(status["capacity"])
        self.in_use.set(status["in_use"])

        # Set from the pool's own count rather than counted up and down, so that a checkin
        # without a checkout (a failed reconnect) cannot leave the gauge off for good.
        def checked_out(*_: Any) -> None:
            self.in_use.set(pool.checkedout())  # type: ignore[attr-defined]

        def checked_in(*_: Any) -> None:
            # The pool fires "checkin" before it takes the connection back.
            self.in_use.set(pool.checkedout() - 1)  # type: ignore[attr-defined]

        event.listen(database.engine.sync_engine, "checkout", checked_out)
        event.listen(database.engine.sync_engine, "checkin", checked_in)


def _forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of workers that are gone (a crashed worker leaves its file
    behind; uvicorn, unlike gunicorn, has no hook to call mark_process_dead from)."""
    for path in Path(directory).iterdir():
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, under another user


def _exposition(registry: CollectorRegistry) -> bytes:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest(registry)
    _forget_dead_workers(directory)
    every_worker = CollectorRegistry()
    multiprocess.MultiProcessCollector(every_worker, directory)  # type: ignore[no-untyped-call]
    return generate_latest(every_worker)


def _metrics_router(settings: Settings, registry: CollectorRegistry) -> APIRouter:
    pool = PoolGauges(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runs after the app's own lifespan has opened the database.
        pool.watch(app.state.database)
        yield

    def require_token(request: Request) -> None:
        if settings.metrics_token is None:
            return
        expected = settings.metrics_token.get_secret_value().encode()
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), expected):
            raise AuthenticationFailed("/metrics needs the metrics bearer token.")

    router = APIRouter(lifespan=lifespan, include_in_schema=False)

    # A plain def: FastAPI runs it in a thread, so reading the workers' files never blocks
    # the event loop.
    @router.get(METRICS_PATH, dependencies=[Depends(require_token)])
    def metrics() -> Response:
        return Response(_exposition(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class RequestMetrics:
    """Pure ASGI middleware: counts and times every request by method, route template and
    status. An unknown path counts as handler "none", so scanners cannot multiply the
    series; scrapes of /metrics are not counted as traffic."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        names = ("handler", "method", "status")
        self.requests = Counter(
            "http_requests_total",
            "Requests by route template, method and status.",
            names,
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer, by route template, method and status.",
            names,
            registry=registry,
        )
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = route_template(scope) or "none"
            if handler != METRICS_PATH:
                method = scope["method"] if scope["method"] in METHODS else "other"
                self._observe(handler, method, status, time.perf_counter() - started)

    def _observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        key = (handler, method, status)
        series = self._series.get(key)
        if series is None:  # few: routes, methods and statuses are fixed sets
            labels = (handler, method, str(status))
            series = self._series[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        series[0].inc()
        series[1].observe(seconds)


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Instrument every request and serve /metrics, when METRICS_ENABLED."""
    if not settings.metrics_enabled:
        return
    # A registry per app, so that apps built side by side (tests) count separately.
    registry = CollectorRegistry()
    app.add_middleware(RequestMetrics, registry=registry)
    app.include_router(_metrics_router(settings, registry))
