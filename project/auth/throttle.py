"""Login throttling per email and per client, counted in the database for every worker. Each
attempt is committed before the counts are read (of N at once, the k-th sees k); in-flight ones
count, only failures lock, and refused or successful ones go (hammering never extends a lock)."""

import asyncio
import ipaddress
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from weakref import WeakValueDictionary

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


def client_key(client: str) -> str:
    """Whose budget a client's sign-ins draw on: an IPv4 address's own, an IPv6 address's /64
    (one host may hold every address in it); a client that is no IP address, its own."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client[:MAX_CLIENT_LENGTH]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


async def unlock(session: AsyncSession, email: str = "", client: str = "") -> int:
    """Forget an email's sign-in attempts, or a client's (its /64's), so that its owners may
    sign in at once (the caller commits)."""
    which = col(LoginAttempt.client) == client if client else col(LoginAttempt.email) == email
    result = await session.execute(delete(LoginAttempt).where(which))
    return int(getattr(result, "rowcount", 0) or 0)


async def begin_attempt(
    session: AsyncSession, settings: Settings, email: str, client: str
) -> uuid.UUID:
    """Record a login attempt, or raise 429 if the email or the client is over its limit."""
    window_start = (now := utcnow()) - timedelta(seconds=settings.login_window_seconds)
    client, created = client_key(client), col(LoginAttempt.created_at)
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
        if failures >= limit or failures + in_flight > limit:
            await end_attempt(session, attempt.id)
            if failures < limit:
                raise TooManyRequests(AT_ONCE, retry_after=1)
            raise TooManyRequests(LOCKED, math.ceil((oldest - window_start).total_seconds()))
    return attempt.id


async def end_attempt(session: AsyncSession, attempt_id: uuid.UUID, failed: bool = False) -> None:
    """Count an attempt as failed, or else remove it so that it never counts (and commit)."""
    change = update(LoginAttempt).values(failed=True) if failed else delete(LoginAttempt)
    await session.execute(change.where(col(LoginAttempt.id) == attempt_id))
    await session.commit()


TURNS: WeakValueDictionary[str, asyncio.Semaphore] = WeakValueDictionary()


@asynccontextmanager
async def take_turn(key: str, width: int = 1) -> AsyncIterator[None]:
    """One email's sign-ins take turns, `width` at a time, so none in flight go over the limit.
    A key's turns last while someone takes or waits for one (a local here holds them)."""
    turns = TURNS.setdefault(key, asyncio.Semaphore(width))
    try:
        async with asyncio.timeout(TURN_WAIT_SECONDS):
            await turns.acquire()
    except TimeoutError:
        raise TooManyRequests(AT_ONCE, retry_after=1) from None
    try:
        yield
    finally:
        turns.release()
