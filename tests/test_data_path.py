"""Every resource is read, listed and created through one data path (project/data/): one
statement on the driver that checks the token's session itself, ownership in the query, and
the JSON and ETag the response model and every other route give."""

import uuid
from typing import Any, cast

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Insert, Table, bindparam, insert
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from project.db.driver import Driver, compile_once
from project.models import Team, utcnow
from tests.factories import Account, assert_problem, create

BODIES: dict[str, dict[str, Any]] = {
    "teams": {"name": "Avengers", "headquarters": "NYC"},
    "powers": {"name": "Flight", "description": "Up."},
    "heroes": {"name": "Thor", "secret_name": "D"},
}
RESOURCES = pytest.mark.parametrize("resource", list(BODIES))


async def _hero(client: AsyncClient, who: Account) -> dict[str, Any]:
    team = await create(client, who, "teams", name="Avengers", headquarters="NYC")
    power = await create(client, who, "powers", name="Flight")
    return await create(
        client,
        who,
        "heroes",
        name="Thor",
        secret_name="D",
        team_id=team["id"],
        power_ids=[power["id"]],
    )


@RESOURCES
async def test_a_logged_out_token_is_refused_at_once(
    client: AsyncClient, alice: Account, resource: str
) -> None:
    row = await create(client, alice, resource, **BODIES[resource])
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert logout.status_code == 204
    url = f"/api/v1/{resource}"
    for response in (
        await client.get(f"{url}/{row['id']}", headers=alice.headers),
        await client.get(url, headers=alice.headers),
        await client.post(url, json={**BODIES[resource], "name": "X"}, headers=alice.headers),
        await client.patch(f"{url}/{row['id']}", json={}, headers=alice.headers),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


@RESOURCES
async def test_a_deactivated_user_is_refused_at_once(
    client: AsyncClient, alice: Account, admin: Account, resource: str
) -> None:
    row = await create(client, alice, resource, **BODIES[resource])
    deactivated = await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200
    url = f"/api/v1/{resource}"
    assert_problem(await client.get(f"{url}/{row['id']}", headers=alice.headers), 401)
    assert_problem(await client.get(url, headers=alice.headers), 401)


@RESOURCES
async def test_ownership_is_in_the_query(
    client: AsyncClient, alice: Account, bob: Account, admin: Account, resource: str
) -> None:
    row = await create(client, alice, resource, **BODIES[resource])
    url = f"/api/v1/{resource}"
    assert_problem(await client.get(f"{url}/{row['id']}", headers=bob.headers), 404)
    assert_problem(await client.get(f"{url}/{uuid.uuid4()}", headers=alice.headers), 404)
    assert (await client.get(url, headers=bob.headers)).json()["items"] == []
    assert (await client.get(f"{url}/{row['id']}", headers=admin.headers)).json() == row
    everyone = (await client.get(url, headers=admin.headers)).json()["items"]
    assert [item["id"] for item in everyone] == [row["id"]]


async def test_creating_with_someone_elses_team_is_422_and_creates_nothing(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    team = await create(client, bob, "teams", name="Bob's", headquarters="B")
    body = {"name": "X", "secret_name": "Y", "team_id": team["id"]}
    problem = assert_problem(
        await client.post("/api/v1/heroes", json=body, headers=alice.headers), 422
    )
    assert problem["errors"][0]["loc"] == ["body", "team_id"]
    assert (await client.get("/api/v1/heroes", headers=alice.headers)).json()["items"] == []


async def test_every_route_answers_the_same_json_and_etag(
    client: AsyncClient, alice: Account
) -> None:
    """What a create answers (built from the new row), a read (from one statement), a page,
    a change that changes nothing and a teams' heroes page (from the ORM's transaction)."""
    hero = await _hero(client, alice)
    rows = {"heroes": hero, "teams": hero["team"], "powers": hero["powers"][0]}
    for resource, row in rows.items():
        url = f"/api/v1/{resource}/{row['id']}"
        read = await client.get(url, headers=alice.headers)
        patched = await client.patch(url, json={}, headers=alice.headers)
        assert read.json() == patched.json()
        assert read.headers["etag"] == patched.headers["etag"]
        page = (await client.get(f"/api/v1/{resource}", headers=alice.headers)).json()
        assert page["items"] == [read.json()]
        again = await client.get(
            url, headers={**alice.headers, "If-None-Match": read.headers["etag"]}
        )
        assert again.status_code == 304
    created = await client.post(
        "/api/v1/heroes",
        json={"name": "Loki", "secret_name": "L", "team_id": hero["team_id"]},
        headers=alice.headers,
    )
    assert created.status_code == 201
    url = f"/api/v1/heroes/{created.json()['id']}"
    assert created.headers["location"].endswith(url)
    read = await client.get(url, headers=alice.headers)
    assert created.json() == read.json() and created.headers["etag"] == read.headers["etag"]
    team_heroes = await client.get(f"/api/v1/teams/{hero['team_id']}/heroes", headers=alice.headers)
    assert team_heroes.json()["items"][-1] == read.json()


async def test_a_constraint_broken_on_the_driver_is_a_problem_not_a_500(
    app: FastAPI, is_postgres: bool
) -> None:
    """A row deleted between a check and a write makes the database refuse the write; on
    the driver, as through the ORM, that is an IntegrityError, never a 500. Here the owner
    is missing: on PostgreSQL, which names the foreign key, the caller's account is gone (a
    401); SQLite names none."""
    teams = cast(Table, Team.__table__)  # type: ignore[attr-defined]
    now = utcnow()
    orphan = {
        "id": uuid.uuid4(),
        "owner_id": uuid.uuid4(),  # no such user: the foreign key fails
        "name": "Ghost",
        "name_key": "ghost",
        "headquarters": "Nowhere",
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }

    def build() -> Insert:
        return insert(teams).values({c: bindparam(c, type_=teams.c[c].type) for c in orphan})

    async with Driver(app.state.database.engine) as db:
        compiled = compile_once(db.dialect, "orphan", build)
        with pytest.raises(IntegrityError) as raised:
            await db.fetch(compiled, **orphan)
    request = Request({"type": "http", "method": "POST", "path": "/api/v1/teams", "headers": []})
    response = await app.exception_handlers[IntegrityError](request, raised.value)
    assert response.status_code == (401 if is_postgres else 409)
    assert response.headers["content-type"] == "application/problem+json"
