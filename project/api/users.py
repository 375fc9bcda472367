"""Your account; everyone's, for superusers."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Response, status

from project.api.deps import AnyUser, Me, RowsDep
from project.auth.credentials import check_credentials
from project.data.paging import Page
from project.errors import AuthenticationFailed, BadRequest, InvalidField
from project.models import CurrentPassword, PasswordChange, UserPublic, UserUpdate, UserUpdateMe
from project.services import accounts, users
from project.web.docs import problems
from project.web.routing import api_router, client_address, json_body

router = api_router("/users", ["users"], status.HTTP_401_UNAUTHORIZED)
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
ONE_USER = problems(status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND)
CHANGE_USER = {**ONE_USER, **problems(status.HTTP_409_CONFLICT)}
CONFIRM = problems(status.HTTP_400_BAD_REQUEST, status.HTTP_429_TOO_MANY_REQUESTS)
CHANGE_ME = {**CONFIRM, **problems(status.HTTP_409_CONFLICT)}


async def _confirm(me: Me, password: str) -> None:
    """Check the current password as a sign-in, throttled: a stolen token cannot guess it freely."""
    await me.session.commit()  # wait for a turn holding no lock: others may need it to end theirs
    state, client = me.request.app.state, client_address(me.request)
    try:
        await check_credentials(
            me.session, state.hasher, state.settings, me.row.email, password, client, sign_in=False
        )
    except AuthenticationFailed:
        if await me.session.get(type(me.row), me.row.id, populate_existing=True) is None:
            raise me.gone from None  # deleted meanwhile, by a concurrent request
        raise BadRequest("The current password is wrong.") from None


@router.get("/me", response_model=UserPublic)
async def read_me(rows: RowsDep) -> Response:
    """The caller's own account."""
    return json_body(await rows.one(users.VIEW, rows.caller.user_id))


@router.patch("/me", response_model=UserPublic, responses=CHANGE_ME)
async def update_me(body: UserUpdateMe, me: Me) -> Response:
    """Change the caller's email or full name; a new email needs the current password, and is
    unverified until its owner follows the link mailed to it."""
    if body.email is not None and body.current_password is None:
        raise InvalidField(["body", "current_password"], "Field required to change the email")
    if body.current_password is not None:
        await _confirm(me, body.current_password)
    return await me.change(accounts.updating(me.request.app.state.letters), body)


@router.put("/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=CONFIRM)
async def change_password(body: PasswordChange, me: Me) -> None:
    """Change the caller's password; every other session of the caller ends. Wrong current
    passwords count as failed sign-ins, so a stolen access token cannot guess it freely."""
    await _confirm(me, body.current_password)
    hashed = await me.request.app.state.hasher.hash(body.new_password)
    await users.update(me.session, me.row, UserUpdate(), hashed, keep=me.caller.session_id)
    await me.commit()


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=CHANGE_ME)
async def delete_me(body: CurrentPassword, me: Me) -> None:
    """Delete the caller's account, with every team, hero and power it owns; this needs the
    current password."""
    await _confirm(me, body.current_password)
    await me.delete(users.delete)


@router.get("", response_model=Page[UserPublic], responses=problems(status.HTTP_403_FORBIDDEN))
async def list_users(query: Annotated[users.UserQuery, Query()], rows: RowsDep) -> Response:
    """Every account (superusers only)."""
    return json_body(await rows.page(users.VIEW, query, superuser=True))


@router.get("/{id}", response_model=UserPublic, responses=ONE_USER)
async def read_user(id: UserId, rows: RowsDep) -> Response:
    """One account (superusers only)."""
    return json_body(await rows.one(users.VIEW, id, superuser=True))


@router.patch("/{id}", response_model=UserPublic, responses=CHANGE_USER)
async def update_user(body: UserUpdate, user: AnyUser) -> Response:
    """Change an account (superusers only). Deactivating it or taking its superuser rights
    ends all its sessions at once."""
    return await user.change(accounts.updating(user.request.app.state.letters), body)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=CHANGE_USER)
async def delete_user(user: AnyUser) -> None:
    """Delete an account and everything it owns (superusers only)."""
    await user.delete(users.delete)
