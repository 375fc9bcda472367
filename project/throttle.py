"""Login throttling per email address and per client address, kept in the database so
that every worker and machine counts the same attempts.

Each attempt is recorded and committed *before* the counts are read, so of N concurrent
attempts the k-th to commit sees at least k: a burst cannot slip past the limit. An attempt
that is refused or succeeds is removed again: only failures count, and hammering a locked
account does not extend its lock, so the owner gets back in once the window has passed.
"""

import math
import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.config import Settings
from project.errors import TooManyRequests
from project.models import LoginAttempt, utcnow

MAX_CLIENT_LENGTH = 64


async def begin_attempt(
    session: AsyncSession, settings: Settings, email: str, client: str
) -> uuid.UUID:
    """Record a login attempt, or raise 429 if the email or the client is over its limit."""
    now = utcnow()
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    client = client[:MAX_CLIENT_LENGTH]
    await session.execute(delete(LoginAttempt).where(col(LoginAttempt.created_at) < window_start))
    attempt = LoginAttempt(email=email, client=client, created_at=now, updated_at=now)
    session.add(attempt)
    await session.commit()

    for column, value, limit in (
        (col(LoginAttempt.email), email, settings.login_max_failures_per_email),
        (col(LoginAttempt.client), client, settings.login_max_failures_per_client),
    ):
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(col(LoginAttempt.created_at))).where(
                    column == value, col(LoginAttempt.created_at) >= window_start
                )
            )
        ).one()
        if count > limit:
            await forget_attempt(session, attempt.id)
            wait = (oldest - window_start).total_seconds() if oldest else 1
            raise TooManyRequests(
                "Too many failed sign-in attempts; wait before trying again.",
                retry_after=math.ceil(wait),
            )
    return attempt.id


async def forget_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    """Remove an attempt that did not fail (and commit), so it never counts."""
    await session.execute(delete(LoginAttempt).where(col(LoginAttempt.id) == attempt_id))
    await session.commit()
