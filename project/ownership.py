"""Who may see which row, enforced inside the query itself: another user's row is never
loaded and then refused, it is simply not found."""

import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from fastapi import Path, Request
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption
from sqlmodel import col

from project.database import WRITE_METHODS, SessionDep
from project.errors import InvalidField, NotFound
from project.models import User
from project.security import Caller, CurrentCaller


class OwnedRow(Protocol):
    """A table whose rows belong to a user: every resource that users own."""

    id: uuid.UUID
    owner_id: uuid.UUID


Owned = TypeVar("Owned", bound=OwnedRow)


def visible_to(stmt: Select[Any], model: type[Owned], user: User | Caller) -> Select[Any]:
    """Restrict `stmt` to the rows `user` may see: their own, or every row for a superuser."""
    if user.is_superuser:
        return stmt
    return stmt.where(col(model.owner_id) == user.id)


def visible_in_query(model: type[Owned]) -> ColumnElement[bool]:
    """The same rule inside a statement that joins the caller's `users` row: for reads that
    check the caller and load the row in one statement."""
    return (col(model.owner_id) == col(User.id)) | col(User.is_superuser)


def owned(model: type[Owned], *options: ORMOption) -> Callable[..., Coroutine[Any, Any, Owned]]:
    """A dependency that loads the `{id}` row of `model` that the caller may see, or 404s."""
    label: str = model.__name__.lower()

    async def load(
        session: SessionDep,
        user: CurrentCaller,
        request: Request,
        id: uuid.UUID = Path(description=f"The {label}'s id."),
    ) -> Owned:
        stmt = visible_to(select(model).where(col(model.id) == id), model, user).options(*options)
        if request.method in WRITE_METHODS:
            # A change waits for a concurrent one to commit and then sees its version,
            # instead of failing its versioned UPDATE with a 412 nobody asked for (no
            # If-Match). SQLite's writers already hold the database lock at this point.
            stmt = stmt.with_for_update(of=model)
        row: Owned | None = await session.scalar(stmt)
        if row is None:
            raise NotFound(label)
        return row

    return load


async def referenced(
    session: AsyncSession,
    model: type[Owned],
    ids: list[uuid.UUID],
    owner_id: uuid.UUID,
    field: str,
    indexed: bool = True,
) -> list[Owned]:
    """Rows named in a request body, which must belong to `owner_id`: a missing or foreign
    one is a 422 on that field, worded the same either way."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return []
    rows = (
        await session.scalars(
            select(model).where(col(model.id).in_(unique), col(model.owner_id) == owner_id)
        )
    ).all()
    by_id = {row.id: row for row in rows}
    for position, wanted in enumerate(ids):
        if wanted not in by_id:
            loc: list[str | int] = ["body", field, position] if indexed else ["body", field]
            raise InvalidField(loc, f"No {model.__name__.lower()} with id {wanted}.")
    return [by_id[i] for i in unique]
