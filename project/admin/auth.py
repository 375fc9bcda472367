"""Who may use the admin: active superusers, through the API's password checks and throttling.
Each sign-in is a login session, so whatever ends a user's sessions ends it too."""

import hashlib
import uuid
from typing import cast

from fastapi import FastAPI, Request
from pydantic import ValidationError
from sqladmin.authentication import AuthenticationBackend
from sqlmodel import col, select, true

from project.auth.credentials import LoginForm, check_credentials
from project.auth.sessions import end_session, live_session
from project.config import Settings
from project.database import Database
from project.errors import AuthenticationFailed
from project.models import AuthSession, User, utcnow
from project.web.routing import client_address


def signed_in(request: Request) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (user id, login session id) the admin cookie names, if it names any."""
    try:
        return uuid.UUID(request.session["user_id"]), uuid.UUID(request.session["sid"])
    except (KeyError, TypeError, ValueError):
        return None


def _superuser(user: User) -> bool:
    return user.is_active and user.is_superuser


class AdminAuth(AuthenticationBackend):
    def __init__(self, app: FastAPI, settings: Settings, path: str) -> None:
        # The cookie's key is derived from SECRET_KEY, so it is never the key that signs JWTs.
        secret = settings.secret_key.get_secret_value().encode()
        super().__init__(
            secret_key=hashlib.sha256(b"heroes-admin-session\x00" + secret).hexdigest(),
            session_cookie="admin_session",
            max_age=settings.admin_session_hours * 3600,
            path=path,
            same_site="strict",
            https_only=settings.environment == "production",  # HttpOnly always (Starlette's)
        )
        self._app, self._settings = app, settings

    @property
    def _database(self) -> Database:
        return cast(Database, self._app.state.database)

    async def login(self, request: Request) -> bool:
        """As `POST /api/v1/auth/login`; anyone but an active superuser fails alike."""
        form = await request.form()
        hasher, settings, client = self._app.state.hasher, self._settings, client_address(request)
        try:
            login = LoginForm.model_validate({k: form.get(k) for k in ("username", "password")})
            async with self._database.session(write=True) as session:
                user = await check_credentials(
                    session, hasher, settings, login.username, login.password, client, _superuser
                )
                signed = AuthSession(user_id=user.id)
                session.add(signed)
                await session.commit()
        except (ValidationError, AuthenticationFailed):
            return False
        request.session.clear()  # a new sign-in never inherits an older cookie's contents
        request.session.update({"user_id": str(user.id), "sid": str(signed.id)})
        return True

    async def authenticate(self, request: Request) -> bool:
        if (ids := signed_in(request)) is None:
            return False
        user_id, sid = ids
        fresh = col(AuthSession.created_at) > utcnow() - self._settings.admin_session_lifetime
        stmt = select(col(AuthSession.id)).join(User, true()).where(live_session(sid, user_id))
        async with self._database.session() as session:
            live = await session.scalar(stmt.where(fresh, col(User.is_superuser).is_(True)))
        if live is None:
            request.session.clear()
        return live is not None

    async def logout(self, request: Request) -> bool:
        """End the login session itself, so a copy of the cookie stops working too."""
        ids = signed_in(request)
        request.session.clear()
        if ids is not None:
            async with self._database.session(write=True) as session:
                await end_session(session, ids[1])
                await session.commit()
        return False  # sqladmin then shows the login page
