"""Liveness and readiness, for load balancers."""

import asyncio
import logging

from fastapi import APIRouter, Request, status

from project.database import Revisions, get_database
from project.errors import ServiceUnavailable
from project.models import Liveness, PoolUsage, Readiness
from project.web.docs import problems
from project.web.metrics import has_metrics_token

logger = logging.getLogger("project.health")

router = APIRouter(prefix="/health", tags=["health"])
READY_TIMEOUT_SECONDS = 2.0


@router.get("/live")
async def live() -> Liveness:
    """The process is up and serving."""
    return Liveness(status="ok")


@router.get("/ready", responses=problems(status.HTTP_503_SERVICE_UNAVAILABLE))
async def ready(request: Request) -> Readiness:
    """The database answers, its schema is the one this code needs, and the connection pool
    has room: send traffic here."""
    database = get_database(request)
    pool = database.pool_status()
    if pool["in_use"] >= pool["capacity"]:
        # From the pool's counters: waiting for a connection would hang just when it matters.
        raise ServiceUnavailable("Every database connection is in use.")
    revisions: Revisions = request.app.state.revisions
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.engine.connect() as connection:
            problem = await revisions.problem(connection)
    except Exception as exc:
        _note(request, f"the database does not answer: {exc!r}")
        raise ServiceUnavailable("The database does not answer.") from exc
    _note(request, problem)
    if problem is not None:
        # What to do is for the operator, in the log; an anonymous caller only learns that.
        raise ServiceUnavailable("The database schema is not up to date.")
    settings = request.app.state.settings
    shown = has_metrics_token(request, settings) and (
        settings.metrics_token is not None or settings.environment != "production"
    )
    return Readiness(status="ok", database="ok", pool=PoolUsage(**pool) if shown else None)


def _note(request: Request, problem: str | None) -> None:
    """Log why the service is not ready when that changes, not at every probe."""
    state = request.app.state
    if problem != getattr(state, "unready_because", None):
        state.unready_because = problem
        if problem is None:
            logger.info("ready")
        else:
            logger.warning("not ready: %s", problem)
