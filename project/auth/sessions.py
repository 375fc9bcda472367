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
    """True on the row of `users` joined to `auth_sessions` when the token's session has not
    ended (logout, rotation abuse) and its user is active. Values or bind parameters."""
    return and_(
        col(AuthSession.user_id) == col(User.id),
        col(AuthSession.id) == session_id,
        col(AuthSession.revoked_at).is_(None),
        col(User.id) == user_id,
        col(User.is_active).is_(True),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(
    session: AsyncSession, tokens: TokenCodec, user_id: uuid.UUID, login: AuthSession
) -> TokenPair:
    """The next token pair of a login session; neither outlives the session's absolute
    lifetime (`SESSION_MAX_DAYS` after its sign-in), however often it is refreshed."""
    sid, ends = login.id, login.created_at + tokens.session_lifetime
    access, access_claims = tokens.encode("access", user_id, sid, ends)
    refresh, claims = tokens.encode("refresh", user_id, sid, ends)
    session.add(
        RefreshToken(
            id=claims.token_id,
            session_id=sid,
            token_hash=_digest(refresh),
            expires_at=claims.expires_at,
        )
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=max(0, round((access_claims.expires_at - utcnow()).total_seconds())),
    )


async def start(session: AsyncSession, tokens: TokenCodec, user_id: uuid.UUID) -> TokenPair:
    """Open a new login session and return its first token pair (the caller commits)."""
    login = AuthSession(user_id=user_id)
    session.add(login)
    return _issue(session, tokens, user_id, login)


async def _spend(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> RefreshToken:
    """Mark a refresh token used, or fail. A token presented twice ends its whole session:
    the second presenter is a thief or the first one was."""
    tokens.decode(refresh_token, "refresh")
    now = utcnow()
    token_hash = _digest(refresh_token)
    row: RefreshToken | None = await session.scalar(
        update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.expires_at) > now,
        )
        .values(used_at=now)
        .returning(RefreshToken)
    )
    if row is not None:
        return row
    spent = await session.scalar(
        select(col(RefreshToken.session_id)).where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.used_at).is_not(None),
        )
    )
    if spent is not None:
        await _revoke(session, col(AuthSession.id) == spent)
        await session.commit()
        raise AuthenticationFailed("This refresh token was already used; the session has ended.")
    raise AuthenticationFailed()


async def _live_session(session: AsyncSession, sid: uuid.UUID) -> AuthSession:
    login = await session.scalar(
        select(AuthSession)
        .join(User, col(AuthSession.user_id) == User.id)
        .where(
            col(AuthSession.id) == sid,
            col(AuthSession.revoked_at).is_(None),
            col(User.is_active).is_(True),
        )
    )
    if login is None:
        await session.rollback()
        raise AuthenticationFailed()
    return login


async def rotate(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> TokenPair:
    """Spend a refresh token and issue the next pair of the same session."""
    spent = await _spend(session, tokens, refresh_token)
    login = await _live_session(session, spent.session_id)
    if login.created_at + tokens.session_lifetime <= utcnow():
        await session.rollback()
        raise AuthenticationFailed("This login session has ended; sign in again.")
    pair = _issue(session, tokens, login.user_id, login)
    await session.commit()
    return pair


async def end(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> None:
    """Logout: the session of this refresh token ends, its access tokens included."""
    spent = await _spend(session, tokens, refresh_token)
    await _live_session(session, spent.session_id)
    await end_session(session, spent.session_id)
    await session.commit()


async def end_session(session: AsyncSession, sid: uuid.UUID) -> None:
    """End one login session, whatever token it has or lacks; the caller commits."""
    await _revoke(session, col(AuthSession.id) == sid)


async def end_all(session: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> None:
    """End every session of a user (but `keep`); the caller commits."""
    condition = col(AuthSession.user_id) == user_id
    if keep is not None:
        condition &= col(AuthSession.id) != keep
    await _revoke(session, condition)


async def _revoke(session: AsyncSession, condition: ColumnElement[bool]) -> None:
    await session.execute(
        update(AuthSession)
        .where(condition, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


async def prune(
    session: AsyncSession, admin_lifetime: timedelta, user_id: uuid.UUID | None = None
) -> tuple[int, int]:
    """Delete what can no longer be used, for one user or for everyone (the caller commits):
    sessions that have ended; API sessions whose refresh tokens have all expired (their
    access tokens, shorter-lived, have too); admin sign-ins, which have no tokens, once
    older than `admin_lifetime`; and the expired refresh tokens of the sessions that remain
    (their signature has expired too, so they are refused before any lookup, and a spent
    one can no longer signal reuse). Returns how many sessions and tokens went."""
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
    sessions = await session.execute(delete(AuthSession).where(ended))
    spent = await session.execute(delete(RefreshToken).where(expired))
    return _count(sessions), _count(spent)


def _count(result: Any) -> int:
    return int(result.rowcount)
