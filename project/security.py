"""Password hashing, token encoding and decoding, and the current-user dependency."""

import asyncio
import secrets
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio
import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from passlib.context import CryptContext
from sqlalchemy import ColumnElement, and_, bindparam, select, true
from sqlmodel import col

from project.config import Settings
from project.database import SessionDep
from project.direct import AnySelect, Reader, Statements
from project.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable
from project.models import AuthSession, User

TokenKind = Literal["access", "refresh"]
HashLine = Literal["verify", "hash"]
ALGORITHM = "HS256"
VERIFIED_TOKENS = 10_000  # remembered per process, about 4 MB at most
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"]


def _normalized(password: str) -> str:
    """A password as it is hashed: in Unicode's NFKC form, as NIST SP 800-63B advises, so
    that the same password typed elsewhere (an `é` composed or decomposed, full-width
    letters) is the same password."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    """argon2id through passlib, off the event loop, with a bounded number in flight.

    Each hash takes ~19 MiB and tens of milliseconds of CPU; without the bound a burst of
    logins would take every core and a lot of memory from every other request.

    Sign-ins (verifying) and new passwords (registering, changing one) wait in lines of
    their own, each up to `password_hash_queue` long, and new passwords take at most all
    but one of the slots: a flood of registrations, which nothing throttles, fills its own
    line and cannot keep anyone from signing in."""

    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=1,
        )
        concurrency = settings.password_hash_concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # The slots a line may hold at once: sign-ins all of them, new passwords all but one.
        self._shares = {
            "verify": asyncio.Semaphore(concurrency),
            "hash": asyncio.Semaphore(max(1, concurrency - 1)),
        }
        self._queue_limit = settings.password_hash_queue
        self._queued = dict.fromkeys(self._shares, 0)
        # Verified against when no account has the email, so both paths cost the same.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(24))

    async def _run(self, line: HashLine, func: Any, *args: Any) -> Any:
        if self._queued[line] >= self._queue_limit:
            raise ServiceUnavailable("Too many password checks in progress; retry shortly.", 2)
        self._queued[line] += 1
        try:
            async with self._shares[line], self._slots:
                return await anyio.to_thread.run_sync(func, *args)
        finally:
            self._queued[line] -= 1

    async def hash(self, password: str) -> str:
        return str(await self._run("hash", self._context.hash, _normalized(password)))

    async def verify(self, password: str, hashed: str | None) -> bool:
        ok: bool = await self._run(
            "verify", self._context.verify, _normalized(password), hashed or self._dummy_hash
        )
        return ok and hashed is not None

    def outdated(self, hashed: str) -> bool:
        """Whether a hash was made with weaker settings than today's (cheap: no hashing)."""
        return bool(self._context.needs_update(hashed))


@dataclass(frozen=True, slots=True)
class Claims:
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
        self._verified: dict[tuple[TokenKind, str], Claims] = {}

    def encode(
        self, kind: TokenKind, user_id: uuid.UUID, session_id: uuid.UUID, session_ends: datetime
    ) -> tuple[str, Claims]:
        """A token of this kind for a login session, which no token outlives."""
        now = datetime.now(UTC)
        expires_at = min(now + self.lifetimes[kind], session_ends)
        claims = Claims(user_id, session_id, uuid.uuid4(), expires_at)
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

    def decode(self, token: str, kind: TokenKind) -> Claims:
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

    def _verify(self, token: str, kind: TokenKind) -> Claims:
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
            return Claims(
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


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` in a
# worker thread, a thread hop per request for an attribute lookup.
def client_address(request: Request) -> str:
    """The caller's address, as the server sees it (behind a proxy: see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


async def get_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


async def get_tokens(request: Request) -> TokenCodec:
    tokens: TokenCodec = request.app.state.tokens
    return tokens


HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
TokensDep = Annotated[TokenCodec, Depends(get_tokens)]

_STATEMENTS = Statements()


class AccessTokenBearer(OAuth2PasswordBearer):
    """The bearer scheme (in /docs, *Authorize* signs in through the login endpoint), which
    also checks the token it finds: one dependency per request instead of two.

    Its claims are those of a well-signed, unexpired access token. Whether its session is
    still live is for the database to say: see `live_session`."""

    def __init__(self) -> None:
        super().__init__(
            tokenUrl="/api/v1/auth/login", scheme_name="OAuth2PasswordBearer", auto_error=False
        )

    async def __call__(self, request: Request) -> Claims:  # type: ignore[override]
        if len(request.headers.getlist("authorization")) > 1:
            # One is read and a proxy may have checked another: trust neither.
            raise AuthenticationFailed("Send one Authorization header, not several.")
        token = await super().__call__(request)
        if not token:
            raise AuthenticationFailed("Not authenticated: send `Authorization: Bearer <token>`.")
        tokens: TokenCodec = request.app.state.tokens  # not a dependency: each costs a little
        return tokens.decode(token, "access")


get_claims = AccessTokenBearer()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and through which login session."""

    user: User
    session_id: uuid.UUID


AccessClaims = Annotated[Claims, Depends(get_claims)]


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


def _principal_statement() -> AnySelect:
    return (
        select(col(User.id), col(User.is_superuser))
        .join(AuthSession, true())
        .where(live_session(bindparam("sid"), bindparam("uid")))
    )


async def check_principal(db: Reader, claims: Claims) -> tuple[uuid.UUID, bool]:
    """The caller's user id and whether a superuser, or 401: the token's session must be
    live and its user active (one statement, on a connection the caller goes on using)."""
    statement = _STATEMENTS.get(db.dialect, "principal", _principal_statement)
    rows = await db.fetch(statement, sid=claims.session_id, uid=claims.user_id)
    if not rows:
        raise AuthenticationFailed()
    user_id, superuser = rows[0]
    return user_id, bool(superuser)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, when a route needs no more of the account than this."""

    id: uuid.UUID
    is_superuser: bool


async def get_caller(session: SessionDep, claims: AccessClaims) -> Caller:
    """The caller, checked by one compiled statement on the request's own connection (in
    its transaction), without loading the account into the session."""
    db = await Reader.of(await session.connection())
    return Caller(*await check_principal(db, claims))


async def get_principal(session: SessionDep, claims: AccessClaims) -> Principal:
    # One round trip checks the signature's subject, the session and the account together.
    user = await session.scalar(
        select(User)
        .join(AuthSession, true())
        .where(live_session(claims.session_id, claims.user_id))
    )
    if user is None:
        raise AuthenticationFailed()
    return Principal(user, claims.session_id)


async def get_current_user(principal: Annotated[Principal, Depends(get_principal)]) -> User:
    return principal.user


async def get_superuser(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_superuser:
        raise PermissionDenied()
    return user


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
CurrentUser = Annotated[User, Depends(get_current_user)]
Superuser = Annotated[User, Depends(get_superuser)]
