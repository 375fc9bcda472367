"""Heroes: embedded team and powers, references that must be the owner's, and filters."""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import Account, assert_problem, create


async def _powers(client: AsyncClient, who: Account, *names: str) -> list[dict[str, Any]]:
    return [await create(client, who, "powers", name=n) for n in names]


async def test_a_hero_embeds_its_team_and_powers(client: AsyncClient, alice: Account) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    fly, strong = await _powers(client, alice, "Flight", "Strength")
    hero = await create(
        client,
        alice,
        "heroes",
        name="Thor",
        secret_name="Donald",
        age=1500,
        team_id=team["id"],
        power_ids=[strong["id"], fly["id"], strong["id"]],
    )
    assert hero["team_id"] == team["id"]
    assert hero["team"]["name"] == "Avengers"
    assert "heroes_count" not in hero["team"]
    assert [p["name"] for p in hero["powers"]] == ["Flight", "Strength"]  # a set, by name
    fetched = (await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)).json()
    assert fetched == hero
    listed = (await client.get("/api/v1/heroes", headers=alice.headers)).json()["items"]
    assert listed == [hero]


async def test_a_hero_without_team_or_powers(client: AsyncClient, alice: Account) -> None:
    hero = await create(client, alice, "heroes", name="Loner", secret_name="L")
    assert (hero["team"], hero["team_id"], hero["powers"], hero["age"]) == (None, None, [], None)


async def test_references_to_someone_elses_rows_are_422_on_that_field(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    their_team = await create(client, bob, "teams", name="Bobs", headquarters="B")
    [their_power] = await _powers(client, bob, "Bob power")
    [mine] = await _powers(client, alice, "Mine")
    cases = [
        ({"team_id": their_team["id"]}, ["body", "team_id"]),
        ({"team_id": str(uuid.uuid4())}, ["body", "team_id"]),
        ({"power_ids": [mine["id"], their_power["id"]]}, ["body", "power_ids", 1]),
        ({"power_ids": [str(uuid.uuid4())]}, ["body", "power_ids", 0]),
    ]
    hero = await create(client, alice, "heroes", name="Mine", secret_name="M")
    for reference, loc in cases:
        body = {"name": "Sneaky", "secret_name": "S", **reference}
        created = await client.post("/api/v1/heroes", json=body, headers=alice.headers)
        assert assert_problem(created, 422)["errors"][0]["loc"] == loc
        patched = await client.patch(
            f"/api/v1/heroes/{hero['id']}", json=reference, headers=alice.headers
        )
        assert assert_problem(patched, 422)["errors"][0]["loc"] == loc
    # A foreign reference and a missing one read the same: nothing about Bob leaks.
    details = set()
    for team_id in (their_team["id"], str(uuid.uuid4())):
        response = await client.post(
            "/api/v1/heroes",
            json={"name": "A", "secret_name": "B", "team_id": team_id},
            headers=alice.headers,
        )
        details.add(response.json()["errors"][0]["msg"].split(" with id")[0])
    assert len(details) == 1
    assert (await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)).json() == hero


async def test_patch_power_ids_replaces_the_set_and_team_id_null_leaves_the_team(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    a, b, c = await _powers(client, alice, "A", "B", "C")
    hero = await create(
        client,
        alice,
        "heroes",
        name="H",
        secret_name="S",
        team_id=team["id"],
        power_ids=[a["id"], b["id"]],
    )
    path = f"/api/v1/heroes/{hero['id']}"
    replaced = await client.patch(path, json={"power_ids": [c["id"]]}, headers=alice.headers)
    assert [p["name"] for p in replaced.json()["powers"]] == ["C"]
    assert replaced.json()["version"] == 2
    untouched = await client.patch(path, json={"age": 30}, headers=alice.headers)
    assert [p["name"] for p in untouched.json()["powers"]] == ["C"]
    # The same team and set of powers again is no change.
    again = await client.patch(
        path, json={"team_id": team["id"], "power_ids": [c["id"]]}, headers=alice.headers
    )
    assert again.json() == untouched.json()
    teamless = await client.patch(
        path, json={"team_id": None, "power_ids": []}, headers=alice.headers
    )
    assert (teamless.json()["team"], teamless.json()["powers"]) == (None, [])
    assert (await client.get(f"/api/v1/teams/{team['id']}", headers=alice.headers)).json()[
        "heroes_count"
    ] == 0


async def test_age_null_clears_it_but_name_null_is_refused(
    client: AsyncClient, alice: Account
) -> None:
    hero = await create(client, alice, "heroes", name="H", secret_name="S", age=40)
    path = f"/api/v1/heroes/{hero['id']}"
    assert (await client.patch(path, json={"age": None}, headers=alice.headers)).json()[
        "age"
    ] is None
    assert_problem(await client.patch(path, json={"secret_name": None}, headers=alice.headers), 422)
    assert_problem(await client.patch(path, json={"power_ids": None}, headers=alice.headers), 422)


@pytest.mark.parametrize("age", [-1, 10_001, 1.5, "old", True])
async def test_age_must_be_an_integer_from_0_to_10000(
    client: AsyncClient, alice: Account, age: object
) -> None:
    response = await client.post(
        "/api/v1/heroes", json={"name": "H", "secret_name": "S", "age": age}, headers=alice.headers
    )
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "age"]


async def test_ages_at_the_limits_are_fine(client: AsyncClient, alice: Account) -> None:
    for age in (0, 10_000):
        assert (await create(client, alice, "heroes", name=f"H{age}", secret_name="S", age=age))[
            "age"
        ] == age


async def test_deleting_a_power_removes_it_from_heroes(client: AsyncClient, alice: Account) -> None:
    fly, strong = await _powers(client, alice, "Flight", "Strength")
    hero = await create(
        client, alice, "heroes", name="H", secret_name="S", power_ids=[fly["id"], strong["id"]]
    )
    assert (
        await client.delete(f"/api/v1/powers/{fly['id']}", headers=alice.headers)
    ).status_code == 204
    after = (await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)).json()
    assert [p["name"] for p in after["powers"]] == ["Strength"]
    assert after["version"] == hero["version"] + 1


async def test_the_etag_changes_when_an_embedded_team_does(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    hero = await create(client, alice, "heroes", name="H", secret_name="S", team_id=team["id"])
    path = f"/api/v1/heroes/{hero['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    await client.patch(
        f"/api/v1/teams/{team['id']}", json={"name": "New Avengers"}, headers=alice.headers
    )
    response = await client.get(path, headers={**alice.headers, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.json()["team"]["name"] == "New Avengers"


async def test_filters(client: AsyncClient, alice: Account, bob: Account) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    [fly] = await _powers(client, alice, "Flight")
    await create(
        client, alice, "heroes", name="Iron Man", secret_name="Tony", age=48, team_id=team["id"]
    )
    await create(
        client,
        alice,
        "heroes",
        name="Spider-Man",
        secret_name="Peter",
        age=17,
        power_ids=[fly["id"]],
    )
    await create(client, alice, "heroes", name="Vision", secret_name="V", power_ids=[fly["id"]])
    await create(client, bob, "heroes", name="Bob Man", secret_name="B", age=30)

    async def names(query: str) -> list[str]:
        response = await client.get(f"/api/v1/heroes?sort=name&{query}", headers=alice.headers)
        assert response.status_code == 200, response.text
        return [h["name"] for h in response.json()["items"]]

    assert await names("q=MAN") == ["Iron Man", "Spider-Man"]
    assert await names("q=%25") == []  # LIKE wildcards are matched literally
    assert await names(f"team_id={team['id']}") == ["Iron Man"]
    assert await names("min_age=18") == ["Iron Man"]
    assert await names("max_age=48") == ["Iron Man", "Spider-Man"]
    assert await names("min_age=17&max_age=17") == ["Spider-Man"]
    assert await names(f"power_id={fly['id']}") == ["Spider-Man", "Vision"]
    assert await names(f"power_id={fly['id']}&q=vis") == ["Vision"]
    assert await names(f"team_id={uuid.uuid4()}") == []
    # An empty search box filters nothing.
    assert await names("q=") == ["Iron Man", "Spider-Man", "Vision"]


@pytest.mark.parametrize(
    "query",
    [
        "min_age=-1",
        "max_age=10001",
        "min_age=30&max_age=20",
        "team_id=nope",
        "power_id=1",
        f"q={'x' * 256}",
        "q=a%00b",
    ],
)
async def test_bad_filters_are_422(client: AsyncClient, alice: Account, query: str) -> None:
    assert_problem(await client.get(f"/api/v1/heroes?{query}", headers=alice.headers), 422)
