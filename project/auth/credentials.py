"""Signing in: passwords hashed (argon2id, off the event loop) and checked, through throttling."""

import asyncio
import contextlib
import secrets
import unicodedata
from typing import Any, cast

import anyio
from passlib.context import CryptContext
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth import sessions, throttle
from project.config import Settings
from project.errors import AuthenticationFailed, ServiceUnavailable
from project.models import User
from project.text import NO_NUL, PASSWORD_MAX, canonical_email


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
    async with throttle.take_turn(email, width):
        attempt = await throttle.begin_attempt(session, settings, email, client)
        try:
            user = await session.scalar(select(User).where(col(User.email) == email))
            await session.commit()  # hold no transaction, lock or connection while hashing
            verified = await hasher.verify(password, user.hashed_password if user else None)
        except (ServiceUnavailable, SQLAlchemyError):
            # Never checked: no failure (one a failing database leaves behind ages out as failed).
            with contextlib.suppress(SQLAlchemyError):
                await session.rollback()
                await throttle.end_attempt(session, attempt)
            raise
        if not (verified and user and user.is_active and (user.is_superuser or not superuser)):
            await throttle.end_attempt(session, attempt, failed=True)
            raise AuthenticationFailed("Incorrect email or password.")
        await throttle.end_attempt(session, attempt)
    if sign_in:
        await sessions.prune(session, settings.admin_session_lifetime, user.id)
        if hasher._context.needs_update(user.hashed_password):  # weaker than today's (no hashing)
            user.hashed_password = await hasher.hash(password)
            session.add(user)
    return user
