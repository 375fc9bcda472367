"""Heroes as rows: the statements of the hot paths, compiled once per dialect and run on
the driver (project/direct.py), and the JSON built straight from their rows (HeroPublic's
fields, in its order). Reading and creating one hero fold the check of the caller's token
session into the same statement; a page costs that check and one statement."""

from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    true,
    tuple_,
)
from sqlmodel import col

from project.direct import AnyInsert, AnySelect, Statements
from project.models import (
    AuthSession,
    Hero,
    HeroPowerLink,
    HeroPublic,
    Power,
    PowerPublic,
    Team,
    TeamPublic,
    User,
)
from project.ownership import visible_in_query
from project.security import live_session

SORTS = {
    "name": col(Hero.name_key),
    "age": func.coalesce(col(Hero.age), -1),  # heroes of unknown age sort first
    "created_at": col(Hero.created_at),
    "updated_at": col(Hero.updated_at),
}

# Reads run one statement on the driver (project/direct.py) and answer JSON built straight
# from the rows: HeroPublic's fields, in its order, with the team and powers joined in.
HERO_FIELDS = tuple(f for f in HeroPublic.model_fields if f not in ("team", "powers"))
TEAM_FIELDS, POWER_FIELDS = tuple(TeamPublic.model_fields), tuple(PowerPublic.model_fields)
COLUMNS = (
    *(col(getattr(Hero, f)) for f in HERO_FIELDS),
    *(col(getattr(Team, f)) for f in TEAM_FIELDS),
    *(col(getattr(Power, f)) for f in POWER_FIELDS),
)
TEAM = slice(len(HERO_FIELDS), len(HERO_FIELDS) + len(TEAM_FIELDS))
POWER = slice(TEAM.stop, TEAM.stop + len(POWER_FIELDS))
STATEMENTS = Statements()
FILTERS = ("q", "team_id", "min_age", "max_age", "power_id")
Mode = Literal["first", "after", "total"]
Shape = tuple[bool, str, Mode, frozenset[str]]  # what fixes a page statement's SQL


def read_statement() -> AnySelect:
    """The hero with its team and powers (a row per power), joined to the caller's live
    session: no row at all means the token's session or user is gone (401), a row without
    a hero that there is no such hero the caller may see (404)."""
    stmt = embed(
        select(*COLUMNS)
        .select_from(User)
        .join(AuthSession, true())
        .outerjoin(Hero, (col(Hero.id) == bindparam("hero_id")) & visible_in_query(Hero)),
        col(Hero.id),
        col(Hero.team_id),
    ).where(live_session(bindparam("sid"), bindparam("uid")))
    return stmt.order_by(col(Power.name_key))


def embed(stmt: AnySelect, hero_id: Any, team_id: Any) -> AnySelect:
    return (
        stmt.outerjoin(Team, col(Team.id) == team_id)
        .outerjoin(HeroPowerLink, col(HeroPowerLink.hero_id) == hero_id)
        .outerjoin(Power, col(Power.id) == col(HeroPowerLink.power_id))
    )


def heroes_of(rows: list[tuple[Any, ...]]) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
    """Each hero as a dict shaped like HeroPublic, with its first row; rows come grouped
    by hero, powers in name order. Heroes that share a team or a power share its dict."""
    heroes: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
    embedded: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if not heroes or heroes[-1][1][0] != row[0]:
            hero = dict(zip(HERO_FIELDS, row, strict=False))
            team_id = row[TEAM.start]
            if team_id is not None and team_id not in embedded:
                embedded[team_id] = dict(zip(TEAM_FIELDS, row[TEAM], strict=True))
            hero["team"] = None if team_id is None else embedded[team_id]
            hero["powers"] = []
            heroes.append((hero, row))
        power_id = row[POWER.start]
        if power_id is not None:
            if power_id not in embedded:
                embedded[power_id] = dict(zip(POWER_FIELDS, row[POWER], strict=True))
            heroes[-1][0]["powers"].append(embedded[power_id])
    return heroes


def page_statement(owned: bool, sort: str, mode: Mode, filters: frozenset[str]) -> AnySelect:
    key = cast(ColumnElement[Any], SORTS[sort.lstrip("-")])
    descending = sort.startswith("-")
    heroes = select(*(col(getattr(Hero, f)) for f in HERO_FIELDS), key.label("sort_key"))
    if owned:
        heroes = heroes.where(col(Hero.owner_id) == bindparam("owner_id"))
    conditions: dict[str, ColumnElement[bool]] = {
        "q": col(Hero.name_key).like(bindparam("q"), escape="/"),
        "team_id": col(Hero.team_id) == bindparam("team_id"),
        "min_age": col(Hero.age) >= bindparam("min_age"),
        "max_age": col(Hero.age) <= bindparam("max_age"),
        "power_id": col(Hero.id).in_(
            select(col(HeroPowerLink.hero_id)).where(
                col(HeroPowerLink.power_id) == bindparam("power_id")
            )
        ),
    }
    heroes = heroes.where(*(conditions[f] for f in sorted(filters)))
    if mode == "total":
        return select(func.count()).select_from(heroes.subquery())
    if mode == "after":
        position = tuple_(key, col(Hero.id))
        bound = tuple_(bindparam("after_key", type_=key.type), bindparam("after_id", type_=Uuid()))
        heroes = heroes.where(position < bound if descending else position > bound)
    order = (key.desc(), col(Hero.id).desc()) if descending else (key, col(Hero.id))
    page = heroes.order_by(*order).limit(bindparam("limit", type_=Integer)).subquery("page")
    stmt = select(*page.c[: len(HERO_FIELDS)], *COLUMNS[len(HERO_FIELDS) :], page.c.sort_key)
    stmt = embed(stmt.select_from(page), page.c.id, page.c.team_id)
    ends = (
        (page.c.sort_key.desc(), page.c.id.desc()) if descending else (page.c.sort_key, page.c.id)
    )
    return stmt.order_by(*ends, col(Power.name_key))


def insert_statement() -> AnyInsert:
    """The new hero, if the token's session is live and its team (when named) is the
    caller's: RETURNING says whether, and a follow-up check says which failed."""
    heroes = cast(Table, Hero.__table__)  # type: ignore[attr-defined]
    names = [*HERO_FIELDS, "name_key"]
    team_id = bindparam("team_id", type_=heroes.c.team_id.type)
    owner_id = bindparam("owner_id", type_=heroes.c.owner_id.type)
    caller = (
        select(col(User.id))
        .join(AuthSession, true())
        .where(live_session(bindparam("sid"), owner_id))
    )
    owned_team = select(col(Team.id)).where(col(Team.id) == team_id, col(Team.owner_id) == owner_id)
    row = select(*(bindparam(n, type_=heroes.c[n].type) for n in names)).where(
        caller.exists(), team_id.is_(None) | owned_team.exists()
    )
    return insert(heroes).from_select(names, row).returning(heroes.c.id)


def team_statement() -> AnySelect:
    return select(*COLUMNS[TEAM]).where(col(Team.id) == bindparam("team_id"))
