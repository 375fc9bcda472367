"""The baselines, served by the same uvicorn settings as the service.

* `/bare/...` answer the very JSON the service answers, from memory: FastAPI and HTTP alone.
* `/raw/...` do the database work by hand with the driver (aiosqlite or asyncpg, no ORM, no
  auth) and build the same JSON: one statement per read (a page included: the heroes with
  their team and powers joined; a team with its heroes counted), one INSERT per create.

Configured by environment variables that the harness sets: `BENCH_DATABASE_URL` (the
service's URL) and `BENCH_FIXTURE` (a JSON file of the service's own answers and ids).
"""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from project.config import Settings

HERO = (
    "h.id, h.created_at, h.updated_at, h.name, h.secret_name, h.age, h.owner_id, h.team_id,"
    " h.version"
)
TEAM = "t.id, t.created_at, t.updated_at, t.name, t.headquarters, t.owner_id, t.version"
POWER = "p.id, p.created_at, p.updated_at, p.name, p.description, p.owner_id, p.version"
# Column lists and placeholders only: every value is a bound parameter.
ONE_HERO = f"""
SELECT {HERO}, {TEAM}, {POWER} FROM heroes h
LEFT JOIN teams t ON t.id = h.team_id
LEFT JOIN hero_powers hp ON hp.hero_id = h.id LEFT JOIN powers p ON p.id = hp.power_id
WHERE h.id = {{0}} ORDER BY p.name_key"""  # noqa: S608
PAGE = f"""
SELECT {HERO}, {TEAM}, {POWER} FROM (
  SELECT * FROM heroes WHERE owner_id = {{0}} ORDER BY created_at, id LIMIT {{1}}
) h
LEFT JOIN teams t ON t.id = h.team_id
LEFT JOIN hero_powers hp ON hp.hero_id = h.id LEFT JOIN powers p ON p.id = hp.power_id
ORDER BY h.created_at, h.id, p.name_key"""  # noqa: S608
COUNT = "(SELECT count(*) FROM heroes c WHERE c.team_id = t.id)"
ONE_TEAM = f"SELECT {TEAM}, {COUNT} FROM teams t WHERE t.id = {{0}}"  # noqa: S608
ONE_POWER = f"SELECT {POWER} FROM powers p WHERE p.id = {{0}}"  # noqa: S608
TEAM_PAGE = f"""
SELECT {TEAM}, {COUNT} FROM (
  SELECT * FROM teams WHERE owner_id = {{0}} ORDER BY created_at, id LIMIT {{1}}
) t ORDER BY t.created_at, t.id"""  # noqa: S608
INSERT = """
INSERT INTO heroes (id, name, secret_name, age, team_id, owner_id, name_key, version,
                    created_at, updated_at)
VALUES ({0}, {1}, {2}, {3}, NULL, {4}, {5}, 1, {6}, {7})"""


class HeroIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    secret_name: str = Field(min_length=1, max_length=255)
    age: int | None = Field(default=None, ge=0, le=10_000)


class SQLite:
    """A fixed pool of aiosqlite connections with the service's pragmas."""

    def __init__(self, path: str, pool_size: int) -> None:
        self.path = path
        self.pool_size = pool_size
        self.idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.pool_size):
            conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=10)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
                await conn.execute(f"PRAGMA {pragma}")
            self.idle.put_nowait(conn)

    async def close(self) -> None:
        while not self.idle.empty():
            await self.idle.get_nowait().close()

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        conn = await self.idle.get()
        try:
            return list(await conn.execute_fetchall(sql, args))
        finally:
            self.idle.put_nowait(conn)

    async def execute(self, sql: str, *args: Any) -> None:
        conn = await self.idle.get()
        try:
            await conn.execute(sql, args)
        finally:
            self.idle.put_nowait(conn)

    @staticmethod
    def param(n: int) -> str:
        return "?"

    @staticmethod
    def uid(value: str) -> str:
        return str(uuid.UUID(value))

    @staticmethod
    def to_db_uid(value: uuid.UUID) -> str:
        return value.hex

    @staticmethod
    def ts(value: str) -> str:
        text = value.replace(" ", "T")
        return (text[:-7] if text.endswith(".000000") else text) + "Z"

    @staticmethod
    def to_db_ts(value: datetime) -> str:
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class Postgres:
    def __init__(self, dsn: str, pool_size: int) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=self.pool_size, max_size=self.pool_size
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        assert self.pool is not None
        return await self.pool.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        assert self.pool is not None
        await self.pool.execute(sql, *args)

    @staticmethod
    def param(n: int) -> str:
        return f"${n}"

    @staticmethod
    def uid(value: uuid.UUID) -> str:
        return str(value)

    @staticmethod
    def to_db_uid(value: uuid.UUID) -> uuid.UUID:
        return value

    @staticmethod
    def ts(value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @staticmethod
    def to_db_ts(value: datetime) -> datetime:
        return value


Database = SQLite | Postgres


def _database(url: str) -> Database:
    # As many connections as the service keeps by default on this database (DB_POOL_SIZE).
    pool_size = Settings(_env_file=None, database_url=url).db_pool_size  # type: ignore[call-arg]
    if url.startswith("sqlite"):
        return SQLite(url.split(":///", 1)[1], pool_size)
    return Postgres(url.replace("postgresql+asyncpg://", "postgresql://"), pool_size)


def _team(db: Database, r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": db.uid(r[0]),
        "created_at": db.ts(r[1]),
        "updated_at": db.ts(r[2]),
        "name": r[3],
        "headquarters": r[4],
        "owner_id": db.uid(r[5]),
        "version": r[6],
    }


def _team_detail(db: Database, r: Sequence[Any]) -> dict[str, Any]:
    return {**_team(db, r), "heroes_count": r[7]}


def _hero(db: Database, r: Sequence[Any]) -> dict[str, Any]:
    team = None if r[9] is None else _team(db, r[9:16])
    return {
        "id": db.uid(r[0]),
        "created_at": db.ts(r[1]),
        "updated_at": db.ts(r[2]),
        "name": r[3],
        "secret_name": r[4],
        "age": r[5],
        "owner_id": db.uid(r[6]),
        "team_id": db.uid(r[7]) if r[7] is not None else None,
        "version": r[8],
        "team": team,
        "powers": [],
    }


def _heroes(db: Database, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Heroes from rows grouped by hero, a row per power (team and power columns joined)."""
    heroes: list[dict[str, Any]] = []
    last = None
    for r in rows:
        if r[0] != last:
            heroes.append(_hero(db, r))
            last = r[0]
        if r[16] is not None:
            heroes[-1]["powers"].append(_power(db, r[16:]))
    return heroes


def _power(db: Database, r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": db.uid(r[0]),
        "created_at": db.ts(r[1]),
        "updated_at": db.ts(r[2]),
        "name": r[3],
        "description": r[4],
        "owner_id": db.uid(r[5]),
        "version": r[6],
    }


def create_app() -> FastAPI:
    db = _database(os.environ["BENCH_DATABASE_URL"])
    with open(os.environ["BENCH_FIXTURE"]) as file:
        fixture = json.load(file)
    owner = db.to_db_uid(uuid.UUID(fixture["owner_id"]))
    p = db.param
    one_hero = ONE_HERO.format(p(1))
    page = PAGE.format(p(1), p(2))
    insert = INSERT.format(*(p(n) for n in range(1, 9)))
    one_team, one_power = ONE_TEAM.format(p(1)), ONE_POWER.format(p(1))
    team_page = TEAM_PAGE.format(p(1), p(2))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.open()
        yield
        await db.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None)

    @app.get("/bare/hero")
    async def bare_hero() -> JSONResponse:
        return JSONResponse(fixture["hero"])

    @app.get("/bare/heroes")
    async def bare_page() -> JSONResponse:
        return JSONResponse(fixture["page"])

    @app.get("/bare/team")
    async def bare_team() -> JSONResponse:
        return JSONResponse(fixture["team"])

    @app.get("/bare/power")
    async def bare_power() -> JSONResponse:
        return JSONResponse(fixture["power"])

    @app.get("/bare/teams")
    async def bare_teams() -> JSONResponse:
        return JSONResponse(fixture["teams"])

    @app.post("/bare/heroes")
    async def bare_create(body: HeroIn) -> JSONResponse:
        return JSONResponse(fixture["created"], status_code=201)

    @app.get("/raw/heroes/{hero_id}")
    async def raw_hero(hero_id: uuid.UUID) -> JSONResponse:
        heroes = _heroes(db, await db.fetch(one_hero, db.to_db_uid(hero_id)))
        if not heroes:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(heroes[0])

    @app.get("/raw/heroes")
    async def raw_page(limit: int = 50) -> JSONResponse:
        heroes = _heroes(db, await db.fetch(page, owner, limit + 1))
        cursor = heroes[limit - 1]["id"] if len(heroes) > limit else None
        return JSONResponse({"items": heroes[:limit], "next_cursor": cursor})

    @app.get("/raw/teams/{team_id}")
    async def raw_team(team_id: uuid.UUID) -> JSONResponse:
        rows = await db.fetch(one_team, db.to_db_uid(team_id))
        if not rows:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(_team_detail(db, rows[0]))

    @app.get("/raw/powers/{power_id}")
    async def raw_power(power_id: uuid.UUID) -> JSONResponse:
        rows = await db.fetch(one_power, db.to_db_uid(power_id))
        if not rows:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(_power(db, rows[0]))

    @app.get("/raw/teams")
    async def raw_teams(limit: int = 50) -> JSONResponse:
        teams = [_team_detail(db, r) for r in await db.fetch(team_page, owner, limit + 1)]
        cursor = teams[limit - 1]["id"] if len(teams) > limit else None
        return JSONResponse({"items": teams[:limit], "next_cursor": cursor})

    @app.post("/raw/heroes", status_code=201)
    async def raw_create(body: HeroIn) -> JSONResponse:
        hero_id, now = uuid.uuid4(), datetime.now(UTC)
        await db.execute(
            insert,
            db.to_db_uid(hero_id),
            body.name,
            body.secret_name,
            body.age,
            owner,
            body.name.casefold(),
            db.to_db_ts(now),
            db.to_db_ts(now),
        )
        stamp = now.isoformat().replace("+00:00", "Z")
        created = {
            "id": str(hero_id),
            "created_at": stamp,
            "updated_at": stamp,
            **body.model_dump(),
            "owner_id": fixture["owner_id"],
            "team_id": None,
            "version": 1,
            "team": None,
            "powers": [],
        }
        return JSONResponse(created, status_code=201)

    return app
