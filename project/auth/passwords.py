"""Passwords: argon2id through passlib, hashed off the event loop, a bounded number at once."""

import asyncio
import secrets
import unicodedata
from typing import Any, Literal

import anyio
from passlib.context import CryptContext

from project.config import Settings
from project.errors import ServiceUnavailable

HashLine = Literal["verify", "hash"]


def _normalized(password: str) -> str:
    """A password as it is hashed: in Unicode's NFKC form, as NIST SP 800-63B advises, so
    that the same password typed elsewhere (an `é` composed or decomposed, full-width
    letters) is the same password."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    """argon2id through passlib, off the event loop, with a bounded number in flight.

    Each hash takes ~19 MiB and tens of milliseconds of CPU; without the bound a burst of
    logins would take every core and a lot of memory from every other request.

    Sign-ins (verifying) and new passwords (registering, changing one) wait in lines of
    their own, each up to `password_hash_queue` long, and new passwords take at most all
    but one of the slots: a flood of registrations, which nothing throttles, fills its own
    line and cannot keep anyone from signing in."""

    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=1,
        )
        concurrency = settings.password_hash_concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # The slots a line may hold at once: sign-ins all of them, new passwords all but one.
        self._shares = {
            "verify": asyncio.Semaphore(concurrency),
            "hash": asyncio.Semaphore(max(1, concurrency - 1)),
        }
        self._queue_limit = settings.password_hash_queue
        self._queued = dict.fromkeys(self._shares, 0)
        # Verified against when no account has the email, so both paths cost the same.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(24))

    async def _run(self, line: HashLine, func: Any, *args: Any) -> Any:
        if self._queued[line] >= self._queue_limit:
            raise ServiceUnavailable("Too many password checks in progress; retry shortly.", 2)
        self._queued[line] += 1
        try:
            async with self._shares[line], self._slots:
                return await anyio.to_thread.run_sync(func, *args)
        finally:
            self._queued[line] -= 1

    async def hash(self, password: str) -> str:
        return str(await self._run("hash", self._context.hash, _normalized(password)))

    async def verify(self, password: str, hashed: str | None) -> bool:
        ok: bool = await self._run(
            "verify", self._context.verify, _normalized(password), hashed or self._dummy_hash
        )
        return ok and hashed is not None

    def outdated(self, hashed: str) -> bool:
        """Whether a hash was made with weaker settings than today's (cheap: no hashing)."""
        return bool(self._context.needs_update(hashed))
