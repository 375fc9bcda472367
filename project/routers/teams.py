import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request, Response, status
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.conditional import REVALIDATE, make_etag, not_modified, require_match
from project.database import SessionDep, commit
from project.direct import Reader
from project.errors import NotFound
from project.models import Hero, HeroPublic, Team, TeamCreate, TeamDetail, TeamUpdate
from project.ownership import owned, visible_to
from project.paging import SORT_HELP, ListQuery, Page, PagerDep, SearchText
from project.relations import leave_team
from project.routers.heroes import HeroFilters, HeroQuery, hero_page, json_response
from project.routing import api_router, changed, created, fetched, problems
from project.security import CurrentCaller
from project.text import fold

router = api_router("/teams", ["teams"], status.HTTP_401_UNAUTHORIZED)

NAME_TAKEN = "The owner already has a team with this name (names are compared case-insensitively)."
SORTS = {
    "name": col(Team.name_key),
    "created_at": col(Team.created_at),
    "updated_at": col(Team.updated_at),
}
ONE = problems(status.HTTP_404_NOT_FOUND)
CHANGE = changed("team", status.HTTP_409_CONFLICT)

OwnedTeam = Annotated[Team, Depends(owned(Team))]


class TeamQuery(ListQuery):
    sort: Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"] = (
        Field(default="created_at", description=SORT_HELP)
    )
    q: SearchText = None


async def _heroes_counts(session: AsyncSession, team_ids: Sequence[uuid.UUID]) -> dict[Any, int]:
    if not team_ids:
        return {}
    rows = await session.execute(
        select(col(Hero.team_id), func.count())
        .where(col(Hero.team_id).in_(team_ids))
        .group_by(col(Hero.team_id))
    )
    return {team_id: count for team_id, count in rows}  # noqa: C416


async def _detail(session: AsyncSession, team: Team) -> TeamDetail:
    """The team as it is now, with its heroes counted in the same statement: one snapshot,
    so a team being deleted (its heroes leaving it) is never seen with a count of 0."""
    count = select(func.count()).where(col(Hero.team_id) == col(Team.id)).scalar_subquery()
    found = (
        await session.execute(
            select(Team, count)
            .where(col(Team.id) == team.id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if found is None:
        raise NotFound("team")  # deleted since the team was found
    return TeamDetail.model_validate(found[0], update={"heroes_count": found[1]})


def _etag(team: TeamDetail) -> str:
    return make_etag(team.version, team.heroes_count)


@router.get("")
async def list_teams(
    query: Annotated[TeamQuery, Query()], session: SessionDep, user: CurrentCaller, pager: PagerDep
) -> Page[TeamDetail]:
    """The caller's teams (everyone's for a superuser), one page at a time."""
    stmt = visible_to(select(Team), Team, user)
    if query.q is not None:
        stmt = stmt.where(col(Team.name_key).contains(fold(query.q), autoescape=True))
    teams, next_cursor, total = await pager.page(session, stmt, query, SORTS, col(Team.id))
    counts = await _heroes_counts(session, [t.id for t in teams])
    items = [
        TeamDetail.model_validate(t, update={"heroes_count": counts.get(t.id, 0)}) for t in teams
    ]
    return Page(items=items, next_cursor=next_cursor, total=total)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**created("team"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_team(
    body: TeamCreate, session: SessionDep, user: CurrentCaller, request: Request, response: Response
) -> TeamDetail:
    """Create a team owned by the caller."""
    team = Team.model_validate(body, update={"owner_id": user.id})
    session.add(team)
    await commit(session, NAME_TAKEN)
    detail = TeamDetail.model_validate(team, update={"heroes_count": 0})
    response.headers["Location"] = str(request.url_for("read_team", id=team.id))
    response.headers["ETag"] = _etag(detail)
    return detail


@router.get("/{id}", response_model=TeamDetail, responses=fetched("team"))
async def read_team(
    team: OwnedTeam, session: SessionDep, request: Request, response: Response
) -> TeamDetail | Response:
    """One team, with how many heroes it has. Honours `If-None-Match`."""
    detail = await _detail(session, team)
    etag = _etag(detail)
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = REVALIDATE
    return detail


@router.patch("/{id}", responses=CHANGE)
async def update_team(
    body: TeamUpdate, team: OwnedTeam, session: SessionDep, request: Request, response: Response
) -> TeamDetail:
    """Change a team's name or headquarters. Honours `If-Match`."""
    current = await _detail(session, team)
    require_match(request, _etag(current))
    changes = body.model_dump(exclude_unset=True)
    if changes:
        team.sqlmodel_update(changes)
        await commit(session, NAME_TAKEN)
    detail = TeamDetail.model_validate(team, update={"heroes_count": current.heroes_count})
    response.headers["ETag"] = _etag(detail)
    return detail


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
)
async def delete_team(team: OwnedTeam, session: SessionDep, request: Request) -> None:
    """Delete a team; its heroes stay, without a team. Honours `If-Match`."""
    require_match(request, _etag(await _detail(session, team)))
    await leave_team(session, team.id)
    await session.delete(team)
    await commit(session)


@router.get("/{id}/heroes", response_model=Page[HeroPublic], responses=ONE)
async def list_team_heroes(
    team: OwnedTeam,
    query: Annotated[HeroFilters, Query()],
    session: SessionDep,
    user: CurrentCaller,
    pager: PagerDep,
) -> Response:
    """The heroes of one team, one page at a time."""
    scoped = HeroQuery(**query.model_dump(), team_id=team.id)
    db = await Reader.of(await session.connection())
    page = await hero_page(db, pager, None if user.is_superuser else user.id, scoped)
    if not page["items"] and await session.get(Team, team.id, populate_existing=True) is None:
        # No heroes, because the team has just been deleted (on PostgreSQL each statement
        # sees what was committed before it): gone, rather than a team with none.
        raise NotFound("team")
    return json_response(page)
