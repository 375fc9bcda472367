"""Passwords: argon2id through passlib, hashed off the event loop, a bounded number at once."""

import asyncio
import secrets
import unicodedata
from typing import Any

import anyio
from passlib.context import CryptContext

from project.config import Settings
from project.errors import ServiceUnavailable


class PasswordHasher:
    """Few hashes (costly in memory and CPU) run at once. Sign-ins and new passwords wait in
    lines of their own, and new passwords get all slots but one: a flood of registrations,
    which nothing throttles, cannot keep anyone from signing in."""

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

    def outdated(self, hashed: str) -> bool:
        """Whether a hash was made with weaker settings than today's (cheap: no hashing)."""
        return bool(self._context.needs_update(hashed))
