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
VERIFIED_TOKENS = 10_000  # remembered per process, about 4 MB at most
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the user and login session a well-signed, unexpired token names.
    Whether that session is still live is for the database to say, in the statement the
    request runs anyway (see `project.auth.sessions.live_session`)."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    expires_at: datetime


class TokenCodec:
    """Signs and checks JWTs (RFC 8725): one pinned algorithm, every claim required, and a
    `type` claim so that a refresh token is never accepted as an access token or back."""

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
        expires_at = min(now + self.lifetimes[kind], session_ends)
        claims = Caller(user_id, session_id, uuid.uuid4(), expires_at)
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": str(claims.token_id),
            "type": kind,
            "iat": now,
            "exp": claims.expires_at,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), claims

    def decode(self, token: str, kind: TokenKind) -> Caller:
        """The claims of a valid token of this kind, or 401. A token verified before is
        looked up instead of verified again (the signature check costs more than the rest
        of a cached read): nothing but the clock can change its verdict, and expiry is
        checked on every use."""
        found = self._verified.get((kind, token))
        if found is not None:
            if time.time() < found.expires_at.timestamp():
                return found
            del self._verified[(kind, token)]
        claims = self._verify(token, kind)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[(kind, token)] = claims
        return claims

    def _verify(self, token: str, kind: TokenKind) -> Caller:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            if payload["type"] != kind:
                raise AuthenticationFailed(f"Expected a token of type {kind}.")
            return Caller(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                token_id=uuid.UUID(payload["jti"]),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (
            jwt.PyJWTError,
            ValueError,
            TypeError,
            AttributeError,
            OverflowError,
            OSError,
        ) as exc:
            # OverflowError, OSError: an `exp` no date can hold (past year 9999).
            raise AuthenticationFailed() from exc
