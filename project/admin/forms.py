"""What the admin's forms share: the API's own validation, and pickers that say what they offer."""

import uuid
from typing import Any

from pydantic import BaseModel, ValidationError
from sqladmin.forms import ModelConverter
from sqlalchemy.orm import RelationshipProperty
from sqlmodel import col, select

from project.models import User
from project.web.problems import error_message

STALE = "Someone changed this since you opened it: reload the page and make your change again."
GONE = "This no longer exists: someone deleted it since you opened it."
FormData = dict[str, Any]  # a submitted form, as sqladmin hands it to a view


def validated(model: type[BaseModel], data: FormData) -> Any:
    """`data` as the API's request model takes it, or a message that names each refused field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {error_message(e)}" for e in exc.errors())
        raise ValueError("; ".join(problems)) from None


class ChoicesConverter(ModelConverter):
    """Pickers that name what they offer: an owner by email, a hero's team or power by its name
    and its owner's email (sqladmin would show `str(row)`)."""

    async def convert(self, *args: Any, **kwargs: Any) -> Any:
        prop, sessions = kwargs["prop"], kwargs["session_maker"]  # sqladmin passes keywords
        if prop.key == "owner_id":
            users = select(col(User.id), col(User.email)).order_by(col(User.email))
            async with sessions() as session:
                choices = [(str(i), email) for i, email in await session.execute(users)]
            kwargs["field_args"] = {**kwargs["field_args"], "choices": choices, "coerce": uuid.UUID}
        elif isinstance(prop, RelationshipProperty):
            target = prop.mapper.class_
            stmt = (
                select(col(target.id), col(target.name), col(User.email))
                .join(User, col(User.id) == target.owner_id)
                .order_by(col(User.email), col(target.name_key))
            )
            async with sessions() as session:
                data = [(str(i), f"{n} · {e}") for i, n, e in await session.execute(stmt)]
            kwargs["field_args"] = {**kwargs["field_args"], "data": data}
        return await super().convert(*args, **kwargs)
