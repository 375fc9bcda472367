"""Teams: unique names per owner, hero counts, and what deleting one does to its heroes."""

import re
import sys
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from project.data.rows import Rows
from project.models import Team
from project.services import teams
from project.text import BIDI, BLANKS, IGNORABLE, NOT_BLANK
from tests.factories import Account, assert_problem, create


async def test_names_are_unique_per_owner_ignoring_case(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    clash = await client.post(
        "/api/v1/teams", json={"name": "aVENGERS", "headquarters": "LA"}, headers=alice.headers
    )
    assert "name" in assert_problem(clash, 409)["detail"]
    # Another user may use the same name.
    await create(client, bob, "teams", name="Avengers", headquarters="London")


async def test_renaming_onto_a_taken_name_is_409_and_changes_nothing(
    client: AsyncClient, alice: Account
) -> None:
    await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    other = await create(client, alice, "teams", name="X-Men", headquarters="Westchester")
    clash = await client.patch(
        f"/api/v1/teams/{other['id']}", json={"name": "AVENGERS"}, headers=alice.headers
    )
    assert_problem(clash, 409)
    fetched = await client.get(f"/api/v1/teams/{other['id']}", headers=alice.headers)
    assert fetched.json() == other
    # Changing only the case of its own name is not a clash.
    recased = await client.patch(
        f"/api/v1/teams/{other['id']}", json={"name": "x-men"}, headers=alice.headers
    )
    assert recased.status_code == 200


async def test_a_team_reports_its_heroes_count_everywhere(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    assert team["heroes_count"] == 0
    for name in ("Thor", "Hulk"):
        await create(client, alice, "heroes", name=name, secret_name=name, team_id=team["id"])
    path = f"/api/v1/teams/{team['id']}"
    one = await client.get(path, headers=alice.headers)
    assert one.json()["heroes_count"] == 2
    listed = (await client.get("/api/v1/teams", headers=alice.headers)).json()
    assert listed["items"][0]["heroes_count"] == 2
    patched = await client.patch(path, json={"headquarters": "Asgard"}, headers=alice.headers)
    assert patched.json()["heroes_count"] == 2


async def test_the_etag_changes_when_the_count_does(client: AsyncClient, alice: Account) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    path = f"/api/v1/teams/{team['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    await create(client, alice, "heroes", name="Thor", secret_name="Thor", team_id=team["id"])
    response = await client.get(path, headers={**alice.headers, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.json()["heroes_count"] == 1


async def test_deleting_a_team_leaves_its_heroes_teamless(
    client: AsyncClient, alice: Account
) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    hero = await create(
        client, alice, "heroes", name="Thor", secret_name="Thor", team_id=team["id"]
    )
    assert (
        await client.delete(f"/api/v1/teams/{team['id']}", headers=alice.headers)
    ).status_code == 204
    after = (await client.get(f"/api/v1/heroes/{hero['id']}", headers=alice.headers)).json()
    assert (after["team_id"], after["team"]) == (None, None)
    assert after["version"] == hero["version"] + 1


async def test_a_teams_heroes_page(client: AsyncClient, alice: Account, bob: Account) -> None:
    team = await create(client, alice, "teams", name="Avengers", headquarters="NYC")
    other = await create(client, alice, "teams", name="Defenders", headquarters="NYC")
    for name in ("Thor", "Hulk", "Vision"):
        await create(client, alice, "heroes", name=name, secret_name=name, team_id=team["id"])
    await create(client, alice, "heroes", name="Daredevil", secret_name="Matt", team_id=other["id"])
    await create(client, alice, "heroes", name="Loner", secret_name="L")

    path = f"/api/v1/teams/{team['id']}/heroes"
    page = await client.get(f"{path}?sort=name&limit=2&include_total=true", headers=alice.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [h["name"] for h in body["items"]] == ["Hulk", "Thor"]
    assert body["total"] == 3
    assert all(h["team"]["id"] == team["id"] for h in body["items"])
    rest = await client.get(
        f"{path}?sort=name&limit=2&cursor={body['next_cursor']}", headers=alice.headers
    )
    assert rest.status_code == 200, rest.text
    assert [h["name"] for h in rest.json()["items"]] == ["Vision"]
    assert rest.json()["next_cursor"] is None
    # A cursor from one team's page is not valid on another team's.
    elsewhere = await client.get(
        f"/api/v1/teams/{other['id']}/heroes?sort=name&limit=2&cursor={body['next_cursor']}",
        headers=alice.headers,
    )
    assert_problem(elsewhere, 422)
    assert_problem(await client.get(path, headers=bob.headers), 404)


async def test_names_arrive_without_surrounding_blanks(client: AsyncClient, alice: Account) -> None:
    team = await create(client, alice, "teams", name="  Avengers\t", headquarters="NYC")
    assert team["name"] == "Avengers"
    clash = await client.post(
        "/api/v1/teams", json={"name": " avengers ", "headquarters": "LA"}, headers=alice.headers
    )
    assert_problem(clash, 409)
    for blank in ("   ", "\u3000", "\xa0\t"):
        refused = await client.post("/api/v1/powers", json={"name": blank}, headers=alice.headers)
        assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "name"]
    power = await create(client, alice, "powers", name="\xa0Flight\u3000")
    assert power["name"] == "Flight"
    hero = await create(client, alice, "heroes", name="Thor", secret_name="Thor")
    renamed = await client.patch(
        f"/api/v1/heroes/{hero['id']}", json={"name": " Thor Odinson "}, headers=alice.headers
    )
    assert renamed.json()["name"] == "Thor Odinson"


async def test_names_that_read_the_same_are_the_same_name(
    client: AsyncClient, alice: Account
) -> None:
    composed = await create(client, alice, "teams", name="Caf\u00e9", headquarters="Paris")
    for twin in (
        "Cafe\u0301",
        "CAF\u00c9",
        "\uff23\uff41\uff46\u00e9",
        "Ca\u200bf\u00e9",
        "Caf\u00e9 \u200b",
        "\u200b Caf\u00e9",
    ):
        clash = await client.post(
            "/api/v1/teams", json={"name": twin, "headquarters": "Lyon"}, headers=alice.headers
        )
        assert_problem(clash, 409)
    # A name is stored composed, whichever form it arrived in, and without invisible ends.
    power = await create(client, alice, "powers", name="\ufeffFe\u0301e\u200b")
    assert power["name"] == "F\u00e9e"
    found = await client.get("/api/v1/teams?q=\uff43\uff41\uff46", headers=alice.headers)
    assert [team["id"] for team in found.json()["items"]] == [composed["id"]]


async def test_a_name_whose_key_would_be_empty_or_too_long_is_422(
    client: AsyncClient, alice: Account
) -> None:
    # U+FDFA is one character that spells out as eighteen.
    refused = await client.post(
        "/api/v1/powers", json={"name": "\ufdfa" * 100}, headers=alice.headers
    )
    assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "name"]
    for invisible in ("\u200b\u200d", "\u200b \u200b", "\u2060\u3164"):
        refused = await client.post(
            "/api/v1/powers", json={"name": invisible}, headers=alice.headers
        )
        assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "name"]
    # A full-length name of four-byte characters still fits.
    await create(client, alice, "powers", name="\U0001f9b8" * 255)


def test_the_name_pattern_knows_every_blank_that_is_stripped() -> None:
    """The schema tells clients what the server strips: the two must not drift apart."""
    every_blank = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert set(BLANKS) == every_blank
    for blank in every_blank:
        assert re.fullmatch(NOT_BLANK, blank * 3) is None
        assert re.fullmatch(NOT_BLANK, f"{blank}x{blank}")
    # And the invisible characters that `/docs`'s pattern can name (those up to U+FFFF); the
    # bidirectional controls among them are refused anywhere (see below).
    for invisible in (chr(c) for c in range(0x10000) if IGNORABLE.fullmatch(chr(c))):
        assert re.fullmatch(NOT_BLANK, invisible * 3) is None
        framed = re.fullmatch(NOT_BLANK, f"{invisible}x{invisible}")
        assert (framed is None) == bool(BIDI.match(invisible))


async def test_text_with_bidirectional_controls_is_422(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    """U+202E and its kin reorder what follows them: `\u202egpj.exe` shows as `exe.jpg`. No
    name or other text a person reads may hold one, where it came from or wherever it sits."""
    team = await create(client, alice, "teams", name="Avengers", headquarters="New York")
    controls = [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
    for control in controls:
        for body in (
            {"name": f"Ad{control}nimda", "headquarters": "x"},
            {"name": f"{control}Avengers", "headquarters": "x"},
            {"name": "Avengers 2", "headquarters": f"Stark{control} Tower"},
        ):
            refused = await client.post("/api/v1/teams", json=body, headers=alice.headers)
            problem = assert_problem(refused, 422)
            assert "bidirectional controls" in problem["errors"][0]["msg"], problem
        renamed = await client.patch(
            f"/api/v1/teams/{team['id']}", json={"name": f"x{control}y"}, headers=alice.headers
        )
        assert assert_problem(renamed, 422)["errors"][0]["loc"] == ["body", "name"]
        hero = {"name": f"Spider{control}", "secret_name": "Peter"}
        assert_problem(await client.post("/api/v1/heroes", json=hero, headers=alice.headers), 422)
        me = {"full_name": f"Bob{control} Smith"}
        assert_problem(await client.patch("/api/v1/users/me", json=me, headers=bob.headers), 422)
    # Right-to-left text itself is welcome: only the invisible controls are refused.
    await create(client, alice, "teams", name="אבג Avengers", headquarters="x")


@pytest.fixture
def deleted_once_found(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every team a request finds is deleted (its heroes leaving it, as DELETE does) right
    after it was found, before the request reads anything else."""
    find = Rows.one

    async def find_then_delete(rows: Rows, view: Any, row_id: uuid.UUID, *args: Any) -> Any:
        found = await find(rows, view, row_id, *args)
        if view is teams.VIEW:
            async with app.state.database.session(write=True) as other:
                team = await other.get(Team, row_id)
                if team is not None:
                    await teams.delete(other, team)
                    await other.commit()
        return found

    monkeypatch.setattr(Rows, "one", find_then_delete)


@pytest.mark.usefixtures("deleted_once_found")
async def test_a_team_deleted_while_it_is_read_is_never_seen_without_its_heroes(
    client: AsyncClient, alice: Account
) -> None:
    """A read sees the team as it was (a snapshot: SQLite) or not at all (PostgreSQL, where
    each statement sees what was committed before it); never a team whose heroes have gone,
    which it never was."""
    for path in ("", "/heroes"):
        team = await create(client, alice, "teams", name=f"Doomed{path}", headquarters="HQ")
        for n in range(3):
            await create(client, alice, "heroes", name=f"H{n}", secret_name="s", team_id=team["id"])
        response = await client.get(f"/api/v1/teams/{team['id']}{path}", headers=alice.headers)
        if response.status_code != 404:
            body = response.json()
            assert (body["heroes_count"] if path == "" else len(body["items"])) == 3, body
