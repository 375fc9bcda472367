"""Powers: the rules the API and the admin share."""

import uuid
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy import update as update_rows
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth.sessions import Caller
from project.data.paging import SORT_HELP, ListQuery, SearchText, search
from project.data.views import View
from project.data.writes import change, insert
from project.db.driver import Driver
from project.models import Hero, HeroPowerLink, Power, PowerCreate, PowerPublic, PowerUpdate, utcnow


class PowerQuery(ListQuery):
    sort: Literal["name", "-name", "created_at", "-created_at"] = Field(
        default="created_at", description=SORT_HELP
    )
    q: SearchText = None


NAME_TAKEN = "The owner already has a power with this name (names are compared case-insensitively)."

VIEW = View(
    Power,
    PowerPublic,
    sorts={"name": col(Power.name_key), "created_at": col(Power.created_at)},
    filters={"q": search(col(Power.name_key))},
    conflict=NAME_TAKEN,
)


async def create(
    db: Driver, owner_id: uuid.UUID, body: PowerCreate, caller: Caller | None = None
) -> dict[str, Any]:
    return await insert(db, VIEW, Power.model_validate(body, update={"owner_id": owner_id}), caller)


async def update(session: AsyncSession, power: Power, body: PowerUpdate) -> None:
    await change(session, VIEW, power, body.model_dump(exclude_unset=True))


async def delete(session: AsyncSession, power: Power) -> None:
    """Heroes that had it lose it (the links go with the power): a change to each hero, so
    their versions (and ETags) move."""
    holders = select(col(HeroPowerLink.hero_id)).where(col(HeroPowerLink.power_id) == power.id)
    changed = update_rows(Hero).values(version=Hero.version + 1, updated_at=utcnow())
    await session.execute(changed.where(col(Hero.id).in_(holders)))
    await session.delete(power)
