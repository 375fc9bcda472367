from typing import Annotated, Literal

from fastapi import Depends, Query, Request, Response, status
from pydantic import Field
from sqlalchemy import select
from sqlmodel import col

from project.conditional import REVALIDATE, make_etag, not_modified, require_match
from project.database import SessionDep, commit
from project.models import Power, PowerCreate, PowerPublic, PowerUpdate
from project.ownership import owned, visible_to
from project.paging import SORT_HELP, ListQuery, Page, PagerDep, SearchText
from project.relations import lose_power
from project.routing import api_router, changed, created, fetched, problems
from project.security import CurrentCaller
from project.text import fold

router = api_router("/powers", ["powers"], status.HTTP_401_UNAUTHORIZED)

NAME_TAKEN = "The owner already has a power with this name (names are compared case-insensitively)."
SORTS = {"name": col(Power.name_key), "created_at": col(Power.created_at)}

OwnedPower = Annotated[Power, Depends(owned(Power))]


class PowerQuery(ListQuery):
    sort: Literal["name", "-name", "created_at", "-created_at"] = Field(
        default="created_at", description=SORT_HELP
    )
    q: SearchText = None


def _respond(power: Power, response: Response) -> PowerPublic:
    response.headers["ETag"] = make_etag(power.version)
    return PowerPublic.model_validate(power)


@router.get("")
async def list_powers(
    query: Annotated[PowerQuery, Query()], session: SessionDep, user: CurrentCaller, pager: PagerDep
) -> Page[PowerPublic]:
    """The caller's powers (everyone's for a superuser), one page at a time."""
    stmt = visible_to(select(Power), Power, user)
    if query.q is not None:
        stmt = stmt.where(col(Power.name_key).contains(fold(query.q), autoescape=True))
    powers, next_cursor, total = await pager.page(session, stmt, query, SORTS, col(Power.id))
    return Page(
        items=[PowerPublic.model_validate(p) for p in powers], next_cursor=next_cursor, total=total
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**created("power"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_power(
    body: PowerCreate,
    session: SessionDep,
    user: CurrentCaller,
    request: Request,
    response: Response,
) -> PowerPublic:
    """Create a power owned by the caller."""
    power = Power.model_validate(body, update={"owner_id": user.id})
    session.add(power)
    await commit(session, NAME_TAKEN)
    response.headers["Location"] = str(request.url_for("read_power", id=power.id))
    return _respond(power, response)


@router.get("/{id}", response_model=PowerPublic, responses=fetched("power"))
async def read_power(
    power: OwnedPower, request: Request, response: Response
) -> PowerPublic | Response:
    """One power. Honours `If-None-Match`."""
    if (unchanged := not_modified(request, make_etag(power.version))) is not None:
        return unchanged
    response.headers["Cache-Control"] = REVALIDATE
    return _respond(power, response)


@router.patch("/{id}", responses=changed("power", status.HTTP_409_CONFLICT))
async def update_power(
    body: PowerUpdate, power: OwnedPower, session: SessionDep, request: Request, response: Response
) -> PowerPublic:
    """Change a power's name or description. Honours `If-Match`."""
    require_match(request, make_etag(power.version))
    changes = body.model_dump(exclude_unset=True)
    if changes:
        power.sqlmodel_update(changes)
        await commit(session, NAME_TAKEN)
    return _respond(power, response)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED),
)
async def delete_power(power: OwnedPower, session: SessionDep, request: Request) -> None:
    """Delete a power; heroes that had it lose it. Honours `If-Match`."""
    require_match(request, make_etag(power.version))
    await lose_power(session, power.id)
    await session.delete(power)
    await commit(session)
