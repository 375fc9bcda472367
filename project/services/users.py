"""Accounts: the rules the API, the admin, startup and the command line share."""

import logging
import uuid
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import delete as delete_rows
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth import links, sessions
from project.auth.credentials import PasswordHasher
from project.data.paging import SORT_HELP, ListQuery, SearchText, search
from project.data.views import Filter, View
from project.data.writes import change, insert
from project.db.driver import Driver
from project.errors import Conflict, NotFound
from project.models import User, UserChange, UserPublic, utcnow

logger = logging.getLogger("project.accounts")


class UserQuery(ListQuery):
    sort: Literal["email", "-email", "created_at", "-created_at"] = Field(
        default="created_at", description=SORT_HELP
    )
    q: SearchText = None
    is_active: bool | None = Field(
        default=None, description="Only active users (true) or only inactive ones (false)."
    )


EMAIL_TAKEN = "An account with this email already exists."
LAST_SUPERUSER = "This is the last active superuser: make another one first."

VIEW = View(
    User,
    UserPublic,
    sorts={"email": col(User.email), "created_at": col(User.created_at)},
    filters={
        "q": search(col(User.email), col(User.full_name_key)),
        "is_active": Filter(lambda active: col(User.is_active) == active),
    },
    conflict=EMAIL_TAKEN,
)


async def create(
    db: Driver, hasher: PasswordHasher, email: str, password: str, **fields: Any
) -> dict[str, Any]:
    """A new account, `fields` its full name and rights, if given; a taken email is a 409 from
    the unique constraint itself."""
    hashed, now = await hasher.hash(password), utcnow()  # made by an operator, who vouches
    user = User(email=email.lower(), hashed_password=hashed, email_verified_at=now, **fields)
    return await insert(db, VIEW, user)


async def ensure_superuser(db: Driver, hasher: PasswordHasher, email: str, password: str) -> bool:
    """Create a superuser with this email unless some user has it; True when created."""
    try:
        await create(db, hasher, email, password, is_superuser=True)
    except Conflict:
        return False  # there is one (made by another worker, maybe at this very moment)
    logger.info("created the first superuser", extra={"fields": {"email": email}})
    return True


async def ensure_not_last_superuser(session: AsyncSession, user: User) -> None:
    """Refuse to remove the last active superuser. Every active superuser's row (`user`'s too)
    is locked in one order (SQLite: the database is), so two superusers demoting each other at
    once take turns instead of both succeeding, or deadlocking."""
    if not (user.is_superuser and user.is_active):
        return
    active = select(col(User.id)).where(col(User.is_superuser), col(User.is_active))
    superusers = await session.scalars(active.order_by(col(User.id)).with_for_update())
    if not any(found != user.id for found in superusers):
        raise Conflict(LAST_SUPERUSER)


async def update(
    session: AsyncSession,
    user: User,
    body: UserChange,
    password_hash: str | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    """Change an account: what `body` sets, and the password to `password_hash`. Losing
    rights (deactivated, or no longer a superuser) or a new password ends every session of
    it but `keep`: none outlives the rights or the password it was signed in with. The last
    active superuser keeps its rights (409)."""
    changes = body.model_dump(exclude_unset=True)
    lost = [right for right in ("is_active", "is_superuser") if changes.get(right) is False]
    if lost:
        await ensure_not_last_superuser(session, user)
    ends_sessions = password_hash is not None or any(getattr(user, right) for right in lost)
    if changes.get("email", user.email) != user.email:
        changes["email_verified_at"] = None  # until its owner follows the link mailed to it
    await change(session, VIEW, user, changes)
    if password_hash is not None:
        user.hashed_password = password_hash
        await links.void(session, user.id, "reset")
    if ends_sessions:
        with session.no_autoflush:  # a taken email then fails the commit: a 409
            await sessions.end_all(session, user.id, keep=keep)


async def delete(session: AsyncSession, user: User) -> None:
    """Delete an account; what it owns goes with it (the database cascades). 404 if it was
    deleted meanwhile (a concurrent request)."""
    await ensure_not_last_superuser(session, user)
    deleted = await session.execute(delete_rows(User).where(col(User.id) == user.id))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFound("user")
