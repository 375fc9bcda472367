from typing import Annotated, cast

from fastapi import Form, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from project import login_sessions
from project.accounts import check_credentials, create_user
from project.config import SettingsDep
from project.database import SessionDep
from project.models import PASSWORD_MAX, RefreshRequest, TokenPair, User, UserCreate, UserPublic
from project.routing import api_router, problems
from project.security import CurrentUser, HasherDep, TokensDep, client_address
from project.text import NO_NUL

router = api_router("/auth", ["auth"])


def _string_or_absent(schema: JsonDict) -> None:
    """A form field is a string or is not sent; never null, which a form cannot carry. So
    typed, a client generated from the document does not insist on sending it."""
    kinds = cast(list[JsonDict], schema.pop("anyOf"))
    schema.update(next(kind for kind in kinds if kind != {"type": "null"}))
    schema.pop("default", None)


class LoginForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's Authorize button sends it."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=320, pattern=NO_NUL, description="The account's email.")
    password: str = Field(max_length=PASSWORD_MAX, pattern=NO_NUL)
    # Accepted as OAuth2 clients send them, and unused.
    grant_type: str | None = Field(
        default=None, pattern="^password$", json_schema_extra=_string_or_absent
    )
    scope: str | None = Field(default=None, max_length=1024, json_schema_extra=_string_or_absent)
    client_id: str | None = Field(default=None, max_length=255, json_schema_extra=_string_or_absent)
    client_secret: str | None = Field(
        default=None, max_length=255, json_schema_extra=_string_or_absent
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={
        status.HTTP_201_CREATED: {
            "description": "The new account.",
            "headers": {
                "Location": {
                    "description": "The account's URL, which superusers read; its owner"
                    " reads `/api/v1/users/me`.",
                    "schema": {"type": "string"},
                }
            },
        },
        **problems(status.HTTP_409_CONFLICT),
    },
)
async def register(
    body: UserCreate, session: SessionDep, hasher: HasherDep, request: Request, response: Response
) -> User:
    """Create an account."""
    user = await create_user(session, hasher, body.email, body.password, body.full_name)
    response.headers["Location"] = str(request.url_for("read_user", id=user.id))
    return user


@router.post(
    "/login",
    responses=problems(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_429_TOO_MANY_REQUESTS,
        say={
            status.HTTP_401_UNAUTHORIZED: (
                "Wrong email or password, or an inactive account: one message for all three."
            ),
            status.HTTP_429_TOO_MANY_REQUESTS: (
                "Too many failed sign-ins for this email or from this address (wait as"
                " `Retry-After` says), or too many at once (`Retry-After: 1`)."
            ),
        },
    ),
    # The same form as multipart, as `fetch` sends a `FormData`.
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/LoginForm"}}
            }
        }
    },
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
    pair = await login_sessions.start(session, tokens, user.id)
    await session.commit()
    return pair


@router.post("/refresh", responses=problems(status.HTTP_401_UNAUTHORIZED))
async def refresh(body: RefreshRequest, session: SessionDep, tokens: TokensDep) -> TokenPair:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a
    spent one ends its whole session. A session lasts `SESSION_MAX_DAYS` (30) from its
    sign-in at most, however often it is refreshed; then sign in again."""
    return await login_sessions.rotate(session, tokens, body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_401_UNAUTHORIZED),
)
async def logout(body: RefreshRequest, session: SessionDep, tokens: TokensDep) -> None:
    """End the session of this refresh token; its access tokens stop working at once."""
    await login_sessions.end(session, tokens, body.refresh_token)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_401_UNAUTHORIZED),
)
async def logout_all(session: SessionDep, user: CurrentUser) -> None:
    """End every session of the caller, on every device."""
    await login_sessions.end_all(session, user.id)
    await session.commit()
