"""Signing in: checking an email and password, through login throttling."""

import contextlib
from collections.abc import Callable
from typing import cast

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth import sessions, throttle
from project.auth.passwords import PasswordHasher
from project.config import Settings
from project.errors import AuthenticationFailed, ServiceUnavailable
from project.models import PASSWORD_MAX, User
from project.text import NO_NUL, canonical_email

BAD_CREDENTIALS = "Incorrect email or password."


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


async def verify_credentials(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    client: str,
    allowed: Callable[[User], bool] = lambda user: user.is_active,
) -> User:
    """The user these credentials belong to, through login throttling (429). An unknown email,
    a wrong password and a user not `allowed` fail alike (401), each as a failed attempt."""
    email = canonical_email(email)
    # As many as can be hashed at once, and never more than could all fail.
    width = min(settings.password_hash_concurrency, settings.login_max_failures_per_email)
    async with throttle.TURNS.take(email, width):
        attempt = await throttle.begin_attempt(session, settings, email, client)
        try:
            user = await session.scalar(select(User).where(col(User.email) == email))
            await session.commit()  # hold no transaction, lock or connection while hashing
            verified = await hasher.verify(password, user.hashed_password if user else None)
        except (ServiceUnavailable, SQLAlchemyError):
            # The password was never checked: no failed sign-in. (An attempt left behind by a
            # failing database counts as failed once `IN_FLIGHT`, and ages out.)
            with contextlib.suppress(SQLAlchemyError):
                await session.rollback()
                await throttle.end_attempt(session, attempt)
            raise
        if not verified or user is None or not allowed(user):
            await throttle.end_attempt(session, attempt, failed=True)
            raise AuthenticationFailed(BAD_CREDENTIALS)
        await throttle.end_attempt(session, attempt)
    return user


async def check_credentials(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    email: str,
    password: str,
    client: str,
    allowed: Callable[[User], bool] = lambda user: user.is_active,
) -> User:
    """`verify_credentials`, and what signing in also does: the user's dead sessions pruned,
    a hash made with weaker ARGON2_* settings renewed (the caller commits)."""
    user = await verify_credentials(session, hasher, settings, email, password, client, allowed)
    await sessions.prune(session, settings.admin_session_lifetime, user.id)
    if hasher.outdated(user.hashed_password):
        user.hashed_password = await hasher.hash(password)
        session.add(user)
    return user
