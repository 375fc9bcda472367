"""Register, sign in, refresh and sign out; reset a forgotten password and confirm an email,
each through a link mailed to the account's address."""

from typing import Annotated

from fastapi import Form, Request, Response, status

from project.api.deps import HasherDep, LettersDep, Me, SessionDep, SettingsDep, TokensDep
from project.auth import sessions
from project.auth.credentials import LoginForm, check_credentials
from project.models import (
    Accepted,
    AuthSession,
    EmailAddress,
    LinkToken,
    PasswordReset,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
)
from project.services import accounts
from project.web.docs import described, problems
from project.web.routing import api_router, client_address, created_response

router = api_router("/auth", ["auth"])
BAD_TOKEN = problems(status.HTTP_401_UNAUTHORIZED)
BAD_LINK = problems(
    status.HTTP_400_BAD_REQUEST,
    status.HTTP_410_GONE,
    say={
        status.HTTP_400_BAD_REQUEST: "A token this service never issued (mistyped, cut short"
        " or forged).",
        status.HTTP_410_GONE: "The link was already used, has expired, or was replaced by a"
        " newer one (or the account's password or email changed since): `detail` says which."
        " Ask for a new link.",
    },
)
THROTTLED = problems(
    status.HTTP_429_TOO_MANY_REQUESTS,
    say={
        status.HTTP_429_TOO_MANY_REQUESTS: "Too many emails asked for this address or from"
        " this client (`MAIL_MAX_PER_EMAIL`, `MAIL_MAX_PER_CLIENT` per `MAIL_WINDOW_SECONDS`);"
        " wait as `Retry-After` says. Counted whether or not the email has an account."
    },
)
ON_ITS_WAY = "If an account has this email, a link is on its way to it."
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
        **problems(
            status.HTTP_409_CONFLICT,
            say={
                status.HTTP_409_CONFLICT: "The email has an account (never while"
                " `REQUIRE_VERIFIED_EMAIL` is on: then a taken email is answered as a new one"
                " is, and its owner is mailed a notice)."
            },
        ),
    },
)
async def register(
    body: UserCreate, session: SessionDep, hasher: HasherDep, letters: LettersDep, request: Request
) -> Response:
    """Create an account; a link to confirm its email is mailed to it."""
    client = client_address(request)
    user = await accounts.register(session, hasher, letters, body, client)
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


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED, responses=THROTTLED)
async def request_password_reset(
    body: EmailAddress, session: SessionDep, letters: LettersDep, request: Request
) -> Accepted:
    """Ask for a password reset link. An active account with this email is mailed
    `{FRONTEND_URL}/reset-password?token=…`, valid once for `PASSWORD_RESET_MINUTES` (30) and
    voided by a newer link or a new password. The answer is the same for every email."""
    await accounts.request_reset(session, letters, body.email, client_address(request))
    return Accepted(detail=ON_ITS_WAY)


@router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT, responses=BAD_LINK)
async def confirm_password_reset(
    body: PasswordReset, session: SessionDep, hasher: HasherDep
) -> None:
    """Set a new password with the token of a reset link (the rules are registration's).
    Every session of the account ends and its sign-in lockout is lifted; the link is spent.
    A token that does not work changes nothing."""
    await accounts.confirm_reset(session, hasher, body.token, body.new_password)


@router.post("/verify-email", status_code=status.HTTP_204_NO_CONTENT, responses=BAD_LINK)
async def verify_email(body: LinkToken, session: SessionDep) -> None:
    """Confirm an account's email with the token of the link mailed to it
    (`{FRONTEND_URL}/verify-email?token=…`); the account's `email_verified_at` is set."""
    await accounts.verify(session, body.token)


@router.post("/verify-email/resend", status_code=status.HTTP_202_ACCEPTED, responses=THROTTLED)
async def resend_verification(
    body: EmailAddress, session: SessionDep, letters: LettersDep, request: Request
) -> Accepted:
    """Ask for a new link to confirm an email, voiding the earlier ones. Only an active account
    whose email is not yet confirmed is mailed; the answer is the same for every email."""
    await accounts.resend_verification(session, letters, body.email, client_address(request))
    return Accepted(detail=ON_ITS_WAY)
