"""The list machinery every collection shares: sorts, limits, totals, keyset cursors."""

import asyncio
import base64
import json
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event

from project.data.paging import ANOTHER_LIST
from tests.factories import Account, assert_problem, create

SORTS = {
    "teams": ["name", "created_at", "updated_at"],
    "heroes": ["name", "age", "created_at", "updated_at"],
    "powers": ["name", "created_at"],
}


def _body(kind: str, n: int) -> dict[str, Any]:
    # Names in mixed case, so the sort has to ignore case; every third hero has no age.
    name = f"{'AbCdEf'[n % 6]}{n:03d}"
    if kind == "teams":
        return {"name": name, "headquarters": "HQ"}
    if kind == "heroes":
        return {"name": name, "secret_name": "S", "age": None if n % 3 == 0 else (n * 7) % 50}
    return {"name": name}


async def _walk(client: AsyncClient, who: Account, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page_url = url if cursor is None else f"{url}&cursor={cursor}"
        response = await client.get(page_url, headers=who.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


def _expected(items: list[dict[str, Any]], field: str, descending: bool) -> list[str]:
    def key(item: dict[str, Any]) -> tuple[Any, str]:
        value = item[field]
        if field == "name":
            value = value.casefold()
        if field == "age":
            value = -1 if value is None else value
        return (value, item["id"])

    return [i["id"] for i in sorted(items, key=key, reverse=descending)]


@pytest.mark.parametrize("kind", list(SORTS))
async def test_every_sort_field_both_ways_walks_every_row_once(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    created = [await create(client, alice, kind, **_body(kind, n)) for n in range(13)]
    if "updated_at" in SORTS[kind]:  # touch some rows: updated_at order != created_at order
        for n, item in enumerate(created[::4]):
            await client.patch(
                f"/api/v1/{kind}/{item['id']}", json=_body(kind, 100 + n), headers=alice.headers
            )
    everything = (await client.get(f"/api/v1/{kind}?limit=100", headers=alice.headers)).json()[
        "items"
    ]
    for field in SORTS[kind]:
        for descending in (False, True):
            sort = f"-{field}" if descending else field
            walked = await _walk(client, alice, f"/api/v1/{kind}?sort={sort}&limit=4")
            assert [i["id"] for i in walked] == _expected(everything, field, descending), sort


# Names whose order a locale-aware collation (PostgreSQL's `en_US`) changes: it ignores
# blanks and punctuation, and puts accented letters next to their base letter.
LOCALE_SENSITIVE = ["a b", "ab", "a-c", "a_b", "aa", "B", "_x", "Zz", "é", "f", "10", "9"]


async def test_names_and_emails_sort_by_code_point_on_every_database(
    client: AsyncClient, admin: Account
) -> None:
    """The order a list comes in is the same in development (SQLite) and on any PostgreSQL."""
    for name in LOCALE_SENSITIVE:
        await create(client, admin, "teams", name=name, headquarters="HQ")
        local = name.replace(" ", "+").replace("é", "e.e")
        body = {"email": f"{local}@example.com", "password": "long enough password"}
        assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    teams = await _walk(client, admin, "/api/v1/teams?sort=name&limit=5")
    names = [team["name"] for team in teams]
    assert names == sorted(LOCALE_SENSITIVE, key=str.casefold)
    users = await _walk(client, admin, "/api/v1/users?sort=-email&limit=5")
    emails = [user["email"] for user in users]
    assert emails == sorted(emails, reverse=True)
    assert len(emails) == len(LOCALE_SENSITIVE) + 1


async def test_default_sort_is_oldest_first(client: AsyncClient, alice: Account) -> None:
    created = [await create(client, alice, "powers", name=f"P{n}") for n in range(5)]
    listed = (await client.get("/api/v1/powers", headers=alice.headers)).json()["items"]
    assert [p["id"] for p in listed] == [p["id"] for p in created]


async def test_limit_and_total(client: AsyncClient, alice: Account) -> None:
    for n in range(25):
        await create(client, alice, "powers", name=f"P{n:02d}")
    default = (await client.get("/api/v1/powers", headers=alice.headers)).json()
    assert len(default["items"]) == 20
    assert "total" not in default
    assert default["next_cursor"] is not None
    counted = (
        await client.get("/api/v1/powers?limit=100&include_total=true", headers=alice.headers)
    ).json()
    assert (len(counted["items"]), counted["total"], counted["next_cursor"]) == (25, 25, None)
    filtered = (
        await client.get("/api/v1/powers?q=P1&include_total=true&limit=1", headers=alice.headers)
    ).json()
    assert filtered["total"] == 10


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-5",
        "limit=abc",
        "sort=secret_name",
        "sort=--name",
        "sort=",
        "include_total=maybe",
        "cursor=",
        "cursor=%00",
        "cursor=" + "A" * 2000,
    ],
)
async def test_bad_list_queries_are_422(client: AsyncClient, alice: Account, query: str) -> None:
    assert_problem(await client.get(f"/api/v1/heroes?{query}", headers=alice.headers), 422)


@pytest.mark.parametrize("collection", ["teams", "heroes", "powers", "users"])
async def test_a_search_for_a_nul_character_is_422_in_words(
    client: AsyncClient, admin: Account, collection: str
) -> None:
    searched = await client.get(f"/api/v1/{collection}?q=a%00b", headers=admin.headers)
    [error] = assert_problem(searched, 422)["errors"]
    assert (error["loc"], error["msg"]) == (
        ["query", "q"],
        "String should not contain a NUL character",
    )


async def test_garbage_and_forged_cursors_are_422(client: AsyncClient, alice: Account) -> None:
    for n in range(3):
        await create(client, alice, "powers", name=f"P{n}")
    cursor = (await client.get("/api/v1/powers?limit=1", headers=alice.headers)).json()[
        "next_cursor"
    ]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    signature, payload = raw[:16], json.loads(raw[16:])
    payload[1] = {"datetime": "1970-01-01T00:00:00+00:00"}
    forged = base64.urlsafe_b64encode(signature + json.dumps(payload).encode()).decode().rstrip("=")
    for bad in (
        "garbage",
        "AAAA",
        forged,
        cursor[:-2],
        base64.urlsafe_b64encode(b"x" * 40).decode().rstrip("="),
    ):
        response = await client.get(f"/api/v1/powers?limit=1&cursor={bad}", headers=alice.headers)
        assert_problem(response, 422)
    assert (
        await client.get(f"/api/v1/powers?limit=1&cursor={cursor}", headers=alice.headers)
    ).status_code == 200


def _resigned(app: FastAPI, cursor: str, key: Any) -> str:
    """`cursor` with its sort key replaced, signed with the service's own key: what a bug
    or a leaked key could produce."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload = json.loads(raw[16:])
    payload[1] = key
    body = json.dumps(payload).encode()
    signed = app.state.pager._sign(body) + body
    return base64.urlsafe_b64encode(signed).decode().rstrip("=")


@pytest.mark.parametrize(
    ("kind", "sort", "key"),
    [
        ("teams", "created_at", 5),
        ("teams", "created_at", "2020"),
        ("teams", "created_at", {"datetime": "2020-01-01T00:00:00"}),
        ("teams", "name", [1]),
        ("teams", "name", "nul\x00byte"),  # PostgreSQL cannot take it
        ("powers", "name", "\ud800"),  # a lone surrogate: not text in any encoding
        ("heroes", "age", [1]),
        ("heroes", "age", 10**30),
        ("heroes", "age", 2**40),  # a 64-bit number, but the column is 32-bit on PostgreSQL
        ("heroes", "age", True),
    ],
)
async def test_a_signed_cursor_with_a_key_of_the_wrong_type_is_422(
    app: FastAPI, client: AsyncClient, alice: Account, kind: str, sort: str, key: Any
) -> None:
    for n in range(2):
        await create(client, alice, kind, **_body(kind, n))
    url = f"/api/v1/{kind}?limit=1&sort={sort}"
    cursor = (await client.get(url, headers=alice.headers)).json()["next_cursor"]
    assert (await client.get(f"{url}&cursor={cursor}", headers=alice.headers)).status_code == 200
    response = await client.get(
        f"{url}&cursor={_resigned(app, cursor, key)}", headers=alice.headers
    )
    assert_problem(response, 422)


async def test_a_cursor_only_works_on_its_own_collection(
    client: AsyncClient, alice: Account
) -> None:
    for n in range(2):
        await create(client, alice, "teams", **_body("teams", n))
        await create(client, alice, "powers", **_body("powers", n))
    cursor = (await client.get("/api/v1/teams?limit=1&sort=name", headers=alice.headers)).json()[
        "next_cursor"
    ]
    response = await client.get(
        f"/api/v1/powers?limit=1&sort=name&cursor={cursor}", headers=alice.headers
    )
    assert ANOTHER_LIST in assert_problem(response, 422)["detail"]


async def test_a_cursor_only_works_with_its_own_sort_and_filters(
    client: AsyncClient, alice: Account
) -> None:
    for n in range(3):
        await create(client, alice, "heroes", name=f"H{n}", secret_name="S", age=n)
    cursor = (
        await client.get("/api/v1/heroes?limit=1&sort=name&max_age=5", headers=alice.headers)
    ).json()["next_cursor"]
    for query in ("sort=-name&max_age=5", "sort=name", "sort=name&max_age=6", "sort=age&max_age=5"):
        response = await client.get(
            f"/api/v1/heroes?limit=1&{query}&cursor={cursor}", headers=alice.headers
        )
        assert ANOTHER_LIST in assert_problem(response, 422)["detail"]
    # The limit may change from page to page, and so may include_total.
    same = await client.get(
        f"/api/v1/heroes?limit=2&include_total=true&sort=name&max_age=5&cursor={cursor}",
        headers=alice.headers,
    )
    assert [h["name"] for h in same.json()["items"]] == ["H1", "H2"]


async def test_a_walk_sees_every_row_once_while_rows_are_added(
    client: AsyncClient, alice: Account
) -> None:
    original = {
        (await create(client, alice, "powers", name=f"Old {n:02d}"))["id"] for n in range(30)
    }
    seen: list[str] = []
    cursor = None
    for page_number in range(100):
        url = "/api/v1/powers?limit=7&sort=-created_at" + (f"&cursor={cursor}" if cursor else "")
        page, *_ = await asyncio.gather(
            client.get(url, headers=alice.headers),
            *(create(client, alice, "powers", name=f"New {page_number}-{k}") for k in range(3)),
        )
        body = page.json()
        seen += [p["id"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row came back twice"
    assert original <= set(seen), "a row that existed all along was skipped"


async def test_a_page_of_heroes_costs_the_same_few_statements_at_any_size(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    teams = [
        await create(client, alice, "teams", name=f"T{n}", headquarters="HQ") for n in range(5)
    ]
    powers = [await create(client, alice, "powers", name=f"P{n}") for n in range(5)]
    for n in range(100):
        await create(
            client,
            alice,
            "heroes",
            name=f"H{n:03d}",
            secret_name="S",
            team_id=teams[n % 5]["id"],
            power_ids=[powers[n % 5]["id"], powers[(n + 1) % 5]["id"]],
        )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        counts = {}
        for limit in (1, 10, 100):
            statements.clear()
            page = (await client.get(f"/api/v1/heroes?limit={limit}", headers=alice.headers)).json()
            assert len(page["items"]) == limit
            assert all(len(h["powers"]) == 2 and h["team"] for h in page["items"])
            counts[limit] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # The caller's token check, then the page with its teams and powers joined in.
    assert counts == {1: 2, 10: 2, 100: 2}
