import uuid
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request, status
from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project import login_sessions
from project.accounts import (
    EMAIL_TAKEN,
    delete_account,
    ensure_not_last_superuser,
    verify_credentials,
)
from project.config import SettingsDep
from project.database import SessionDep, commit
from project.errors import (
    ACCOUNT_GONE,
    AuthenticationFailed,
    BadRequest,
    NotFound,
    PreconditionFailed,
    ProblemError,
)
from project.models import PasswordChange, User, UserPublic, UserUpdate, UserUpdateMe
from project.paging import SORT_HELP, ListQuery, Page, PagerDep, SearchText
from project.routing import api_router, problems
from project.security import (
    CurrentPrincipal,
    CurrentUser,
    HasherDep,
    Superuser,
    client_address,
)
from project.text import fold

router = api_router("/users", ["users"], status.HTTP_401_UNAUTHORIZED)


class UserQuery(ListQuery):
    sort: Literal["email", "-email", "created_at", "-created_at"] = Field(
        default="created_at", description=SORT_HELP
    )
    q: SearchText = None
    is_active: bool | None = Field(
        default=None, description="Only active users (true) or only inactive ones (false)."
    )


SORTS = {"email": col(User.email), "created_at": col(User.created_at)}


async def _apply(
    session: AsyncSession, user: User, changes: UserUpdateMe, gone: ProblemError
) -> User:
    data = changes.model_dump(exclude_unset=True)
    # Losing rights ends every session: none outlives the rights it was signed in with.
    ends_sessions = (data.get("is_active") is False and user.is_active) or (
        data.get("is_superuser") is False and user.is_superuser
    )
    if data.get("is_active") is False or data.get("is_superuser") is False:
        await ensure_not_last_superuser(session, user)
    for field, value in data.items():
        setattr(user, field, value)
    if ends_sessions:
        with session.no_autoflush:  # a taken email then fails the commit below: a 409
            await login_sessions.end_all(session, user.id)
    try:
        await commit(session, EMAIL_TAKEN)
    except PreconditionFailed:  # users carry no version: the row was deleted meanwhile
        raise gone from None
    return user


async def _user(
    session: SessionDep,
    _: Superuser,
    id: Annotated[uuid.UUID, Path(description="The user's id.")],
) -> User:
    user = await session.get(User, id)
    if user is None:
        raise NotFound("user")
    return user


AnyUser = Annotated[User, Depends(_user)]


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> User:
    """The caller's own account."""
    return user


@router.patch("/me", response_model=UserPublic, responses=problems(status.HTTP_409_CONFLICT))
async def update_me(body: UserUpdateMe, session: SessionDep, user: CurrentUser) -> User:
    """Change the caller's email or full name."""
    return await _apply(session, user, body, AuthenticationFailed(ACCOUNT_GONE))


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_400_BAD_REQUEST, status.HTTP_429_TOO_MANY_REQUESTS),
)
async def change_password(
    body: PasswordChange,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    hasher: HasherDep,
    settings: SettingsDep,
) -> None:
    """Change the caller's password; every other session of the caller ends. Wrong current
    passwords count as failed sign-ins, so a stolen access token cannot guess it freely."""
    user = principal.user
    try:
        await verify_credentials(
            session, hasher, settings, user.email, body.current_password, client_address(request)
        )
    except AuthenticationFailed:
        raise BadRequest("The current password is wrong.") from None
    user.hashed_password = await hasher.hash(body.new_password)
    session.add(user)
    await login_sessions.end_all(session, user.id, keep=principal.session_id)
    await session.commit()


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=problems(status.HTTP_409_CONFLICT)
)
async def delete_me(session: SessionDep, user: CurrentUser) -> None:
    """Delete the caller's account, with every team, hero and power it owns."""
    if not await delete_account(session, user):
        raise AuthenticationFailed(ACCOUNT_GONE)


@router.get("", responses=problems(status.HTTP_403_FORBIDDEN))
async def list_users(
    query: Annotated[UserQuery, Query()], session: SessionDep, pager: PagerDep, _: Superuser
) -> Page[UserPublic]:
    """Every account (superusers only)."""
    stmt = select(User)
    if query.q is not None:
        stmt = stmt.where(
            or_(
                col(User.email).contains(query.q.lower(), autoescape=True),
                col(User.full_name_key).contains(fold(query.q), autoescape=True),
            )
        )
    if query.is_active is not None:
        stmt = stmt.where(col(User.is_active) == query.is_active)
    users, next_cursor, total = await pager.page(session, stmt, query, SORTS, col(User.id))
    return Page(
        items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor, total=total
    )


USER_PROBLEMS = problems(status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND)


@router.get("/{id}", response_model=UserPublic, responses=USER_PROBLEMS)
async def read_user(user: AnyUser) -> User:
    """One account (superusers only)."""
    return user


@router.patch(
    "/{id}",
    response_model=UserPublic,
    responses={**USER_PROBLEMS, **problems(status.HTTP_409_CONFLICT)},
)
async def update_user(body: UserUpdate, session: SessionDep, user: AnyUser) -> User:
    """Change an account (superusers only). Deactivating it or taking its superuser rights
    ends all its sessions at once."""
    return await _apply(session, user, body, NotFound("user"))


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**USER_PROBLEMS, **problems(status.HTTP_409_CONFLICT)},
)
async def delete_user(session: SessionDep, user: AnyUser) -> None:
    """Delete an account and everything it owns (superusers only)."""
    if not await delete_account(session, user):
        raise NotFound("user")
