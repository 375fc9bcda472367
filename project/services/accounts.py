"""Account email: registration, password reset and email verification. Each email is queued
in the outbox by the transaction that issues its link's token, so either both are kept or
neither is. What a request answers never depends on whether its email has an account."""

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth import credentials, links
from project.auth.credentials import PasswordHasher, client_key
from project.errors import Conflict, TooManyRequests
from project.mail import Letters
from project.models import (
    MailRequest,
    OutboxMessage,
    User,
    UserChange,
    UserCreate,
    UserUpdate,
    utcnow,
)
from project.services import users
from project.text import canonical_email

TOO_MANY = "Too many emails asked for; wait before asking again."


async def throttle(
    session: AsyncSession, letters: Letters, email: str, client: str, refuse: bool = True
) -> bool:
    """Count a request for an email to `email` by `client`: whether it is within the limits
    (per email and per client, in a window), or else 429 if `refuse` (committed either way)."""
    settings = letters.settings
    window_start = utcnow() - timedelta(seconds=settings.mail_window_seconds)
    created = col(MailRequest.created_at)
    await session.execute(delete(MailRequest).where(created < window_start))
    client = client_key(client)
    counts = select(func.count(), func.min(created)).where(created >= window_start)
    for column, value, limit in (
        (col(MailRequest.email), email, settings.mail_max_per_email),
        (col(MailRequest.client), client, settings.mail_max_per_client),
    ):
        count, oldest = (await session.execute(counts.where(column == value))).one()
        if count >= limit:
            await session.commit()
            if not refuse:
                return False
            wait = (oldest - window_start).total_seconds()
            raise TooManyRequests(TOO_MANY, math.ceil(wait))
    session.add(MailRequest(email=email, client=client))
    await session.commit()
    return True


def _reset_letter(letters: Letters, to: str, token: str) -> OutboxMessage:
    link, minutes = letters.link("reset-password", token), letters.settings.password_reset_minutes
    return letters.write("reset_password", to, link=link, minutes=minutes)


async def send_reset(session: AsyncSession, letters: Letters, user: User) -> None:
    """Mail `user` a reset link, voiding earlier ones (the caller commits)."""
    token, minutes = links.new_token(), letters.settings.password_reset_minutes
    await links.store(session, user, "reset", token, timedelta(minutes=minutes))
    session.add(_reset_letter(letters, user.email, token))


async def request_reset(session: AsyncSession, letters: Letters, email: str, client: str) -> None:
    """Mail a reset link if an active account has this email; the same work if none has."""
    email = canonical_email(email)
    await throttle(session, letters, email, client)
    user = await session.scalar(select(User).where(col(User.email) == email))
    if user is not None and user.is_active:
        await send_reset(session, letters, user)
    else:
        _reset_letter(letters, email, links.new_token())  # written, never sent
    await session.commit()


async def confirm_reset(
    session: AsyncSession, hasher: PasswordHasher, token: str, new_password: str
) -> None:
    """Set the password of the token's account: every session of it ends, its sign-in
    lockout is lifted, its other reset links are voided. 400 or 410 (`links.check`) otherwise."""
    await links.check(session, "reset", token)  # a forged token costs no hashing
    await session.commit()  # hold no transaction while hashing
    hashed = await hasher.hash(new_password)
    found = await links.spend(session, "reset", token)
    user = await session.get_one(User, found.user_id)
    await users.update(session, user, UserUpdate(), hashed)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link reached this address
    await credentials.unlock(session, email=user.email)
    await session.commit()


async def send_verification(session: AsyncSession, letters: Letters, user: User) -> None:
    """Mail `user` a link that confirms their email, voiding earlier ones (caller commits)."""
    token, hours = links.new_token(), letters.settings.email_verify_hours
    await links.store(session, user, "verify", token, timedelta(hours=hours))
    link = letters.link("verify-email", token)
    session.add(letters.write("verify_email", user.email, link=link, hours=hours))


async def verify(session: AsyncSession, token: str) -> None:
    """Mark the token's account's email verified; 400 or 410 (see `links.check`) otherwise."""
    found = await links.spend(session, "verify", token)
    user = await session.get_one(User, found.user_id)
    user.email_verified_at = user.email_verified_at or utcnow()
    await session.commit()


async def resend_verification(
    session: AsyncSession, letters: Letters, email: str, client: str
) -> None:
    """Mail a new verification link if an active, unverified account has this email."""
    email = canonical_email(email)
    await throttle(session, letters, email, client)
    user = await session.scalar(select(User).where(col(User.email) == email))
    if user is not None and user.is_active and user.email_verified_at is None:
        await send_verification(session, letters, user)
    else:
        link = letters.link("verify-email", links.new_token())
        letters.write("verify_email", email, link=link, hours=0)  # written, never sent
    await session.commit()


async def register(
    session: AsyncSession, hasher: PasswordHasher, letters: Letters, body: UserCreate, client: str
) -> dict[str, Any]:
    """A new account, mailed a verification link. A taken email is a 409, or, when verified
    emails are required, answered as a new one is while its owner is mailed a notice."""
    email, name = body.email.lower(), body.full_name
    user = User(email=email, full_name=name, hashed_password=await hasher.hash(body.password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if not letters.settings.require_verified_email:
            raise Conflict(users.EMAIL_TAKEN) from None
        owner = User(
            email=email, full_name=name, hashed_password=""
        )  # never stored: what a new account looks like
        owner.updated_at = owner.created_at
        if await throttle(session, letters, owner.email, client, refuse=False):
            link = letters.link("reset-password")
            session.add(letters.write("account_exists", owner.email, link=link))
            await session.commit()
        return users.VIEW.item(owner)
    await send_verification(session, letters, user)
    await session.commit()
    return users.VIEW.item(user)


def updating(letters: Letters) -> Callable[[AsyncSession, User, UserChange], Awaitable[None]]:
    """`users.update`, and a verification link mailed to a new email (which is unverified)."""

    async def update(session: AsyncSession, user: User, body: UserChange) -> None:
        before = user.email
        await users.update(session, user, body)
        if user.email != before:
            with session.no_autoflush:  # a taken email then fails the commit: a 409
                await send_verification(session, letters, user)

    return update
