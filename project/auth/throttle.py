"""Login throttling per email address and per client address, kept in the database so
that every worker and machine counts the same attempts.

Each attempt is recorded and committed *before* the counts are read, so of N concurrent
attempts the k-th to commit sees at least k: a burst cannot slip past the limit. Attempts
still in flight count against the limit with the failures, but only failures lock: a burst
that is over the limit only while in flight is told to retry in a moment. An attempt that
is refused or succeeds is removed again: hammering a locked account does not extend its
lock, so the owner gets back in once the window has passed. Within one process, sign-ins
for the same email take turns (`Turns`), so a burst of them is not over the limit at all.
"""

import asyncio
import math
import uuid
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
    """Forget every recorded sign-in attempt for an email, so its owner may sign in at once;
    how many there were. The caller commits."""
    result = await session.execute(delete(LoginAttempt).where(col(LoginAttempt.email) == email))
    return int(getattr(result, "rowcount", 0) or 0)


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

    failed = col(LoginAttempt.failed) | (col(LoginAttempt.created_at) < now - IN_FLIGHT)
    for column, value, limit in (
        (col(LoginAttempt.email), email, settings.login_max_failures_per_email),
        (col(LoginAttempt.client), client, settings.login_max_failures_per_client),
    ):
        failures, in_flight, oldest = (
            await session.execute(
                select(
                    func.count().filter(failed),
                    func.count().filter(~failed),
                    func.min(col(LoginAttempt.created_at)).filter(failed),
                ).where(column == value, col(LoginAttempt.created_at) >= window_start)
            )
        ).one()
        if failures >= limit:
            await forget_attempt(session, attempt.id)
            wait = (oldest - window_start).total_seconds()
            raise TooManyRequests(LOCKED, retry_after=math.ceil(wait))
        if failures + in_flight > limit:
            await forget_attempt(session, attempt.id)
            raise TooManyRequests(AT_ONCE, retry_after=1)
    return attempt.id


async def fail_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    """Count an attempt as failed (and commit)."""
    await session.execute(
        update(LoginAttempt).where(col(LoginAttempt.id) == attempt_id).values(failed=True)
    )
    await session.commit()


async def forget_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> None:
    """Remove an attempt that did not fail (and commit), so it never counts."""
    await session.execute(delete(LoginAttempt).where(col(LoginAttempt.id) == attempt_id))
    await session.commit()


class _Line:
    __slots__ = ("people", "turns")

    def __init__(self, width: int) -> None:
        self.turns = asyncio.Semaphore(width)
        self.people = 0  # taking a turn or waiting for one


class Turns:
    """Sign-ins for one email address take turns within this process, first come first
    served and `width` at a time: a burst of correct ones (a script, many tabs) is verified
    a few at a time instead of being over the limit while in flight. A sign-in that waits
    longer than `TURN_WAIT_SECONDS` is a 429 that says to retry in a moment."""

    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}

    @asynccontextmanager
    async def take(self, key: str, width: int = 1) -> AsyncIterator[None]:
        line = self._lines.setdefault(key, _Line(width))
        line.people += 1
        try:
            try:
                async with asyncio.timeout(TURN_WAIT_SECONDS):
                    await line.turns.acquire()
            except TimeoutError:
                raise TooManyRequests(AT_ONCE, retry_after=1) from None
            try:
                yield
            finally:
                line.turns.release()
        finally:
            line.people -= 1
            if not line.people:
                del self._lines[key]


TURNS = Turns()
