"""Login sessions: one per login, kept in the database so that every worker and machine
sees a logout at once. Refresh tokens are single-use; the server keeps only their hashes."""

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth.tokens import TokenCodec
from project.errors import AuthenticationFailed
from project.models import AuthSession, RefreshToken, TokenPair, User, utcnow


def live_session(session_id: Any, user_id: Any) -> ColumnElement[bool]:
    """On `users` and `auth_sessions`: the session is live and its user active."""
    return and_(
        col(AuthSession.user_id) == col(User.id),
        col(AuthSession.id) == session_id,
        col(AuthSession.revoked_at).is_(None),
        col(User.id) == user_id,
        col(User.is_active).is_(True),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session: AsyncSession, tokens: TokenCodec, login: AuthSession) -> TokenPair:
    """The next token pair of a login session, which neither outlives."""
    args = (login.user_id, login.id, login.created_at + tokens.session_lifetime)
    access, access_claims = tokens.encode("access", *args)
    refresh, claims = tokens.encode("refresh", *args)
    hashed, ends = _digest(refresh), claims.expires_at
    row = RefreshToken(id=claims.token_id, session_id=login.id, token_hash=hashed, expires_at=ends)
    session.add(row)
    seconds = (access_claims.expires_at - utcnow()).total_seconds()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=max(0, round(seconds)))


async def start(session: AsyncSession, tokens: TokenCodec, user_id: uuid.UUID) -> TokenPair:
    """Open a new login session and return its first token pair (the caller commits)."""
    login = AuthSession(user_id=user_id)
    session.add(login)
    return _issue(session, tokens, login)


async def _spend(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> AuthSession:
    """Mark a refresh token used and return its live session, or fail. A token presented
    twice ends its whole session: the second presenter is a thief or the first one was."""
    tokens.decode(refresh_token, "refresh")
    now, used, session_id = utcnow(), col(RefreshToken.used_at), col(RefreshToken.session_id)
    this_token = col(RefreshToken.token_hash) == _digest(refresh_token)
    sid = await session.scalar(
        update(RefreshToken)
        .where(this_token, used.is_(None), col(RefreshToken.expires_at) > now)
        .values(used_at=now)
        .returning(session_id)
    )
    if sid is None:
        spent = await session.scalar(select(session_id).where(this_token, used.is_not(None)))
        if spent is None:
            raise AuthenticationFailed()
        await end_session(session, spent)
        await session.commit()
        raise AuthenticationFailed("This refresh token was already used; the session has ended.")
    login = await session.scalar(select(AuthSession).where(live_session(sid, AuthSession.user_id)))
    if login is None:
        await session.rollback()
        raise AuthenticationFailed()
    return login


async def rotate(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> TokenPair:
    """Spend a refresh token and issue the next pair of the same session."""
    login = await _spend(session, tokens, refresh_token)
    if login.created_at + tokens.session_lifetime <= utcnow():
        await session.rollback()
        raise AuthenticationFailed("This login session has ended; sign in again.")
    pair = _issue(session, tokens, login)
    await session.commit()
    return pair


async def end(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> None:
    """Logout: the session of this refresh token ends, its access tokens included."""
    login = await _spend(session, tokens, refresh_token)
    await end_session(session, login.id)
    await session.commit()


async def end_session(session: AsyncSession, sid: uuid.UUID) -> None:
    """End one login session, whatever token it has or lacks; the caller commits."""
    await _revoke(session, col(AuthSession.id) == sid)


async def end_all(session: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> None:
    """End every session of a user (but `keep`); the caller commits."""
    condition = col(AuthSession.user_id) == user_id
    await _revoke(session, condition if keep is None else condition & (col(AuthSession.id) != keep))


async def _revoke(session: AsyncSession, condition: ColumnElement[bool]) -> None:
    live = col(AuthSession.revoked_at).is_(None)
    await session.execute(update(AuthSession).where(condition, live).values(revoked_at=utcnow()))


async def prune(
    session: AsyncSession, admin_lifetime: timedelta, user_id: uuid.UUID | None = None
) -> tuple[int, int]:
    """Delete, for one user or everyone, ended sessions, those whose refresh tokens all
    expired, tokenless (admin) ones older than `admin_lifetime`, and expired refresh tokens;
    how many sessions and tokens went. The caller commits."""
    now = utcnow()
    tokens = select(col(RefreshToken.id)).where(col(RefreshToken.session_id) == AuthSession.id)
    ended = or_(
        col(AuthSession.revoked_at).is_not(None),
        exists(tokens) & ~exists(tokens.where(col(RefreshToken.expires_at) > now)),
        ~exists(tokens) & (col(AuthSession.created_at) <= now - admin_lifetime),
    )
    expired = col(RefreshToken.expires_at) <= now
    if user_id is not None:
        ended &= col(AuthSession.user_id) == user_id
        own = select(col(AuthSession.id)).where(col(AuthSession.user_id) == user_id)
        expired &= col(RefreshToken.session_id).in_(own.scalar_subquery())
    # Sessions first: their tokens go with them (ON DELETE CASCADE).
    sessions: Any = await session.execute(delete(AuthSession).where(ended))
    spent: Any = await session.execute(delete(RefreshToken).where(expired))
    return sessions.rowcount, spent.rowcount
