"""Heroes you own, with their team and powers embedded."""

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status

from project.api.deps import Edit, RowsDep, editing
from project.data.paging import Page
from project.models import Hero, HeroCreate, HeroPublic, HeroUpdate
from project.services import heroes
from project.web.docs import changed, created, deleted, fetched, problems
from project.web.routing import api_router, created_response, json_body, read_response

router = api_router("/heroes", ["heroes"], status.HTTP_401_UNAUTHORIZED)
HeroId = Annotated[uuid.UUID, Path(description="The hero's id.")]
OwnedHero = Annotated[Edit[Hero], Depends(editing(heroes.VIEW))]


@router.get("", response_model=Page[HeroPublic])
async def list_heroes(query: Annotated[heroes.HeroQuery, Query()], rows: RowsDep) -> Response:
    """The caller's heroes (everyone's for a superuser), with team and powers embedded."""
    return json_body(await rows.page(heroes.VIEW, query))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=HeroPublic,
    responses={**created("hero"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_hero(body: HeroCreate, rows: RowsDep, request: Request) -> Response:
    """Create a hero owned by the caller, optionally in one of the caller's teams and with
    some of the caller's powers."""
    hero = await heroes.create(rows.db, rows.caller.user_id, body, rows.caller)
    return created_response(request, hero, heroes.VIEW.etag(hero))


@router.get("/{id}", response_model=HeroPublic, responses=fetched("hero"))
async def read_hero(id: HeroId, rows: RowsDep, request: Request) -> Response:
    """One hero, with team and powers embedded. Honours `If-None-Match`."""
    hero = await rows.one(heroes.VIEW, id)
    return read_response(request, hero, heroes.VIEW.etag(hero))


@router.patch("/{id}", response_model=HeroPublic, responses=changed("hero"))
async def update_hero(body: HeroUpdate, hero: OwnedHero) -> Response:
    """Change a hero; `power_ids` replaces the whole set. Honours `If-Match`."""
    return await hero.change(heroes.update, body)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=deleted())
async def delete_hero(hero: OwnedHero) -> None:
    """Delete a hero. Honours `If-Match`."""
    await hero.delete(heroes.delete)
