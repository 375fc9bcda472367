"""What teams, heroes and powers share: create, read, update and delete, ownership (BOLA),
ETags and conditional requests, and input validation."""

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import Account, assert_problem, create

RESOURCES: dict[str, dict[str, dict[str, Any]]] = {
    "teams": {
        "body": {"name": "Avengers", "headquarters": "New York"},
        "change": {"headquarters": "Malibu"},
    },
    "heroes": {"body": {"name": "Spider", "secret_name": "Peter"}, "change": {"age": 17}},
    "powers": {
        "body": {"name": "Flight", "description": "Up"},
        "change": {"description": "Higher"},
    },
}
# The required text field of each resource, used to rename it and to try invalid values.
TEXT = {"teams": "name", "heroes": "name", "powers": "name"}
KINDS = list(RESOURCES)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _make(client: AsyncClient, who: Account, kind: str) -> dict[str, Any]:
    return await create(client, who, kind, **RESOURCES[kind]["body"])


async def test_create_answers_201_with_location_and_etag(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    response = await client.post(
        f"/api/v1/{kind}", json=RESOURCES[kind]["body"], headers=alice.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner_id"] == alice.id
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"]
    assert response.headers["location"] == f"http://testserver/api/v1/{kind}/{body['id']}"
    fetched = await client.get(response.headers["location"], headers=alice.headers)
    assert fetched.json() == body
    assert fetched.headers["etag"] == response.headers["etag"]


async def test_update_bumps_the_version_and_the_etag(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    before = await client.get(path, headers=alice.headers)
    change = RESOURCES[kind]["change"]
    response = await client.patch(path, json=change, headers=alice.headers)
    assert response.status_code == 200
    updated = response.json()
    assert updated["version"] == 2
    assert updated.items() >= change.items()
    assert updated["updated_at"] > updated["created_at"]
    assert response.headers["etag"] != before.headers["etag"]
    after = await client.get(path, headers=alice.headers)
    assert after.json() == updated
    assert after.headers["etag"] == response.headers["etag"]


async def test_an_update_that_changes_nothing_keeps_the_version(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    """`version` counts changes: sending the values a row already has is not one, so the
    ETags other clients hold stay good."""
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    same = {field: item[field] for field in RESOURCES[kind]["body"]}
    patched = await client.patch(path, json=same, headers=alice.headers)
    assert patched.json() == item
    assert patched.headers["etag"] == etag


async def test_if_none_match_answers_304_until_it_changes(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    read = await client.get(path, headers=alice.headers)
    etag = read.headers["etag"]
    cached = await client.get(path, headers={**alice.headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    # A cache refreshes its stored copy from the 304: it must say what the 200 said.
    assert cached.headers["cache-control"] == read.headers["cache-control"]
    weak = await client.get(path, headers={**alice.headers, "If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    await client.patch(path, json=RESOURCES[kind]["change"], headers=alice.headers)
    fresh = await client.get(path, headers={**alice.headers, "If-None-Match": etag})
    assert fresh.status_code == 200


async def test_a_read_with_a_stale_if_match_is_412(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    for current in (etag, "*", f'"0", {etag}'):
        read = await client.get(path, headers={**alice.headers, "If-Match": current})
        assert read.status_code == 200, current
    for stale in ('"0"', f"W/{etag}"):  # If-Match compares strongly
        assert_problem(await client.get(path, headers={**alice.headers, "If-Match": stale}), 412)


async def test_a_stale_if_match_changes_nothing(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    stale = (await client.get(path, headers=alice.headers)).headers["etag"]
    await client.patch(path, json=RESOURCES[kind]["change"], headers=alice.headers)
    current = await client.get(path, headers=alice.headers)

    for method, body in (("PATCH", {TEXT[kind]: "Overwritten"}), ("DELETE", None)):
        response = await client.request(
            method, path, json=body, headers={**alice.headers, "If-Match": stale}
        )
        assert_problem(response, 412)
    weak = await client.patch(
        path,
        json={TEXT[kind]: "Weak"},
        headers={**alice.headers, "If-Match": f"W/{current.headers['etag']}"},
    )
    assert_problem(weak, 412)  # If-Match compares strongly
    # "Only if it is not the version I have": it is, so neither changes anything.
    for method, body in (("PATCH", {TEXT[kind]: "Overwritten"}), ("DELETE", None)):
        for tag in (current.headers["etag"], "*"):
            response = await client.request(
                method, path, json=body, headers={**alice.headers, "If-None-Match": tag}
            )
            assert_problem(response, 412)
    unchanged = await client.get(path, headers=alice.headers)
    assert unchanged.json() == current.json()


async def test_a_precondition_sent_on_several_lines_is_one_list(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    """RFC 9110 §5.3: a header repeated on several lines means one comma-separated list."""
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    auth = list(alice.headers.items())

    def lines(name: str) -> list[tuple[str, str]]:
        return [*auth, (name, '"0"'), (name, etag)]

    assert (await client.get(path, headers=lines("If-None-Match"))).status_code == 304
    refused = await client.patch(path, json={TEXT[kind]: "No"}, headers=lines("If-None-Match"))
    assert_problem(refused, 412)
    patched = await client.patch(path, json={TEXT[kind]: "Yes"}, headers=lines("If-Match"))
    assert patched.status_code == 200, patched.text
    assert patched.json()[TEXT[kind]] == "Yes"


async def test_a_current_or_star_if_match_goes_through(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    patched = await client.patch(
        path, json={TEXT[kind]: "Renamed"}, headers={**alice.headers, "If-Match": etag}
    )
    assert patched.status_code == 200
    star = await client.patch(
        path, json={TEXT[kind]: "Again"}, headers={**alice.headers, "If-Match": "*"}
    )
    assert star.status_code == 200
    deleted = await client.delete(path, headers={**alice.headers, "If-Match": star.headers["etag"]})
    assert deleted.status_code == 204
    assert deleted.content == b"" and "content-type" not in deleted.headers
    assert_problem(await client.get(path, headers=alice.headers), 404)
    assert_problem(await client.delete(path, headers={**alice.headers, "If-Match": "*"}), 404)


async def test_concurrent_updates_with_one_etag_let_exactly_one_through(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    etag = (await client.get(path, headers=alice.headers)).headers["etag"]
    responses = await asyncio.gather(
        *(
            client.patch(
                path, json={TEXT[kind]: f"Writer {n}"}, headers={**alice.headers, "If-Match": etag}
            )
            for n in range(8)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 7
    winner = next(r.json() for r in responses if r.status_code == 200)
    final = (await client.get(path, headers=alice.headers)).json()
    assert final[TEXT[kind]] == winner[TEXT[kind]]
    assert final["version"] == 2


async def test_someone_elses_resource_is_not_found_on_every_method(
    client: AsyncClient, alice: Account, bob: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    missing = f"/api/v1/{kind}/{uuid.uuid4()}"
    for method, body in (("GET", None), ("PATCH", RESOURCES[kind]["change"]), ("DELETE", None)):
        theirs = await client.request(method, path, json=body, headers=bob.headers)
        nothing = await client.request(method, missing, json=body, headers=bob.headers)
        assert assert_problem(theirs, 404)["detail"] == assert_problem(nothing, 404)["detail"]
    listed = (await client.get(f"/api/v1/{kind}", headers=bob.headers)).json()
    assert listed["items"] == []
    assert (await client.get(path, headers=alice.headers)).json()["version"] == 1


async def test_superusers_see_and_change_everyones(
    client: AsyncClient, alice: Account, admin: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    path = f"/api/v1/{kind}/{item['id']}"
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    listed = (await client.get(f"/api/v1/{kind}", headers=admin.headers)).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    patched = await client.patch(path, json=RESOURCES[kind]["change"], headers=admin.headers)
    assert patched.status_code == 200
    assert patched.json()["owner_id"] == alice.id
    assert (await client.delete(path, headers=admin.headers)).status_code == 204


async def test_every_resource_needs_a_token(client: AsyncClient, kind: str) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, f"/api/v1/{kind}", json={})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"version": 7}, "version"),
        ({"$text": ""}, "$text"),
        ({"$text": "x" * 256}, "$text"),
        ({"$text": "nul\x00byte"}, "$text"),
        ({"$text": None}, "$text"),
        ({"$text": 42}, "$text"),
    ],
)
async def test_invalid_bodies_are_422_on_create_and_update(
    client: AsyncClient, alice: Account, kind: str, change: dict[str, Any], field: str
) -> None:
    item = await _make(client, alice, kind)
    change = {TEXT[kind] if k == "$text" else k: v for k, v in change.items()}
    field = TEXT[kind] if field == "$text" else field
    body = {**RESOURCES[kind]["body"], TEXT[kind]: "Another", **change}
    created = await client.post(f"/api/v1/{kind}", json=body, headers=alice.headers)
    assert [field] in [e["loc"][1:] for e in assert_problem(created, 422)["errors"]]
    patched = await client.patch(f"/api/v1/{kind}/{item['id']}", json=change, headers=alice.headers)
    assert [field] in [e["loc"][1:] for e in assert_problem(patched, 422)["errors"]]
    assert (await client.get(f"/api/v1/{kind}/{item['id']}", headers=alice.headers)).json() == item


# The other text field of each resource (its one text field again, if it has only one): free
# text, trimmed, never only blanks.
OTHER_TEXT = {"teams": "headquarters", "heroes": "secret_name", "powers": "description"}
BLANK_TEXT = ["   ", "\t\n", "\u200b", " \u00a0\u2060 "]


@pytest.mark.parametrize("blank", BLANK_TEXT, ids=["spaces", "tab newline", "zwsp", "mixed"])
async def test_text_of_only_blanks_is_422_like_empty_text(
    client: AsyncClient, alice: Account, kind: str, blank: str
) -> None:
    item = await _make(client, alice, kind)
    field = OTHER_TEXT[kind]
    body = {**RESOURCES[kind]["body"], TEXT[kind]: "Another", field: blank}
    created = await client.post(f"/api/v1/{kind}", json=body, headers=alice.headers)
    assert [field] in [e["loc"][1:] for e in assert_problem(created, 422)["errors"]]
    patch = {field: blank}
    patched = await client.patch(f"/api/v1/{kind}/{item['id']}", json=patch, headers=alice.headers)
    assert [field] in [e["loc"][1:] for e in assert_problem(patched, 422)["errors"]]
    assert (await client.get(f"/api/v1/{kind}/{item['id']}", headers=alice.headers)).json() == item


async def test_text_is_stored_without_surrounding_blanks(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    field = OTHER_TEXT[kind]
    body = {**RESOURCES[kind]["body"], field: " \u200bStark  Tower\n"}
    item = await create(client, alice, kind, **body)
    assert item[field] == "Stark  Tower"  # inner blanks are the writer's
    patched = await client.patch(
        f"/api/v1/{kind}/{item['id']}", json={field: "\tMalibu "}, headers=alice.headers
    )
    assert patched.json()[field] == "Malibu"


async def test_a_nul_character_is_refused_in_words(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    """Not with the regular expression that refused it."""
    for field in (TEXT[kind], OTHER_TEXT[kind]):
        body = {**RESOURCES[kind]["body"], field: "nul\x00byte"}
        refused = await client.post(f"/api/v1/{kind}", json=body, headers=alice.headers)
        [error] = assert_problem(refused, 422)["errors"]
        assert (error["loc"], error["msg"]) == (
            ["body", field],
            "String should not contain a NUL character",
        )


async def test_text_up_to_the_limit_is_stored_whole(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    name = "ü" * 255
    item = await create(client, alice, kind, **{**RESOURCES[kind]["body"], TEXT[kind]: name})
    fetched = (await client.get(f"/api/v1/{kind}/{item['id']}", headers=alice.headers)).json()
    assert fetched[TEXT[kind]] == name
    # The limit is on what is sent, as the schema says, blanks that would be trimmed included.
    for field in (TEXT[kind], OTHER_TEXT[kind]):
        limit = 2000 if field == "description" else 255
        body = {**RESOURCES[kind]["body"], TEXT[kind]: "Other", field: "\t" + "x" * limit}
        refused = await client.post(f"/api/v1/{kind}", json=body, headers=alice.headers)
        assert [field] in [e["loc"][1:] for e in assert_problem(refused, 422)["errors"]]


async def test_an_empty_patch_changes_nothing(
    client: AsyncClient, alice: Account, kind: str
) -> None:
    item = await _make(client, alice, kind)
    response = await client.patch(f"/api/v1/{kind}/{item['id']}", json={}, headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == item


async def test_malformed_ids_are_422(client: AsyncClient, alice: Account, kind: str) -> None:
    for bad in ("not-a-uuid", "1", "%00"):
        problem = assert_problem(
            await client.get(f"/api/v1/{kind}/{bad}", headers=alice.headers), 422
        )
        assert [error["loc"] for error in problem["errors"]] == [["path", "id"]]


async def test_the_token_is_checked_before_the_id(client: AsyncClient, kind: str) -> None:
    """Without a valid token, any id is a 401: nothing of the request is judged first."""
    for headers in ({}, {"Authorization": "Bearer forged"}):
        assert_problem(await client.get(f"/api/v1/{kind}/not-a-uuid", headers=headers), 401)
