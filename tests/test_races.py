"""Writes that race the deletion of a row they refer to, and deletes that race each other.

A write checks its references first, then inserts; on PostgreSQL another request may
delete the row in between, and the database's foreign key then refuses the write. The
answer must be what the request would have got a moment later (a 422 on the field, a 401
for an account that is gone), never a 409 about a name or a 500. SQLite runs one writer at
a time, so nothing can be deleted in between there.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import text

from project.errors import ACCOUNT_GONE
from tests.factories import Account, assert_problem, create

WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


async def _deleted_while_waiting(
    app: FastAPI, delete: str, row_id: str, request: Awaitable[Response]
) -> Response:
    """Run `request` while another transaction deletes a row it refers to: the delete is
    made first but committed only once the request waits for that row's lock (its
    foreign key check), that is, after the request's own checks found the row."""
    engine = app.state.database.engine
    async with engine.connect() as deleter, engine.connect() as watcher:
        await deleter.execute(text(delete), {"id": row_id})
        pending = asyncio.ensure_future(request)
        for _ in range(200):
            if (await watcher.execute(WAITING_FOR_A_LOCK)).scalar_one():
                break
            await asyncio.sleep(0.05)
            await watcher.commit()  # a fresh snapshot of the activity
        else:
            pending.cancel()
            pytest.fail("the request never waited for the deleted row")
        await deleter.commit()
        return await pending


@pytest.fixture(autouse=True)
def _postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("SQLite runs one writer at a time: no row can go while a write runs")


async def test_a_hero_whose_team_goes_meanwhile_is_a_422_on_team_id(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Doomed", headquarters="HQ")
    body = {"name": "Late", "secret_name": "L", "team_id": team["id"]}
    response = await _deleted_while_waiting(
        app,
        "DELETE FROM teams WHERE id = :id",
        team["id"],
        client.post("/api/v1/heroes", json=body, headers=alice.headers),
    )
    [error] = assert_problem(response, 422)["errors"]
    assert error["loc"] == ["body", "team_id"]
    page = await client.get("/api/v1/heroes", headers=alice.headers)
    assert page.json()["items"] == []


async def test_a_hero_whose_power_goes_meanwhile_is_a_422_on_power_ids(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    power = await create(client, alice, "powers", name="Fleeting")
    body = {"name": "Late", "secret_name": "L", "power_ids": [power["id"]]}
    response = await _deleted_while_waiting(
        app,
        "DELETE FROM powers WHERE id = :id",
        power["id"],
        client.post("/api/v1/heroes", json=body, headers=alice.headers),
    )
    [error] = assert_problem(response, 422)["errors"]
    assert error["loc"] == ["body", "power_ids"]


@pytest.mark.parametrize(
    ("resource", "body"),
    [("teams", {"name": "Orphans", "headquarters": "HQ"}), ("powers", {"name": "Orphaned"})],
)
async def test_a_create_whose_owner_goes_meanwhile_is_a_401(
    app: FastAPI, client: AsyncClient, alice: Account, resource: str, body: dict[str, Any]
) -> None:
    """Not a 409 about a name the owner (who no longer exists) already has."""
    response = await _deleted_while_waiting(
        app,
        "DELETE FROM users WHERE id = :id",
        alice.id,
        client.post(f"/api/v1/{resource}", json=body, headers=alice.headers),
    )
    assert assert_problem(response, 401)["detail"] == ACCOUNT_GONE


async def test_an_account_changed_while_it_is_deleted_is_gone(
    app: FastAPI, client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    """Not a 412 about a version the caller never sent: users carry none."""
    mine = await _deleted_while_waiting(
        app,
        "DELETE FROM users WHERE id = :id",
        alice.id,
        client.patch("/api/v1/users/me", json={"full_name": "Late"}, headers=alice.headers),
    )
    assert assert_problem(mine, 401)["detail"] == ACCOUNT_GONE
    theirs = await _deleted_while_waiting(
        app,
        "DELETE FROM users WHERE id = :id",
        bob.id,
        client.patch(f"/api/v1/users/{bob.id}", json={"full_name": "Late"}, headers=admin.headers),
    )
    assert_problem(theirs, 404)
