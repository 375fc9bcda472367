"""Account operations shared by the API, the startup hook and the command line."""

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.errors import Conflict
from project.models import User
from project.security import PasswordHasher

logger = logging.getLogger("project.accounts")

EMAIL_TAKEN = "An account with this email already exists."


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
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(EMAIL_TAKEN) from exc
    return user


async def ensure_superuser(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> bool:
    """Create a superuser with this email unless some user has it; True when created."""
    email = email.lower()
    if await session.scalar(select(col(User.id)).where(col(User.email) == email)) is not None:
        return False
    try:
        await create_user(session, hasher, email, password, is_superuser=True)
    except Conflict:
        return False  # another worker created it at the same moment
    logger.info("created the first superuser", extra={"fields": {"email": email}})
    return True
