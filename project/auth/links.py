"""Single-use tokens mailed in links (a password reset, an email's verification): 32 random
bytes, of which only the SHA-256 hash is stored. Issuing one voids the user's earlier ones of
the same purpose; spending one is a single conditional UPDATE, so it works once however many
requests present it at the same moment."""

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.errors import BadRequest, Gone
from project.models import AccountToken, User, utcnow

Purpose = Literal["reset", "verify"]
FORGED = "This link is not one we sent: check that it was copied whole, or ask for a new one."
USED = "This link was already used: ask for a new one if you still need it."
EXPIRED = "This link has expired: ask for a new one."
VOID = (
    "This link was replaced by a newer one, or the account changed since it was sent (a new"
    " password, a new email): use the newest link, or ask for a new one."
)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def void(session: AsyncSession, user_id: object, purpose: Purpose) -> None:
    """Void a user's unused tokens of this purpose (the caller commits)."""
    mine = (col(AccountToken.user_id) == user_id, col(AccountToken.purpose) == purpose)
    unused = (col(AccountToken.used_at).is_(None), col(AccountToken.voided_at).is_(None))
    await session.execute(update(AccountToken).where(*mine, *unused).values(voided_at=utcnow()))


async def store(
    session: AsyncSession, user: User, purpose: Purpose, token: str, lifetime: timedelta
) -> None:
    """Keep `token`'s hash for `user`, the only one of its purpose that works (caller commits)."""
    await void(session, user.id, purpose)
    hashed, expires = _digest(token), utcnow() + lifetime
    session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            email=user.email,
            token_hash=hashed,
            expires_at=expires,
        )
    )


async def prune(session: AsyncSession, older_than: timedelta) -> int:
    """Delete the tokens that expired more than `older_than` ago: how many (caller commits).
    A link that old is then answered as one never sent."""
    old = col(AccountToken.expires_at) < utcnow() - older_than
    result = await session.execute(delete(AccountToken).where(old))
    return int(getattr(result, "rowcount", 0) or 0)


async def check(session: AsyncSession, purpose: Purpose, token: str) -> AccountToken:
    """The token's row, if it still works; else 400 (never issued) or 410 (saying why not)."""
    this = (col(AccountToken.token_hash) == _digest(token), col(AccountToken.purpose) == purpose)
    found = await session.scalar(select(AccountToken).where(*this))
    if found is None:
        raise BadRequest(FORGED)
    if found.used_at is not None:
        raise Gone(USED)
    if found.voided_at is not None:
        raise Gone(VOID)
    if found.expires_at <= utcnow():
        raise Gone(EXPIRED)
    return found


async def spend(session: AsyncSession, purpose: Purpose, token: str) -> AccountToken:
    """Use the token up, once, and lock its user's row: the token's row, or 400/410 as `check`.
    The user must still have the address the link went to (the caller commits)."""
    now, hashed = utcnow(), _digest(token)
    usable = (
        col(AccountToken.token_hash) == hashed,
        col(AccountToken.purpose) == purpose,
        col(AccountToken.used_at).is_(None),
        col(AccountToken.voided_at).is_(None),
        col(AccountToken.expires_at) > now,
    )
    spent = update(AccountToken).where(*usable).values(used_at=now).returning(col(AccountToken.id))
    token_id = await session.scalar(spent)
    if token_id is None:
        await check(session, purpose, token)
        raise Gone(USED)  # spent by a concurrent request since
    found = await session.get_one(AccountToken, token_id, populate_existing=True)
    user = await session.get(User, found.user_id, with_for_update=True)
    if user is None or not user.is_active or user.email != found.email:
        await session.rollback()
        raise Gone(VOID)
    return found
