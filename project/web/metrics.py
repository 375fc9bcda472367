"""Prometheus /metrics, each request observed where it is logged. With several workers
(PROMETHEUS_MULTIPROC_DIR), /metrics sums what each writes there."""

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, partial

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event

from project.config import Settings
from project.database import Database
from project.errors import AuthenticationFailed
from project.web.middleware import Observer

METRICS_PATH = "/metrics"
# Any other method is "other": a client must not be able to mint label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live(?:sum|all|max|min|mostrecent)_(\d+)\.db$")


def has_metrics_token(request: Request, settings: Settings) -> bool:
    """Whether the request carries the metrics bearer token (True when none is set)."""
    if (token := settings.metrics_token) is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and secrets.compare_digest(given.encode(), expected)


def install_metrics(app: FastAPI, settings: Settings) -> Observer | None:
    """When METRICS_ENABLED, serve /metrics, and what counts and times every request but
    scrapes (an unknown path's handler is "none")."""
    if not settings.metrics_enabled:
        return None
    # A registry per app, so that apps built side by side (tests) count separately.
    registry = CollectorRegistry()
    names, by = ("handler", "method", "status"), "by route template, method and status."
    requests = Counter("http_requests_total", f"Requests {by}", names, registry=registry)
    latency = Histogram(
        "http_request_duration_seconds", f"Time to answer, {by}", names, registry=registry
    )
    # Each label set's children, made once: the labels are fixed sets, so they are few.
    series = cache(lambda *labels: (requests.labels(*labels), latency.labels(*labels)))
    # This worker's connections; "livesum": /metrics shows the sum over the live workers.
    gauge = partial(Gauge, registry=registry, multiprocess_mode="livesum")
    in_use = gauge("db_pool_connections_in_use", "Database connections checked out of the pool.")
    capacity = gauge(
        "db_pool_connections_capacity",
        "Database connections the pool may open (DB_POOL_SIZE + DB_MAX_OVERFLOW).",
    )

    emails = Counter(
        "emails_total",
        "Emails the outbox finished with: sent, or failed for good (after MAIL_MAX_ATTEMPTS).",
        ["outcome"],
        registry=registry,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database: Database = app.state.database  # opened by the app's lifespan, which runs first
        # The pool's own count, not one kept here: a checkin without a checkout (a failed
        # reconnect) cannot leave it off for good. "checkin" fires before the connection is back.
        checked_out = database.engine.pool.checkedout  # type: ignore[attr-defined]
        capacity.set(database.pool_status()["capacity"])
        in_use.set(checked_out())
        app.state.outbox.observers.append(lambda outcome: emails.labels(outcome).inc())
        engine = database.engine.sync_engine
        event.listen(engine, "checkout", lambda *_: in_use.set(checked_out()))
        event.listen(engine, "checkin", lambda *_: in_use.set(checked_out() - 1))
        yield

    router = APIRouter(lifespan=lifespan, include_in_schema=False)

    # A plain def, run in a thread: reading the workers' files never blocks the event loop.
    @router.get(METRICS_PATH)
    def metrics(request: Request) -> Response:
        if not has_metrics_token(request, settings):
            raise AuthenticationFailed("/metrics needs the metrics bearer token.")
        source, directory = registry, os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            # Drop crashed workers' live gauges: uvicorn has no hook to call this from.
            for match in filter(None, map(_LIVE_GAUGE_FILE.match, os.listdir(directory))):
                try:
                    os.kill(pid := int(match.group(1)), 0)
                except ProcessLookupError:
                    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
                except PermissionError:
                    pass  # alive, under another user
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source, directory)  # type: ignore[no-untyped-call]
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

    def observe(route: str | None, method: str, status: int, seconds: float) -> None:
        if route != METRICS_PATH:
            method = method if method in METHODS else "other"
            count, duration = series(route or "none", method, status)
            count.inc()
            duration.observe(seconds)

    return observe
