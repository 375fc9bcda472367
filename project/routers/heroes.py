import uuid
from typing import Annotated, Literal, Self

from fastapi import Depends, Query, Request, Response, status
from pydantic import Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlmodel import col

from project.conditional import make_etag, not_modified, require_match
from project.database import SessionDep, commit
from project.models import (
    AGE_MAX,
    Hero,
    HeroCreate,
    HeroPowerLink,
    HeroPublic,
    HeroUpdate,
    Power,
    Team,
    User,
    fold,
    utcnow,
)
from project.ownership import owned, referenced, visible_to
from project.paging import ListQuery, Page, Pager, PagerDep, search_text
from project.routing import api_router, created, fetched, problems
from project.security import CurrentUser

router = api_router("/heroes", ["heroes"], status.HTTP_401_UNAUTHORIZED)

# Related rows are loaded up front, in one query per relationship for a whole page.
EMBEDDED = (selectinload(Hero.team), selectinload(Hero.powers))  # type: ignore[arg-type]
SORTS = {
    "name": col(Hero.name_key),
    "age": func.coalesce(col(Hero.age), -1),  # heroes of unknown age sort first
    "created_at": col(Hero.created_at),
    "updated_at": col(Hero.updated_at),
}

OwnedHero = Annotated[Hero, Depends(owned(Hero, *EMBEDDED))]


class HeroFilters(ListQuery):
    sort: Literal[
        "name", "-name", "age", "-age", "created_at", "-created_at", "updated_at", "-updated_at"
    ] = "created_at"
    q: str | None = search_text()
    min_age: int | None = Field(default=None, ge=0, le=AGE_MAX)
    max_age: int | None = Field(default=None, ge=0, le=AGE_MAX)
    power_id: uuid.UUID | None = Field(default=None, description="Heroes that have this power.")

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is greater than max_age")
        return self


class HeroQuery(HeroFilters):
    team_id: uuid.UUID | None = Field(default=None, description="Heroes of this team.")


def hero_etag(hero: Hero | HeroPublic) -> str:
    team = (hero.team.id, hero.team.version) if hero.team else None
    return make_etag(hero.version, team, [(p.id, p.version) for p in hero.powers])


async def hero_page(
    session: AsyncSession, pager: Pager, user: User, query: HeroQuery
) -> Page[HeroPublic]:
    stmt = visible_to(select(Hero), Hero, user).options(*EMBEDDED)
    if query.q is not None:
        stmt = stmt.where(col(Hero.name_key).contains(fold(query.q), autoescape=True))
    if query.team_id is not None:
        stmt = stmt.where(col(Hero.team_id) == query.team_id)
    if query.min_age is not None:
        stmt = stmt.where(col(Hero.age) >= query.min_age)
    if query.max_age is not None:
        stmt = stmt.where(col(Hero.age) <= query.max_age)
    if query.power_id is not None:
        stmt = stmt.where(
            col(Hero.id).in_(
                select(col(HeroPowerLink.hero_id)).where(
                    col(HeroPowerLink.power_id) == query.power_id
                )
            )
        )
    heroes, next_cursor, total = await pager.page(session, stmt, query, SORTS, col(Hero.id))
    return Page(
        items=[HeroPublic.model_validate(h) for h in heroes], next_cursor=next_cursor, total=total
    )


def _respond(hero: Hero, response: Response) -> HeroPublic:
    public = HeroPublic.model_validate(hero)
    response.headers["ETag"] = hero_etag(public)
    return public


@router.get("")
async def list_heroes(
    query: Annotated[HeroQuery, Query()], session: SessionDep, user: CurrentUser, pager: PagerDep
) -> Page[HeroPublic]:
    """The caller's heroes (everyone's for a superuser), with team and powers embedded."""
    return await hero_page(session, pager, user, query)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**created("hero"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_hero(
    body: HeroCreate, session: SessionDep, user: CurrentUser, request: Request, response: Response
) -> HeroPublic:
    """Create a hero owned by the caller, optionally in one of the caller's teams and with
    some of the caller's powers."""
    hero = Hero.model_validate(body.model_dump(exclude={"power_ids"}), update={"owner_id": user.id})
    hero.team = await _team(session, body.team_id, user.id)
    hero.powers = await _powers(session, body.power_ids, user.id)
    session.add(hero)
    await commit(session)
    response.headers["Location"] = str(request.url_for("read_hero", id=hero.id))
    return _respond(hero, response)


async def _team(
    session: AsyncSession, team_id: uuid.UUID | None, owner_id: uuid.UUID
) -> Team | None:
    if team_id is None:
        return None
    [team] = await referenced(session, Team, [team_id], owner_id, "team_id", indexed=False)
    return team


async def _powers(
    session: AsyncSession, power_ids: list[uuid.UUID], owner_id: uuid.UUID
) -> list[Power]:
    powers = await referenced(session, Power, power_ids, owner_id, "power_ids")
    return sorted(powers, key=lambda power: power.name_key)  # the order they load in


@router.get("/{id}", response_model=HeroPublic, responses=fetched("hero"))
async def read_hero(hero: OwnedHero, request: Request, response: Response) -> HeroPublic | Response:
    """One hero, with team and powers embedded. Honours `If-None-Match`."""
    etag = hero_etag(hero)
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    response.headers["Cache-Control"] = "private, no-cache"
    return _respond(hero, response)


@router.patch(
    "/{id}",
    responses=problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
)
async def update_hero(
    body: HeroUpdate, hero: OwnedHero, session: SessionDep, request: Request, response: Response
) -> HeroPublic:
    """Change a hero; `power_ids` replaces the whole set. Honours `If-Match`."""
    require_match(request, hero_etag(hero))
    changes = body.model_dump(exclude_unset=True, exclude={"team_id", "power_ids"})
    if "team_id" in body.model_fields_set:
        hero.team = await _team(session, body.team_id, hero.owner_id)
    if "power_ids" in body.model_fields_set:
        hero.powers = await _powers(session, body.power_ids, hero.owner_id)
    if body.model_fields_set:
        hero.sqlmodel_update(changes)
        hero.updated_at = utcnow()  # an UPDATE (and a new version) even if only powers changed
        await commit(session)
    return _respond(hero, response)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
)
async def delete_hero(hero: OwnedHero, session: SessionDep, request: Request) -> None:
    """Delete a hero. Honours `If-Match`."""
    require_match(request, hero_etag(hero))
    await session.delete(hero)
    await commit(session)
