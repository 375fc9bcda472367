"""The hero reads and creates that skip the ORM (project/direct.py, project/hero_rows.py)
keep every guarantee of the ORM paths: the token's session is checked in the statement
itself, ownership is in the query, and the JSON and ETag are the response model's."""

import uuid
from typing import cast

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Insert, Table, bindparam, insert
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from project.direct import Statements, reader
from project.models import Team, utcnow
from tests.factories import Account, assert_problem, create

HEROES = "/api/v1/heroes"


async def _hero(client: AsyncClient, who: Account) -> dict[str, object]:
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


async def test_a_logged_out_token_is_refused_at_once(client: AsyncClient, alice: Account) -> None:
    hero = await _hero(client, alice)
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert logout.status_code == 204
    for response in (
        await client.get(f"{HEROES}/{hero['id']}", headers=alice.headers),
        await client.get(HEROES, headers=alice.headers),
        await client.post(HEROES, json={"name": "X", "secret_name": "Y"}, headers=alice.headers),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_deactivated_user_is_refused_at_once(
    client: AsyncClient, alice: Account, admin: Account
) -> None:
    hero = await _hero(client, alice)
    deactivated = await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200
    assert_problem(await client.get(f"{HEROES}/{hero['id']}", headers=alice.headers), 401)
    assert_problem(await client.get(HEROES, headers=alice.headers), 401)


async def test_ownership_is_in_the_query(
    client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    hero = await _hero(client, alice)
    assert_problem(await client.get(f"{HEROES}/{hero['id']}", headers=bob.headers), 404)
    assert_problem(await client.get(f"{HEROES}/{uuid.uuid4()}", headers=alice.headers), 404)
    assert (await client.get(HEROES, headers=bob.headers)).json()["items"] == []
    seen = await client.get(f"{HEROES}/{hero['id']}", headers=admin.headers)
    assert seen.json() == hero
    assert [h["id"] for h in (await client.get(HEROES, headers=admin.headers)).json()["items"]] == [
        hero["id"]
    ]


async def test_creating_with_someone_elses_team_is_422_and_creates_nothing(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    team = await create(client, bob, "teams", name="Bob's", headquarters="B")
    body = {"name": "X", "secret_name": "Y", "team_id": team["id"]}
    problem = assert_problem(await client.post(HEROES, json=body, headers=alice.headers), 422)
    assert problem["errors"][0]["loc"] == ["body", "team_id"]
    assert (await client.get(HEROES, headers=alice.headers)).json()["items"] == []


async def test_fast_and_orm_paths_answer_the_same_json_and_etag(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    created = await client.post(
        HEROES,
        json={"name": "Thor", "secret_name": "D", "team_id": team["id"]},
        headers=alice.headers,
    )  # no powers: the INSERT on the driver
    assert created.status_code == 201
    assert created.headers["location"].endswith(f"{HEROES}/{created.json()['id']}")
    url = f"{HEROES}/{created.json()['id']}"
    read = await client.get(url, headers=alice.headers)  # the driver
    patched = await client.patch(url, json={}, headers=alice.headers)  # the ORM, unchanged
    assert created.json() == read.json() == patched.json()
    assert created.headers["etag"] == read.headers["etag"] == patched.headers["etag"]
    page = (await client.get(HEROES, headers=alice.headers)).json()
    assert page["items"] == [read.json()]
    unchanged = await client.get(
        url, headers={**alice.headers, "If-None-Match": read.headers["etag"]}
    )
    assert unchanged.status_code == 304


async def test_a_constraint_broken_on_the_driver_path_is_a_problem_not_a_500(
    app: FastAPI, is_postgres: bool
) -> None:
    """A row deleted between a check and a write makes the database refuse the write; on the
    driver path, as through the ORM, that is an IntegrityError, never a 500. Here the owner
    is missing: on PostgreSQL, which names the foreign key, the caller's account is gone (a
    401); SQLite names none (and runs one writer at a time, so no owner goes mid-write)."""
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

    async with reader(app.state.database.engine) as db:
        compiled = Statements().get(db.dialect, "orphan", build)
        with pytest.raises(IntegrityError) as raised:
            await db.fetch(compiled, **orphan)
    # What the client then gets, from the app's own handler for it.
    request = Request({"type": "http", "method": "POST", "path": "/api/v1/teams", "headers": []})
    response = await app.exception_handlers[IntegrityError](request, raised.value)
    assert response.status_code == (401 if is_postgres else 409)
    assert response.headers["content-type"] == "application/problem+json"
