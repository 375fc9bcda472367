"""Login sessions (in the database, so every worker sees a logout) and their JWTs (RFC 8725)."""

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import jwt
from jwt.types import Options
from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.config import Settings
from project.errors import AuthenticationFailed
from project.models import AuthSession, RefreshToken, TokenPair, User, utcnow

TokenKind = Literal["access", "refresh"]
ALGORITHM = "HS256"
REQUIRED: Options = {"require": ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"]}


class Caller(NamedTuple):
    """What a well-signed, unexpired token says; `live_session` checks the rest."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    expires_at: datetime


class TokenCodec:
    """A pinned algorithm, every claim required, and a `type`: refresh and access never mix."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key.get_secret_value()
        self._iss, self._aud = settings.jwt_issuer, settings.jwt_audience
        self.lifetimes: dict[TokenKind, timedelta] = {
            "access": timedelta(minutes=settings.access_token_minutes),
            "refresh": timedelta(days=settings.refresh_token_days),
        }
        self.session_lifetime = timedelta(days=settings.session_max_days)
        self._verified: dict[tuple[TokenKind, str], Caller] = {}

    def encode(self, kind: TokenKind, login: AuthSession) -> tuple[str, Caller]:
        """A token of this kind for a login session, which no token outlives."""
        now = datetime.now(UTC)
        expires = min(now + self.lifetimes[kind], login.created_at + self.session_lifetime)
        claims = Caller(login.user_id, login.id, uuid.uuid4(), expires)
        ids = {"sub": str(login.user_id), "sid": str(login.id), "jti": str(claims.token_id)}
        payload = {"iss": self._iss, "aud": self._aud, **ids, "type": kind}
        token = jwt.encode({**payload, "iat": now, "exp": expires}, self._key, algorithm=ALGORITHM)
        return token, claims

    def decode(self, token: str, kind: TokenKind) -> Caller:
        """A valid token's claims, or 401; remembered once verified: only the clock changes that."""
        found = self._verified.get((kind, token))
        if found is not None and time.time() < found.expires_at.timestamp():
            return found
        try:
            payload = jwt.decode(
                token, self._key, [ALGORITHM], REQUIRED, audience=self._aud, issuer=self._iss
            )
            if payload["type"] != kind:
                raise AuthenticationFailed(f"Expected a token of type {kind}.")
            user, sid, jti = (uuid.UUID(payload[claim]) for claim in ("sub", "sid", "jti"))
            claims = Caller(user, sid, jti, datetime.fromtimestamp(payload["exp"], UTC))
        # OverflowError, OSError: an `exp` no date can hold (past year 9999).
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError, OverflowError, OSError) as e:
            raise AuthenticationFailed() from e
        if len(self._verified) >= 10_000:  # remembered per process
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[kind, token] = claims
        return claims


def live_session(session_id: Any, user_id: Any) -> ColumnElement[bool]:
    """On `users` and `auth_sessions`: the session is live and its user active."""
    return and_(
        col(AuthSession.user_id) == col(User.id),
        col(AuthSession.id) == session_id,
        col(AuthSession.revoked_at).is_(None),
        col(User.id) == user_id,
        col(User.is_active).is_(True),
    )


def issue(session: AsyncSession, tokens: TokenCodec, login: AuthSession) -> TokenPair:
    """The next token pair of a login session (a new one's first), which neither outlives."""
    access, access_claims = tokens.encode("access", login)
    refresh, claims = tokens.encode("refresh", login)
    hashed, ends = hashlib.sha256(refresh.encode()).hexdigest(), claims.expires_at
    row = RefreshToken(id=claims.token_id, session_id=login.id, token_hash=hashed, expires_at=ends)
    session.add_all((login, row))
    seconds = (access_claims.expires_at - utcnow()).total_seconds()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=max(0, round(seconds)))


async def _spend(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> AuthSession:
    """Use up a (single-use) refresh token: its live session. A reuse ends it (a thief is about)."""
    tokens.decode(refresh_token, "refresh")
    now, used, session_id = utcnow(), col(RefreshToken.used_at), col(RefreshToken.session_id)
    this_token = col(RefreshToken.token_hash) == hashlib.sha256(refresh_token.encode()).hexdigest()
    unspent = update(RefreshToken).where(used.is_(None), col(RefreshToken.expires_at) > now)
    sid = await session.scalar(unspent.where(this_token).values(used_at=now).returning(session_id))
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
    login = await _spend(session, tokens, refresh_token)
    if login.created_at + tokens.session_lifetime <= utcnow():
        await session.rollback()
        raise AuthenticationFailed("This login session has ended; sign in again.")
    pair = issue(session, tokens, login)
    await session.commit()
    return pair


async def end(session: AsyncSession, tokens: TokenCodec, refresh_token: str) -> None:
    """Logout: the session of this refresh token ends, its access tokens included."""
    await end_session(session, (await _spend(session, tokens, refresh_token)).id)
    await session.commit()


async def end_session(session: AsyncSession, sid: uuid.UUID) -> None:
    """End one login session, whatever token it has or lacks; the caller commits."""
    await _revoke(session, col(AuthSession.id) == sid)


async def end_all(session: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> None:
    """End every session of a user but `keep` (`id != NULL` holds for all); the caller commits."""
    await _revoke(session, col(AuthSession.user_id) == user_id, col(AuthSession.id) != keep)


async def _revoke(session: AsyncSession, *which: ColumnElement[bool]) -> None:
    live = col(AuthSession.revoked_at).is_(None)
    await session.execute(update(AuthSession).where(*which, live).values(revoked_at=utcnow()))


async def prune(
    session: AsyncSession, admin_lifetime: timedelta, user_id: uuid.UUID | None = None
) -> tuple[int, int]:
    """Delete ended sessions and expired tokens, of one user or all: how many (caller commits)."""
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
