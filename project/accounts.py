"""Account operations shared by the API, the startup hook and the command line."""

import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project import login_sessions, throttle
from project.config import Settings
from project.database import commit
from project.errors import AuthenticationFailed, Conflict, ServiceUnavailable
from project.models import User
from project.security import PasswordHasher
from project.text import canonical_email

logger = logging.getLogger("project.accounts")

EMAIL_TAKEN = "An account with this email already exists."
BAD_CREDENTIALS = "Incorrect email or password."
LAST_SUPERUSER = "This is the last active superuser: make another one first."


def _active(user: User) -> bool:
    return user.is_active


async def verify_credentials(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    client: str,
    allowed: Callable[[User], bool] = _active,
) -> User:
    """The user these credentials belong to, through login throttling (429 when over the
    limit). Unknown email, wrong password and a user who is not `allowed` take the same path
    and fail alike (401), and each counts as a failed attempt."""
    email = canonical_email(email)
    # As many at once as can be hashed at once, and never more than could all fail.
    width = min(settings.password_hash_concurrency, settings.login_max_failures_per_email)
    async with throttle.TURNS.take(email, width):
        attempt = await throttle.begin_attempt(session, settings, email, client)
        try:
            user = await session.scalar(select(User).where(col(User.email) == email))
            await session.commit()  # hold no transaction, lock or connection while hashing
            verified = await hasher.verify(password, user.hashed_password if user else None)
        except (ServiceUnavailable, SQLAlchemyError):
            # The hasher was busy or the database failed: the password was never checked,
            # so this is no failed sign-in. (If the database is still failing, the attempt
            # stays, counts as failed once it has been in flight for a minute, and ages
            # out of the window.)
            with contextlib.suppress(SQLAlchemyError):
                await session.rollback()
                await throttle.forget_attempt(session, attempt)
            raise
        if not verified or user is None or not allowed(user):
            await throttle.fail_attempt(session, attempt)
            raise AuthenticationFailed(BAD_CREDENTIALS)
        await throttle.forget_attempt(session, attempt)
    return user


async def check_credentials(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    client: str,
    allowed: Callable[[User], bool] = _active,
) -> User:
    """The user these credentials sign in (see `verify_credentials`), with what signing in
    also does: dead sessions pruned, an outdated hash renewed."""
    user = await verify_credentials(session, hasher, settings, email, password, client, allowed)
    # What this user can no longer use goes, while here (see `login_sessions.prune`).
    await login_sessions.prune(session, settings.admin_session_lifetime, user.id)
    if hasher.outdated(user.hashed_password):
        # Raised ARGON2_* settings reach old accounts as they sign in; the caller commits.
        user.hashed_password = await hasher.hash(password)
        session.add(user)
    return user


async def ensure_not_last_superuser(session: AsyncSession, user: User) -> None:
    """Refuse to remove the last active superuser. The rows are locked (PostgreSQL) or the
    database is (SQLite), so two superusers cannot demote each other at the same moment:
    every active superuser's row, `user`'s included, in one order, so that two such
    requests wait for each other instead of deadlocking."""
    if not (user.is_superuser and user.is_active):
        return
    superusers = await session.scalars(
        select(col(User.id))
        .where(col(User.is_superuser), col(User.is_active))
        .order_by(col(User.id))
        .with_for_update()
    )
    if not any(found != user.id for found in superusers):
        raise Conflict(LAST_SUPERUSER)


async def delete_account(session: AsyncSession, user: User) -> bool:
    """Delete a user, with everything the user owns (the database cascades), and commit;
    False if someone deleted the user first (a concurrent request)."""
    await ensure_not_last_superuser(session, user)
    deleted = await session.execute(delete(User).where(col(User.id) == user.id))
    await session.commit()
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


async def create_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    """Insert a user and commit; a taken email is a 409 from the unique constraint itself."""
    user = User(
        email=email.lower(),
        full_name=full_name,
        hashed_password=await hasher.hash(password),
        is_superuser=is_superuser,
    )
    session.add(user)
    await commit(session, EMAIL_TAKEN)
    return user


async def ensure_superuser(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> bool:
    """Create a superuser with this email unless some user has it; True when created."""
    email = canonical_email(email)
    if await session.scalar(select(col(User.id)).where(col(User.email) == email)) is not None:
        return False
    try:
        await create_user(session, hasher, email, password, is_superuser=True)
    except Conflict:
        return False  # another worker created it at the same moment
    logger.info("created the first superuser", extra={"fields": {"email": email}})
    return True
