"""Signing in: passwords hashed (argon2id, off the event loop) and checked, through throttling
per email and per client, counted in the database for every worker. Each attempt is committed
before the counts are read (of N at once, the k-th sees k); in-flight ones count, only failures
lock, and refused or successful ones go (hammering never extends a lock)."""

import asyncio
import contextlib
import ipaddress
import math
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast
from weakref import WeakValueDictionary

import anyio
from passlib.context import CryptContext
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth import sessions
from project.config import Settings
from project.errors import (
    AuthenticationFailed,
    PermissionDenied,
    ServiceUnavailable,
    TooManyRequests,
)
from project.models import LoginAttempt, User, utcnow
from project.text import NO_NUL, PASSWORD_MAX, canonical_email

MAX_CLIENT_LENGTH = 64
# An attempt in flight for this long never ends (its process died): it counts as failed.
IN_FLIGHT = timedelta(seconds=60)
TURN_WAIT_SECONDS = 5.0
LOCKED = "Too many failed sign-in attempts; wait before trying again."
AT_ONCE = "Too many sign-in attempts at once; try again in a moment."
UNVERIFIED = (
    "Confirm your email first: follow the link we mailed you, or ask for a new one"
    " (POST /api/v1/auth/verify-email/resend)."
)


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


@contextlib.asynccontextmanager
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


class PasswordHasher:
    """Few hashes at once (memory, CPU); new passwords never take the last slot, sign-ins may."""

    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=1,
        )
        n = settings.password_hash_concurrency
        self._slots = asyncio.Semaphore(n)
        self._shares = {"verify": asyncio.Semaphore(n), "hash": asyncio.Semaphore(max(1, n - 1))}
        self._queue_limit = settings.password_hash_queue
        self._queued = dict.fromkeys(self._shares, 0)
        # Verified against when no account has the email, so both paths cost the same.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(24))

    async def _run(self, line: str, func: Any, password: str, *args: Any) -> Any:
        if self._queued[line] >= self._queue_limit:
            raise ServiceUnavailable("Too many password checks in progress; retry shortly.", 2)
        # NFKC (NIST SP 800-63B): the same password typed elsewhere is the same password.
        password = unicodedata.normalize("NFKC", password)
        self._queued[line] += 1
        try:
            async with self._shares[line], self._slots:
                return await anyio.to_thread.run_sync(func, password, *args)
        finally:
            self._queued[line] -= 1

    async def hash(self, password: str) -> str:
        return str(await self._run("hash", self._context.hash, password))

    async def verify(self, password: str, hashed: str | None) -> bool:
        ok = await self._run("verify", self._context.verify, password, hashed or self._dummy_hash)
        return bool(ok) and hashed is not None


def _string_or_absent(schema: JsonDict) -> None:
    """A string or absent, never null (a form cannot carry one): generated clients may omit it."""
    kinds = cast(list[JsonDict], schema.pop("anyOf"))
    schema.update(next(kind for kind in kinds if kind != {"type": "null"}))
    schema.pop("default", None)


class LoginForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's Authorize button sends it."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=320, pattern=NO_NUL, description="The account's email.")
    password: str = Field(max_length=PASSWORD_MAX, pattern=NO_NUL)
    # Accepted as OAuth2 clients send them, and unused.
    grant_type: str | None = Field(None, pattern="^password$", json_schema_extra=_string_or_absent)
    scope: str | None = Field(None, max_length=1024, json_schema_extra=_string_or_absent)
    client_id: str | None = Field(None, max_length=255, json_schema_extra=_string_or_absent)
    client_secret: str | None = Field(None, max_length=255, json_schema_extra=_string_or_absent)


async def check_credentials(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    client: str,
    superuser: bool = False,
    sign_in: bool = True,
) -> User:
    """The credentials' active user (a superuser, if asked), throttled; else 401 alike."""
    email = canonical_email(email)
    # As many as can be hashed at once, and never more than could all fail.
    width = min(settings.password_hash_concurrency, settings.login_max_failures_per_email)
    async with take_turn(email, width):
        attempt = await begin_attempt(session, settings, email, client)
        try:
            user = await session.scalar(select(User).where(col(User.email) == email))
            await session.commit()  # hold no transaction, lock or connection while hashing
            verified = await hasher.verify(password, user.hashed_password if user else None)
        except (ServiceUnavailable, SQLAlchemyError):
            # Never checked: no failure (one a failing database leaves behind ages out as failed).
            with contextlib.suppress(SQLAlchemyError):
                await session.rollback()
                await end_attempt(session, attempt)
            raise
        if not (verified and user and user.is_active and (user.is_superuser or not superuser)):
            await end_attempt(session, attempt, failed=True)
            raise AuthenticationFailed("Incorrect email or password.")
        await end_attempt(session, attempt)
    if sign_in and settings.require_verified_email and user.email_verified_at is None:
        raise PermissionDenied(UNVERIFIED)
    if sign_in:
        await sessions.prune(session, settings.admin_session_lifetime, user.id)
        if hasher._context.needs_update(user.hashed_password):  # weaker than today's (no hashing)
            user.hashed_password = await hasher.hash(password)
            session.add(user)
    return user
