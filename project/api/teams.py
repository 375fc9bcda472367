"""Teams you own."""

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status

from project.api.deps import Edit, RowsDep, editing
from project.data.paging import Page
from project.models import HeroPublic, Team, TeamCreate, TeamDetail, TeamUpdate
from project.services import heroes, teams
from project.web.docs import changed, created, deleted, fetched, problems
from project.web.routing import api_router, created_response, json_body, read_response

router = api_router("/teams", ["teams"], status.HTTP_401_UNAUTHORIZED)
TeamId = Annotated[uuid.UUID, Path(description="The team's id.")]
OwnedTeam = Annotated[Edit[Team], Depends(editing(teams.VIEW))]


@router.get("", response_model=Page[TeamDetail])
async def list_teams(query: Annotated[teams.TeamQuery, Query()], rows: RowsDep) -> Response:
    """The caller's teams (everyone's for a superuser), one page at a time."""
    return json_body(await rows.page(teams.VIEW, query))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamDetail,
    responses={**created("team"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_team(body: TeamCreate, rows: RowsDep, request: Request) -> Response:
    """Create a team owned by the caller."""
    team = await teams.create(rows.db, rows.caller.user_id, body, rows.caller)
    return created_response(request, team, teams.VIEW.etag(team))


@router.get("/{id}", response_model=TeamDetail, responses=fetched("team"))
async def read_team(id: TeamId, rows: RowsDep, request: Request) -> Response:
    """One team, with how many heroes it has. Honours `If-None-Match`."""
    team = await rows.one(teams.VIEW, id)
    return read_response(request, team, teams.VIEW.etag(team))


@router.patch(
    "/{id}", response_model=TeamDetail, responses=changed("team", status.HTTP_409_CONFLICT)
)
async def update_team(body: TeamUpdate, team: OwnedTeam) -> Response:
    """Change a team's name or headquarters. Honours `If-Match`."""
    return await team.change(teams.update, body)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=deleted())
async def delete_team(team: OwnedTeam) -> None:
    """Delete a team; its heroes stay, without a team. Honours `If-Match`."""
    await team.delete(teams.delete)


@router.get(
    "/{id}/heroes", response_model=Page[HeroPublic], responses=problems(status.HTTP_404_NOT_FOUND)
)
async def list_team_heroes(
    id: TeamId, query: Annotated[heroes.HeroFilters, Query()], rows: RowsDep
) -> Response:
    """The heroes of one team, one page at a time."""
    await rows.one(teams.VIEW, id)  # the caller's team, or 404
    page = await rows.page(heroes.VIEW, heroes.HeroQuery(**query.model_dump(), team_id=id))
    if not page["items"]:
        # No heroes: perhaps the team was just deleted (each PostgreSQL statement sees that).
        await rows.one(teams.VIEW, id)
    return json_body(page)
