"""Login throttling per email and per client address, counted in the database so that every
worker sees the same attempts. Each attempt is committed *before* the counts are read, so of N
concurrent attempts the k-th to commit sees at least k. Attempts in flight count, but only
failures lock (a burst over the limit only in flight is told to retry in a moment). Refused
and successful attempts are removed, so hammering a locked account does not extend it."""

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.config import Settings
from project.errors import TooManyRequests
from project.models import LoginAttempt, utcnow

MAX_CLIENT_LENGTH = 64
# An attempt in flight for this long never ends (its process died): it counts as failed.
IN_FLIGHT = timedelta(seconds=60)
TURN_WAIT_SECONDS = 5.0
LOCKED = "Too many failed sign-in attempts; wait before trying again."
AT_ONCE = "Too many sign-in attempts at once; try again in a moment."


async def unlock(session: AsyncSession, email: str) -> int:
    """Forget an email's sign-in attempts, so its owner may sign in at once (the caller commits)."""
    result = await session.execute(delete(LoginAttempt).where(col(LoginAttempt.email) == email))
    return int(getattr(result, "rowcount", 0) or 0)


async def begin_attempt(
    session: AsyncSession, settings: Settings, email: str, client: str
) -> uuid.UUID:
    """Record a login attempt, or raise 429 if the email or the client is over its limit."""
    now = utcnow()
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    client, created = client[:MAX_CLIENT_LENGTH], col(LoginAttempt.created_at)
    await session.execute(delete(LoginAttempt).where(created < window_start))
    attempt = LoginAttempt(email=email, client=client, created_at=now, updated_at=now)
    session.add(attempt)
    await session.commit()
    failed = col(LoginAttempt.failed) | (created < now - IN_FLIGHT)
    counts = select(
        func.count().filter(failed), func.count().filter(~failed), func.min(created).filter(failed)
    ).where(created >= window_start)
    for column, value, limit in (
        (col(LoginAttempt.email), email, settings.login_max_failures_per_email),
        (col(LoginAttempt.client), client, settings.login_max_failures_per_client),
    ):
        failures, in_flight, oldest = (await session.execute(counts.where(column == value))).one()
        if failures >= limit:
            await end_attempt(session, attempt.id)
            raise TooManyRequests(LOCKED, math.ceil((oldest - window_start).total_seconds()))
        if failures + in_flight > limit:
            await end_attempt(session, attempt.id)
            raise TooManyRequests(AT_ONCE, retry_after=1)
    return attempt.id


async def end_attempt(session: AsyncSession, attempt_id: uuid.UUID, failed: bool = False) -> None:
    """Count an attempt as failed, or else remove it so that it never counts (and commit)."""
    change = update(LoginAttempt).values(failed=True) if failed else delete(LoginAttempt)
    await session.execute(change.where(col(LoginAttempt.id) == attempt_id))
    await session.commit()


class Turns:
    """Sign-ins for one email take turns within this process, first come first served and
    `width` at a time, so that a burst of correct ones is not over the limit while in
    flight. One that waits longer than `TURN_WAIT_SECONDS` is told to retry (429)."""

    def __init__(self) -> None:
        self._turns: dict[str, asyncio.Semaphore] = {}
        self._people: Counter[str] = Counter()  # taking a turn or waiting for one

    @asynccontextmanager
    async def take(self, key: str, width: int = 1) -> AsyncIterator[None]:
        turns = self._turns.setdefault(key, asyncio.Semaphore(width))
        self._people[key] += 1
        try:
            try:
                async with asyncio.timeout(TURN_WAIT_SECONDS):
                    await turns.acquire()
            except TimeoutError:
                raise TooManyRequests(AT_ONCE, retry_after=1) from None
            try:
                yield
            finally:
                turns.release()
        finally:
            self._people[key] -= 1
            if not self._people[key]:
                del self._people[key], self._turns[key]


TURNS = Turns()
