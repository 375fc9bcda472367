"""Access and refresh tokens (JWT, RFC 8725): who is calling, as a token says."""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from project.config import Settings
from project.errors import AuthenticationFailed

TokenKind = Literal["access", "refresh"]
ALGORITHM = "HS256"
VERIFIED_TOKENS = 10_000  # remembered per process


@dataclass(frozen=True, slots=True)
class Caller:
    """What a well-signed, unexpired token says; `sessions.live_session` checks the rest."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    expires_at: datetime


class TokenCodec:
    """One pinned algorithm, every claim required, and a `type` claim so that a refresh
    token is never accepted as an access token or back."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.lifetimes: dict[TokenKind, timedelta] = {
            "access": timedelta(minutes=settings.access_token_minutes),
            "refresh": timedelta(days=settings.refresh_token_days),
        }
        self.session_lifetime = timedelta(days=settings.session_max_days)
        self._verified: dict[tuple[TokenKind, str], Caller] = {}

    def encode(
        self, kind: TokenKind, user_id: uuid.UUID, session_id: uuid.UUID, session_ends: datetime
    ) -> tuple[str, Caller]:
        """A token of this kind for a login session, which no token outlives."""
        now = datetime.now(UTC)
        expires = min(now + self.lifetimes[kind], session_ends)
        claims = Caller(user_id, session_id, uuid.uuid4(), expires)
        ids = {"sub": str(user_id), "sid": str(session_id), "jti": str(claims.token_id)}
        payload = {"iss": self._issuer, "aud": self._audience, **ids, "type": kind}
        token = jwt.encode({**payload, "iat": now, "exp": expires}, self._key, algorithm=ALGORITHM)
        return token, claims

    def decode(self, token: str, kind: TokenKind) -> Caller:
        """The claims of a valid token of this kind, or 401. Verified tokens are remembered, as
        the signature is costly and only the clock (checked on every use) changes a verdict."""
        key = (kind, token)
        found = self._verified.get(key)
        if found is not None:
            if time.time() < found.expires_at.timestamp():
                return found
            del self._verified[key]
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"]},
            )
            if payload["type"] != kind:
                raise AuthenticationFailed(f"Expected a token of type {kind}.")
            user, sid, jti = (uuid.UUID(payload[claim]) for claim in ("sub", "sid", "jti"))
            claims = Caller(user, sid, jti, datetime.fromtimestamp(payload["exp"], UTC))
        # OverflowError, OSError: an `exp` no date can hold (past year 9999).
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError, OverflowError, OSError) as e:
            raise AuthenticationFailed() from e
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[key] = claims
        return claims
