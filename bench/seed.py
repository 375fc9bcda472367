"""The benchmark's data: accounts and the S1 hero through the API (as a client makes them),
bulk heroes with raw SQL (a recursive CTE on SQLite, generate_series on PostgreSQL)."""

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from project.data.paging import Pager
from project.database import migrate
from project.services.heroes import HeroQuery

PASSWORD = "bench password 1"  # noqa: S105
PAGE_TEAMS = 50  # the main user's teams beyond the S1 team: S2's page of teams
PAGE_HEROES = 4  # heroes of each of those teams: S2's page of heroes
POOL = 100  # heroes S6 reads and patches
PAGE_EPOCH = 1735689600  # 2025-01-01: older than the S1 hero, so the first page is stable
DEEP_EPOCH = 1767225600  # 2026-01-01
DEEP_LIMIT = 20
S3_BODY = {"name": "Bench Hero", "secret_name": "Load Tester", "age": 30}

SQLITE_HEROES = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO heroes (id, name, secret_name, age, team_id, owner_id, name_key, version,
                    created_at, updated_at)
SELECT lower(hex(randomblob(16))), :prefix || i, 'Secret ' || i, i % 100, :team, :owner,
       lower(:prefix) || i, 1,
       strftime('%Y-%m-%d %H:%M:%S', :epoch + i, 'unixepoch') || '.000000',
       strftime('%Y-%m-%d %H:%M:%S', :epoch + i, 'unixepoch') || '.000000'
FROM n"""
SQLITE_TEAMS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO teams (id, name, headquarters, owner_id, name_key, version, created_at, updated_at)
SELECT lower(hex(randomblob(16))), 'Team ' || i, 'HQ ' || i, :owner, 'team ' || i, 1,
       strftime('%Y-%m-%d %H:%M:%S', :epoch + i, 'unixepoch') || '.000000',
       strftime('%Y-%m-%d %H:%M:%S', :epoch + i, 'unixepoch') || '.000000'
FROM n"""
POSTGRES_TEAMS = """
INSERT INTO teams (id, name, headquarters, owner_id, name_key, version, created_at, updated_at)
SELECT gen_random_uuid(), 'Team ' || i, 'HQ ' || i, CAST(:owner AS uuid), 'team ' || i, 1,
       to_timestamp(:epoch + i), to_timestamp(:epoch + i)
FROM generate_series(0, CAST(:count AS integer) - 1) AS i"""
POSTGRES_HEROES = """
INSERT INTO heroes (id, name, secret_name, age, team_id, owner_id, name_key, version,
                    created_at, updated_at)
SELECT gen_random_uuid(), CAST(:prefix AS text) || i, 'Secret ' || i, i % 100,
       CAST(:team AS uuid), CAST(:owner AS uuid), lower(CAST(:prefix AS text)) || i, 1,
       to_timestamp(:epoch + i), to_timestamp(:epoch + i)
FROM generate_series(0, CAST(:count AS integer) - 1) AS i"""


@dataclass
class Fixture:
    """What the scenarios and the baselines need to know about the seeded data."""

    owner_id: str
    token: str
    hero_id: str
    team_id: str
    power_id: str
    pool_ids: list[str]
    deep_token: str
    deep_cursor: str
    login_form: str
    secret: str  # the run's SECRET_KEY, for poking at the service by hand
    hero: dict[str, Any]
    page: dict[str, Any]
    team: dict[str, Any]
    power: dict[str, Any]
    teams: dict[str, Any]
    created: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _account(api: httpx.Client, url: str, email: str) -> tuple[str, str]:
    """Register, verify the email (as its emailed link would: production lets only verified
    accounts sign in) and log in; the user's id and access token."""
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    registered.raise_for_status()
    asyncio.run(_verified(url, email))
    login = api.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    login.raise_for_status()
    return registered.json()["id"], login.json()["access_token"]


async def _verified(url: str, email: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            verify = "UPDATE users SET email_verified_at = CURRENT_TIMESTAMP WHERE email = :email"
            await conn.execute(text(verify), {"email": email})
    finally:
        await engine.dispose()


def _post(api: httpx.Client, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _db_uuid(value: str, sqlite: bool) -> str:
    return uuid.UUID(value).hex if sqlite else value


async def _bulk(
    url: str, owner: str, deep_owner: str, deep_count: int
) -> tuple[list[str], Any, uuid.UUID]:
    """Insert the page teams, their heroes and the deep table; the pool's ids and the deep
    position."""
    sqlite = url.startswith("sqlite")
    engine = create_async_engine(url)
    insert = text(SQLITE_HEROES if sqlite else POSTGRES_HEROES)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(SQLITE_TEAMS if sqlite else POSTGRES_TEAMS),
                {"owner": _db_uuid(owner, sqlite), "count": PAGE_TEAMS, "epoch": PAGE_EPOCH},
            )
            teams = (
                await conn.execute(
                    text(
                        "SELECT id FROM teams WHERE owner_id = :owner AND name LIKE 'Team %'"
                        " ORDER BY created_at"
                    ),
                    {"owner": _db_uuid(owner, sqlite)},
                )
            ).scalars()
            batches = [
                (f"Page hero {n:02} ", owner, team_id, PAGE_HEROES, PAGE_EPOCH + PAGE_HEROES * n)
                for n, team_id in enumerate(teams)
            ]
            batches.append(("Deep hero ", deep_owner, None, deep_count, DEEP_EPOCH))
            for prefix, who, team_id, count, epoch in batches:
                params = {"prefix": prefix, "count": count, "epoch": epoch}
                params["owner"] = _db_uuid(who, sqlite)
                params["team"] = team_id
                await conn.execute(insert, params)
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
            pool = (
                await conn.execute(
                    text(
                        "SELECT id FROM heroes WHERE owner_id = :owner AND name LIKE 'Page%'"
                        " ORDER BY created_at, id LIMIT :n"
                    ),
                    {"owner": _db_uuid(owner, sqlite), "n": POOL},
                )
            ).scalars()
            pool_ids = [str(uuid.UUID(str(i))) for i in pool]
            created_at, row_id = (
                await conn.execute(
                    text(
                        "SELECT created_at, id FROM heroes WHERE owner_id = :owner"
                        " ORDER BY created_at, id LIMIT 1 OFFSET :skip"
                    ),
                    {"owner": _db_uuid(deep_owner, sqlite), "skip": deep_count * 9 // 10},
                )
            ).one()
    finally:
        await engine.dispose()
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at).replace(tzinfo=UTC)
    return pool_ids, created_at, uuid.UUID(str(row_id))


def prepare(url: str) -> None:
    asyncio.run(migrate(url))


def seed(url: str, api_url: str, secret: str, deep_count: int, fixture_path: Path) -> Fixture:
    """Seed through the running service at `api_url` and write the fixture file."""
    with httpx.Client(base_url=api_url, timeout=60) as api:
        owner, token = _account(api, url, "bench@example.com")
        deep_owner, deep_token = _account(api, url, "deep@example.com")
        _account(api, url, "login@example.com")
        team = _post(api, token, "/api/v1/teams", {"name": "Avengers", "headquarters": "NYC"})
        powers = [
            _post(api, token, "/api/v1/powers", {"name": name, "description": f"{name}."})
            for name in ("Strength", "Flight")
        ]
        hero = _post(
            api,
            token,
            "/api/v1/heroes",
            {
                "name": "Spider-Boy",
                "secret_name": "Pedro Parqueador",
                "age": 16,
                "team_id": team["id"],
                "power_ids": [p["id"] for p in powers],
            },
        )
        pool_ids, deep_key, deep_id = asyncio.run(_bulk(url, owner, deep_owner, deep_count))
        cursor = Pager(secret).encode(HeroQuery(limit=DEEP_LIMIT), deep_key, deep_id)
        auth = {"Authorization": f"Bearer {token}"}
        read = api.get(f"/api/v1/heroes/{hero['id']}", headers=auth).json()
        page = api.get("/api/v1/heroes", params={"limit": 50}, headers=auth).json()
        team_read = api.get(f"/api/v1/teams/{team['id']}", headers=auth).json()
        power_read = api.get(f"/api/v1/powers/{powers[0]['id']}", headers=auth).json()
        teams = api.get("/api/v1/teams", params={"limit": 50}, headers=auth).json()
        created = _post(api, token, "/api/v1/heroes", S3_BODY)
        deep = api.get(
            "/api/v1/heroes",
            params={"limit": DEEP_LIMIT, "cursor": cursor},
            headers={"Authorization": f"Bearer {deep_token}"},
        )
        deep.raise_for_status()
        assert len(deep.json()["items"]) == DEEP_LIMIT, deep.text
    fixture = Fixture(
        owner_id=owner,
        token=token,
        hero_id=hero["id"],
        team_id=team["id"],
        power_id=powers[0]["id"],
        pool_ids=pool_ids,
        deep_token=deep_token,
        deep_cursor=cursor,
        secret=secret,
        login_form=f"username=login%40example.com&password={PASSWORD.replace(' ', '+')}",
        hero=read,
        page=page,
        team=team_read,
        power=power_read,
        teams=teams,
        created=created,
    )
    fixture_path.write_text(json.dumps(fixture.to_json()))
    return fixture
