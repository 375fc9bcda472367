"""Teams: the rules the API and the admin share."""

import uuid
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import update as update_rows
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.auth.sessions import Caller
from project.data.paging import SORT_HELP, ListQuery, SearchText, search
from project.data.views import View
from project.data.writes import change, insert
from project.db.driver import Driver
from project.models import Hero, Team, TeamCreate, TeamDetail, TeamUpdate, utcnow


class TeamQuery(ListQuery):
    sort: Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"] = (
        Field(default="created_at", description=SORT_HELP)
    )
    q: SearchText = None


NAME_TAKEN = "The owner already has a team with this name (names are compared case-insensitively)."

VIEW = View(
    Team,
    TeamDetail,
    sorts={
        "name": col(Team.name_key),
        "created_at": col(Team.created_at),
        "updated_at": col(Team.updated_at),
    },
    filters={"q": search(col(Team.name_key))},
    counts={"heroes_count": col(Hero.team_id)},
    conflict=NAME_TAKEN,
)


async def create(
    db: Driver, owner_id: uuid.UUID, body: TeamCreate, caller: Caller | None = None
) -> dict[str, Any]:
    return await insert(db, VIEW, Team.model_validate(body, update={"owner_id": owner_id}), caller)


async def update(session: AsyncSession, team: Team, body: TeamUpdate) -> None:
    await change(session, VIEW, team, body.model_dump(exclude_unset=True))


async def delete(session: AsyncSession, team: Team) -> None:
    """Its heroes stay, without a team. The foreign key would unlink them by itself (SET
    NULL), but losing its team is a change to each hero: their versions (and ETags) move."""
    teamless = update_rows(Hero).values(team_id=None, version=Hero.version + 1, updated_at=utcnow())
    await session.execute(teamless.where(col(Hero.team_id) == team.id))
    await session.delete(team)
