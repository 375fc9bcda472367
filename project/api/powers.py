"""Powers you own."""

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status

from project.api.deps import Edit, RowsDep, editing
from project.data.paging import Page
from project.models import Power, PowerCreate, PowerPublic, PowerUpdate
from project.services import powers
from project.web.docs import changed, created, deleted, fetched, problems
from project.web.routing import api_router, created_response, json_body, read_response

router = api_router("/powers", ["powers"], status.HTTP_401_UNAUTHORIZED)
PowerId = Annotated[uuid.UUID, Path(description="The power's id.")]
OwnedPower = Annotated[Edit[Power], Depends(editing(powers.VIEW))]


@router.get("", response_model=Page[PowerPublic])
async def list_powers(query: Annotated[powers.PowerQuery, Query()], rows: RowsDep) -> Response:
    """The caller's powers (everyone's for a superuser), one page at a time."""
    return json_body(await rows.page(powers.VIEW, query))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PowerPublic,
    responses={**created("power"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_power(body: PowerCreate, rows: RowsDep, request: Request) -> Response:
    """Create a power owned by the caller."""
    power = await powers.create(rows.db, rows.caller.user_id, body, rows.caller)
    return created_response(request, power, powers.VIEW.etag(power))


@router.get("/{id}", response_model=PowerPublic, responses=fetched("power"))
async def read_power(id: PowerId, rows: RowsDep, request: Request) -> Response:
    """One power. Honours `If-None-Match`."""
    power = await rows.one(powers.VIEW, id)
    return read_response(request, power, powers.VIEW.etag(power))


@router.patch(
    "/{id}", response_model=PowerPublic, responses=changed("power", status.HTTP_409_CONFLICT)
)
async def update_power(body: PowerUpdate, power: OwnedPower) -> Response:
    """Change a power's name or description. Honours `If-Match`."""
    return await power.change(powers.update, body)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=deleted())
async def delete_power(power: OwnedPower) -> None:
    """Delete a power; heroes that had it lose it. Honours `If-Match`."""
    await power.delete(powers.delete)
