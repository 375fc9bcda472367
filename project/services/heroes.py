"""Heroes: the rules the API and the admin share. A hero's team and powers must be its
owner's; changing them is a change of the hero (see `project.data.writes`)."""

import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from project.auth.sessions import Caller
from project.data.paging import SORT_HELP, ListQuery, SearchText, search
from project.data.views import Filter, View
from project.data.writes import change, insert
from project.db.driver import Driver
from project.models import AGE_MAX, Hero, HeroCreate, HeroPowerLink, HeroPublic, HeroUpdate

Age = Annotated[int | None, Field(ge=0, le=AGE_MAX)]


class HeroFilters(ListQuery):
    sort: Literal[
        "name", "-name", "age", "-age", "created_at", "-created_at", "updated_at", "-updated_at"
    ] = Field(
        default="created_at",
        description=f"{SORT_HELP} A hero of unknown age counts as younger than any other.",
    )
    q: SearchText = None
    min_age: Age = Field(default=None, description="Heroes this old or older (of a known age).")
    max_age: Age = Field(default=None, description="Heroes this old or younger (of a known age).")
    power_id: uuid.UUID | None = Field(default=None, description="Heroes that have this power.")

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is greater than max_age")
        return self


class HeroQuery(HeroFilters):
    team_id: uuid.UUID | None = Field(default=None, description="Heroes of this team.")


VIEW = View(
    Hero,
    HeroPublic,
    sorts={
        "name": col(Hero.name_key),
        "age": func.coalesce(col(Hero.age), -1),  # heroes of unknown age sort first
        "created_at": col(Hero.created_at),
        "updated_at": col(Hero.updated_at),
    },
    filters={
        "q": search(col(Hero.name_key)),
        "team_id": Filter(lambda team_id: col(Hero.team_id) == team_id),
        "min_age": Filter(lambda age: col(Hero.age) >= age),
        "max_age": Filter(lambda age: col(Hero.age) <= age),
        "power_id": Filter(
            lambda power_id: col(Hero.id).in_(
                select(HeroPowerLink.hero_id).where(col(HeroPowerLink.power_id) == power_id)
            )
        ),
    },
)


async def create(
    db: Driver, owner_id: uuid.UUID, body: HeroCreate, caller: Caller | None = None
) -> dict[str, Any]:
    hero = Hero.model_validate(body.model_dump(exclude={"power_ids"}) | {"owner_id": owner_id})
    return await insert(db, VIEW, hero, caller, links={"powers": body.power_ids})


async def update(session: AsyncSession, hero: Hero, body: HeroUpdate) -> None:
    """`power_ids`, when sent, replaces the whole set."""
    links = {"powers": body.power_ids} if "power_ids" in body.model_fields_set else None
    changes = body.model_dump(exclude_unset=True, exclude={"power_ids"})
    await change(session, VIEW, hero, changes, links)


async def delete(session: AsyncSession, hero: Hero) -> None:
    await session.delete(hero)  # its links go with it (ON DELETE CASCADE)
