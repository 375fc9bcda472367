import uuid
from typing import Annotated, Any, Literal, Self

from fastapi import Depends, Path, Query, Request, Response, status
from pydantic import Field, model_validator
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from project.conditional import REVALIDATE, make_etag, not_modified, require_match
from project.database import SessionDep, commit, get_database
from project.direct import Reader, reader
from project.errors import AuthenticationFailed, InvalidField, NotFound
from project.hero_rows import (
    FILTERS,
    HERO_FIELDS,
    SORTS,
    STATEMENTS,
    TEAM_FIELDS,
    Mode,
    Shape,
    heroes_of,
    insert_statement,
    page_statement,
    read_statement,
    team_statement,
)
from project.models import AGE_MAX, Hero, HeroCreate, HeroPublic, HeroUpdate, Power, Team, utcnow
from project.ownership import owned, referenced
from project.paging import (
    SORT_HELP,
    ListQuery,
    Page,
    Pager,
    PagerDep,
    SearchText,
    like_pattern,
)
from project.routing import api_router, changed, created, fetched, problems
from project.security import AccessClaims, Claims, check_principal, get_caller
from project.text import fold

router = api_router("/heroes", ["heroes"], status.HTTP_401_UNAUTHORIZED)

# Related rows are loaded up front, in one query per relationship for a whole page.
EMBEDDED = (selectinload(Hero.team), selectinload(Hero.powers))  # type: ignore[arg-type]
OwnedHero = Annotated[Hero, Depends(owned(Hero, *EMBEDDED))]


class HeroFilters(ListQuery):
    sort: Literal[
        "name", "-name", "age", "-age", "created_at", "-created_at", "updated_at", "-updated_at"
    ] = Field(
        default="created_at",
        description=f"{SORT_HELP} A hero of unknown age counts as younger than any other.",
    )
    q: SearchText = None
    min_age: int | None = Field(
        default=None, ge=0, le=AGE_MAX, description="Heroes this old or older (of a known age)."
    )
    max_age: int | None = Field(
        default=None, ge=0, le=AGE_MAX, description="Heroes this old or younger (of a known age)."
    )
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


def row_etag(hero: dict[str, Any]) -> str:
    """`hero_etag` of a hero built from rows: a dict shaped like HeroPublic."""
    team = (hero["team"]["id"], hero["team"]["version"]) if hero["team"] else None
    return make_etag(hero["version"], team, [(p["id"], p["version"]) for p in hero["powers"]])


async def hero_page(
    db: Reader, pager: Pager, owner_id: uuid.UUID | None, query: HeroQuery
) -> dict[str, Any]:
    """One page of the heroes `owner_id` owns (everyone's for None): the list envelope."""
    filters = frozenset(f for f in FILTERS if getattr(query, f) is not None)
    values = {f: getattr(query, f) for f in filters}
    if query.q is not None:
        values["q"] = like_pattern(query.q)
    values["owner_id"] = owner_id
    mode: Mode = "first" if query.cursor is None else "after"
    shape: Shape = (owner_id is not None, query.sort, mode, filters)
    if query.cursor is not None:
        key = SORTS[query.sort.lstrip("-")]
        values["after_key"], values["after_id"] = pager.decode(query, key)
    page = STATEMENTS.get(db.dialect, shape, lambda: page_statement(*shape))
    heroes = heroes_of(await db.fetch(page, limit=query.limit + 1, **values))
    next_cursor = None
    if len(heroes) > query.limit:
        heroes = heroes[: query.limit]
        last = heroes[-1][1]
        next_cursor = pager.encode(query, last[-1], last[0])
    body: dict[str, Any] = {"items": [hero for hero, _ in heroes], "next_cursor": next_cursor}
    if query.include_total:
        total: Shape = (owner_id is not None, query.sort, "total", filters)
        count = STATEMENTS.get(db.dialect, total, lambda: page_statement(*total))
        [(body["total"],)] = await db.fetch(count, **values)
    return body


def json_response(body: dict[str, Any]) -> Response:
    return Response(to_json(body), media_type="application/json")


def _respond(hero: Hero, response: Response) -> HeroPublic:
    public = HeroPublic.model_validate(hero)
    response.headers["ETag"] = hero_etag(public)
    return public


@router.get("", response_model=Page[HeroPublic])
async def list_heroes(
    query: Annotated[HeroQuery, Query()], claims: AccessClaims, request: Request, pager: PagerDep
) -> Response:
    """The caller's heroes (everyone's for a superuser), with team and powers embedded."""
    async with reader(get_database(request).engine, idempotent=True) as db:
        user_id, superuser = await check_principal(db, claims)
        return json_response(await hero_page(db, pager, None if superuser else user_id, query))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=HeroPublic,
    responses={**created("hero"), **problems(status.HTTP_409_CONFLICT)},
)
async def create_hero(
    body: HeroCreate, claims: AccessClaims, request: Request, response: Response
) -> HeroPublic | Response:
    """Create a hero owned by the caller, optionally in one of the caller's teams and with
    some of the caller's powers."""
    if not body.power_ids:  # one row: a single INSERT, straight on the driver
        return await _insert(body, claims, request)
    async with get_database(request).session(write=True) as session:
        user = await get_caller(session, claims)
        hero = Hero.model_validate(
            body.model_dump(exclude={"power_ids"}), update={"owner_id": user.id}
        )
        hero.team = await _team(session, body.team_id, user.id)
        hero.powers = await _powers(session, body.power_ids, user.id)
        session.add(hero)
        await commit(session)
    response.headers["Location"] = _location(request, hero.id)
    return _respond(hero, response)


def _location(request: Request, hero_id: uuid.UUID) -> str:
    # What url_for("read_hero") gives, without its search through every route.
    return str(request.url.replace(path=f"{request.url.path.rstrip('/')}/{hero_id}", query=""))


async def _insert(body: HeroCreate, claims: Claims, request: Request) -> Response:
    # The ORM's before-insert hooks (models.py) would set name_key and updated_at: so here.
    now = utcnow()
    hero: dict[str, Any] = {"id": uuid.uuid4(), "created_at": now, "updated_at": now}
    hero |= body.model_dump(include={"name", "secret_name", "age"})
    team = None
    hero |= {"owner_id": claims.user_id, "team_id": body.team_id, "version": 1}
    database = get_database(request)
    async with reader(database.engine) as db:
        if body.team_id is not None:
            # Read first: once the hero is in, the team may go (a concurrent delete), and
            # then the hero as created is no longer there to be read.
            teams = await db.fetch(
                STATEMENTS.get(db.dialect, "team", team_statement), team_id=body.team_id
            )
        insert_hero = STATEMENTS.get(db.dialect, "insert", insert_statement)
        async with database.write_turn():
            inserted = await db.fetch(
                insert_hero, name_key=fold(body.name), sid=claims.session_id, **hero
            )
        if not inserted:
            await check_principal(db, claims)  # 401 if the session is why
            raise InvalidField(["body", "team_id"], f"No team with id {body.team_id}.")
        if body.team_id is not None:
            team = dict(zip(TEAM_FIELDS, teams[0], strict=True))  # the insert found it
    body_json = {**{f: hero[f] for f in HERO_FIELDS}, "team": team, "powers": []}
    headers = {"Location": _location(request, hero["id"]), "ETag": row_etag(body_json)}
    return Response(
        to_json(body_json), status.HTTP_201_CREATED, headers, media_type="application/json"
    )


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
async def read_hero(
    claims: AccessClaims,
    request: Request,
    id: uuid.UUID = Path(description="The hero's id."),
) -> Response:
    """One hero, with team and powers embedded. Honours `If-None-Match`."""
    engine = get_database(request).engine
    async with reader(engine, idempotent=True) as db:
        statement = STATEMENTS.get(db.dialect, "read", read_statement)
        rows = await db.fetch(statement, hero_id=id, sid=claims.session_id, uid=claims.user_id)
    if not rows:
        raise AuthenticationFailed()
    if rows[0][0] is None:
        raise NotFound("hero")
    [(hero, _)] = heroes_of(rows)
    etag = row_etag(hero)
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    headers = {"ETag": etag, "Cache-Control": REVALIDATE}
    return Response(to_json(hero), media_type="application/json", headers=headers)


@router.patch("/{id}", responses=changed("hero"))
async def update_hero(
    body: HeroUpdate, hero: OwnedHero, session: SessionDep, request: Request, response: Response
) -> HeroPublic:
    """Change a hero; `power_ids` replaces the whole set. Honours `If-Match`."""
    require_match(request, hero_etag(hero))
    sent = body.model_fields_set
    changes = body.model_dump(exclude_unset=True, exclude={"team_id", "power_ids"})
    team = await _team(session, body.team_id, hero.owner_id) if "team_id" in sent else hero.team
    powers = hero.powers
    if "power_ids" in sent:
        powers = await _powers(session, body.power_ids, hero.owner_id)
    if (
        any(getattr(hero, field) != value for field, value in changes.items())
        or team is not hero.team  # the session holds one object per row
        or {power.id for power in powers} != {power.id for power in hero.powers}
    ):
        hero.sqlmodel_update(changes)
        hero.team, hero.powers = team, powers
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
