"""Form pieces the views share: select options that say what they are, the API's own
validation for every admin form, and readable messages for what the database refuses."""

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqladmin.fields import SelectField
from sqladmin.forms import ModelConverter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import RelationshipProperty
from sqlmodel import col
from starlette.requests import Request
from wtforms import validators

from project.models import Power, Team, User
from project.web.problems import error_message

STALE = "Someone changed this since you opened it: reload the page and make your change again."
GONE = "This no longer exists: someone deleted it since you opened it."

M = TypeVar("M", bound=BaseModel)


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def validated(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate form input with the API's request model, so the admin accepts exactly what
    the API does; a refusal becomes a message that names the fields."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {error_message(e)}" for e in exc.errors())
        raise ValueError("; ".join(problems)) from None


def blank_to_none(value: Any) -> Any:
    return None if value == "" else value


async def _rows(sessions: Any, stmt: Any) -> list[Any]:
    assert isinstance(sessions, async_sessionmaker)  # the admin's are AppSessions
    async with sessions() as session:
        return list((await session.execute(stmt)).all())


async def owner_emails(sessions: Any, owner_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not owner_ids:
        return {}
    stmt = select(col(User.id), col(User.email)).where(col(User.id).in_(owner_ids))
    return dict(await _rows(sessions, stmt))


def owner_email(model: Any, attribute: Any, request: Request) -> str:
    """Column formatter: the owner's email, looked up for the whole page beforehand."""
    emails: dict[uuid.UUID, str] = getattr(request.state, "owner_emails", {})
    return emails.get(model.owner_id, str(model.owner_id))


class ChoicesConverter(ModelConverter):
    """An owner is picked by email, a team or power by its name and its owner's email
    (sqladmin would label them with `str(row)`). The owner id is a foreign key without a
    relationship, which sqladmin leaves out of forms; here it becomes a select of users."""

    async def convert(
        self,
        model: type,
        prop: Any,
        session_maker: Any,
        field_args: dict[str, Any],
        field_widget_args: dict[str, Any],
        form_include_pk: bool,
        label: str | None = None,
        override: Any = None,
        form_ajax_refs: dict[str, Any] | None = None,
    ) -> Any:
        if prop.key == "owner_id":
            users = select(col(User.id), col(User.email)).order_by(col(User.email))
            choices = [(str(i), email) for i, email in await _rows(session_maker, users)]
            return SelectField(
                label="Owner",
                choices=choices,
                coerce=as_uuid,  # type: ignore[arg-type]  # any callable; typed too narrowly
                validators=[validators.InputRequired()],
                render_kw={"class": "form-control"},
            )
        if isinstance(prop, RelationshipProperty) and prop.mapper.class_ in (Team, Power):
            target = prop.mapper.class_
            stmt = (
                select(col(target.id), col(target.name), col(User.email))
                .join(User, col(User.id) == target.owner_id)
                .order_by(col(User.email), col(target.name_key))
            )
            rows = await _rows(session_maker, stmt)
            field_args = {**field_args, "data": [(str(i), f"{n} · {e}") for i, n, e in rows]}
        return await super().convert(
            model=model,
            prop=prop,
            session_maker=session_maker,
            field_args=field_args,
            field_widget_args=field_widget_args,
            form_include_pk=form_include_pk,
            label=label,
            override=override,
            form_ajax_refs=form_ajax_refs,
        )
