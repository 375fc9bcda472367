"""Who may use the admin: active superusers, signed in with their email and password through
the API's own hashing and login throttling.

Each admin sign-in is a login session in the database (an `AuthSession` that never issues
tokens), checked on every request. So everything that ends a user's sessions ends their admin
sign-in as well: logout-all, deactivation, a new password, losing superuser rights.
"""

import hashlib
import uuid

from fastapi import FastAPI
from pydantic import ValidationError
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy import select, true
from sqlmodel import col
from starlette.requests import Request

from project.auth import sessions
from project.auth.credentials import LoginForm, check_credentials
from project.auth.passwords import PasswordHasher
from project.auth.sessions import live_session
from project.config import Settings
from project.database import Database
from project.errors import AuthenticationFailed
from project.models import AuthSession, User, utcnow
from project.web.inbound import client_address

SESSION_COOKIE = "admin_session"


def _cookie_key(settings: Settings) -> str:
    # A key of its own, derived from SECRET_KEY: a session cookie and a JWT never share one.
    secret = settings.secret_key.get_secret_value().encode()
    return hashlib.sha256(b"heroes-admin-session\x00" + secret).hexdigest()


def signed_in(request: Request) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (user id, login session id) the admin cookie names, if it names any."""
    try:
        return uuid.UUID(request.session["user_id"]), uuid.UUID(request.session["sid"])
    except (KeyError, TypeError, ValueError):
        return None


class AdminAuth(AuthenticationBackend):
    def __init__(self, app: FastAPI, settings: Settings, path: str) -> None:
        # HttpOnly always (Starlette sets it); Secure wherever it is not plain-http development.
        super().__init__(
            secret_key=_cookie_key(settings),
            session_cookie=SESSION_COOKIE,
            max_age=settings.admin_session_hours * 3600,
            path=path,
            same_site="strict",
            https_only=settings.environment == "production",
        )
        self._app = app
        self._settings = settings

    @property
    def _database(self) -> Database:
        database: Database = self._app.state.database
        return database

    async def login(self, request: Request) -> bool:
        """Check the form like `POST /api/v1/auth/login` does; anyone but an active superuser
        is refused with the one message, and counts as a failed attempt."""
        form = await request.form()
        try:
            credentials = LoginForm.model_validate(
                {"username": form.get("username"), "password": form.get("password")}
            )
        except ValidationError:
            return False
        hasher: PasswordHasher = self._app.state.hasher
        async with self._database.session(write=True) as session:
            try:
                user = await check_credentials(
                    session,
                    hasher,
                    self._settings,
                    credentials.username,
                    credentials.password,
                    client_address(request),
                    allowed=lambda user: user.is_active and user.is_superuser,
                )
            except AuthenticationFailed:
                return False
            login = AuthSession(user_id=user.id)
            session.add(login)
            await session.commit()
        request.session.clear()  # a new sign-in never inherits an older cookie's contents
        request.session.update({"user_id": str(user.id), "sid": str(login.id)})
        return True

    async def authenticate(self, request: Request) -> bool:
        ids = signed_in(request)
        if ids is None:
            return False
        user_id, sid = ids
        async with self._database.session() as session:
            live = await session.scalar(
                select(col(AuthSession.id))
                .join(User, true())
                .where(
                    live_session(sid, user_id),
                    col(AuthSession.created_at) > utcnow() - self._settings.admin_session_lifetime,
                    col(User.is_superuser).is_(True),
                )
            )
        if live is None:
            request.session.clear()
            return False
        return True

    async def logout(self, request: Request) -> bool:
        """End the login session itself, so a copy of the cookie stops working too."""
        ids = signed_in(request)
        request.session.clear()
        if ids is not None:
            async with self._database.session(write=True) as session:
                await sessions.end_session(session, ids[1])
                await session.commit()
        return False  # sqladmin then shows the login page
