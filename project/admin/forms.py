"""What the admin's forms and filters share: refusals as messages, named pickers, ids as UUIDs."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, status
from pydantic import ValidationError
from sqladmin.filters import ForeignKeyFilter, OperationColumnFilter
from sqladmin.forms import ModelConverter
from sqlalchemy.orm import RelationshipProperty
from sqlmodel import col, select

from project.errors import PreconditionFailed, ProblemError
from project.models import User
from project.web.problems import error_message

STALE = "Someone changed this since you opened it: reload the page and make your change again."
GONE = "This no longer exists: someone deleted it since you opened it."
FormData = dict[str, Any]  # a submitted form, as sqladmin hands it to a view


@contextmanager
def refusals() -> Iterator[None]:
    """A request model's or a service's refusal as a ValueError, whose text sqladmin shows."""
    try:
        yield
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {error_message(e)}" for e in exc.errors())
        raise ValueError("; ".join(problems)) from None
    except ProblemError as exc:
        message = exc.errors[0].msg if exc.errors else exc.detail
        raise ValueError(STALE if isinstance(exc, PreconditionFailed) else message) from None


class ChoicesConverter(ModelConverter):
    """Owners by email, teams and powers by name and owner, where sqladmin shows `str(row)`."""

    async def convert(self, *args: Any, **kwargs: Any) -> Any:
        prop, field_args = kwargs["prop"], kwargs["field_args"]  # sqladmin passes keywords
        async with kwargs["session_maker"]() as session:  # connects only if a query runs
            if prop.key == "owner_id":
                users = select(col(User.id), col(User.email)).order_by(col(User.email))
                choices = [(str(i), email) for i, email in await session.execute(users)]
                kwargs["field_args"] = {**field_args, "choices": choices, "coerce": uuid.UUID}
            elif isinstance(prop, RelationshipProperty):
                target = prop.mapper.class_
                stmt = select(col(target.id), col(target.name), col(User.email))
                stmt = stmt.join(User, col(User.id) == target.owner_id)
                stmt = stmt.order_by(col(User.email), col(target.name_key))
                data = [(str(i), f"{n} · {e}") for i, n, e in await session.execute(stmt)]
                kwargs["field_args"] = {**field_args, "data": data}
        return await super().convert(*args, **kwargs)


class UUIDForeignKeyFilter(ForeignKeyFilter):
    """sqladmin filters by the query string's text; a UUID column wants a UUID."""

    async def get_filtered_query(self, query: Any, value: Any, model: Any) -> Any:
        try:
            value = value if value == "__all" else uuid.UUID(value)  # "__all": the filter's "All"
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Not an id.") from None
        return await super().get_filtered_query(query, value, model)


class NumberFilter(OperationColumnFilter):
    """sqladmin's filter by comparison, refusing a number no integer column holds (64 bits):
    the driver would raise on it, a 500."""

    def _convert_value_for_column(self, value: str, column_obj: Any, operation: str = "") -> Any:
        number = super()._convert_value_for_column(value, column_obj, operation)
        if isinstance(number, int) and not -(2**63) <= number < 2**63:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "No row holds a number that large.")
        return number
