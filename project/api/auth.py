"""Register, sign in, refresh and sign out."""

from typing import Annotated

from fastapi import Form, Request, Response, status

from project.api.deps import DriverDep, HasherDep, Me, SessionDep, SettingsDep, TokensDep
from project.auth import sessions
from project.auth.credentials import LoginForm, check_credentials
from project.models import AuthSession, RefreshRequest, TokenPair, UserCreate, UserPublic
from project.services import users
from project.web.docs import described, problems
from project.web.routing import api_router, client_address, created_response

router = api_router("/auth", ["auth"])
BAD_TOKEN = problems(status.HTTP_401_UNAUTHORIZED)
ACCOUNT_URL = "The account's URL, which superusers read; its owner reads `/api/v1/users/me`."


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={
        status.HTTP_201_CREATED: {
            "description": "The new account.",
            "headers": {"Location": described(ACCOUNT_URL)},
        },
        **problems(status.HTTP_409_CONFLICT),
    },
)
async def register(
    body: UserCreate, db: DriverDep, hasher: HasherDep, request: Request
) -> Response:
    """Create an account."""
    user = await users.create(db, hasher, body.email, body.password, full_name=body.full_name)
    return created_response(request, user, None, str(request.url_for("read_user", id=user["id"])))


@router.post(
    "/login",
    responses=problems(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_429_TOO_MANY_REQUESTS,
        say={
            status.HTTP_401_UNAUTHORIZED: "Wrong email or password, or an inactive account: one"
            " message for all three.",
            status.HTTP_429_TOO_MANY_REQUESTS: "Too many failed sign-ins for this email or from"
            " this address (wait as `Retry-After` says), or too many at once (`Retry-After: 1`).",
        },
    ),
    # Documented urlencoded only (generated clients break on two form types for one body);
    # multipart, as `fetch` sends a `FormData`, is accepted all the same.
)
async def login(
    form: Annotated[LoginForm, Form()],
    request: Request,
    session: SessionDep,
    hasher: HasherDep,
    tokens: TokensDep,
    settings: SettingsDep,
) -> TokenPair:
    """Sign in with email (as `username`) and password; returns an access and a refresh token."""
    user = await check_credentials(
        session, hasher, settings, form.username, form.password, client_address(request)
    )
    pair = sessions.issue(session, tokens, AuthSession(user_id=user.id))
    await session.commit()
    return pair


@router.post("/refresh", responses=BAD_TOKEN)
async def refresh(body: RefreshRequest, session: SessionDep, tokens: TokensDep) -> TokenPair:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a
    spent one ends its whole session. A session lasts `SESSION_MAX_DAYS` (30) from its
    sign-in at most, however often it is refreshed; then sign in again."""
    return await sessions.rotate(session, tokens, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=BAD_TOKEN)
async def logout(body: RefreshRequest, session: SessionDep, tokens: TokensDep) -> None:
    """End the session of this refresh token; its access tokens stop working at once."""
    await sessions.end(session, tokens, body.refresh_token)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=BAD_TOKEN)
async def logout_all(me: Me) -> None:
    """End every session of the caller, on every device."""
    await sessions.end_all(me.session, me.row.id)
    await me.commit()
