"""The caller's own account, and superusers managing everyone's."""

import asyncio
import os
import subprocess
import uuid

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from project.app import create_app
from project.config import Settings
from project.services.users import EMAIL_TAKEN
from tests.conftest import AccountFactory
from tests.factories import (
    PASSWORD,
    Account,
    assert_problem,
    bearer,
    create,
    login,
    signed_in_again,
)
from tests.server import run_python

ME = "/api/v1/users/me"


async def _delete_me(client: AsyncClient, who: Account, password: str | None = None) -> Response:
    body = {"current_password": who.password if password is None else password}
    return await client.request("DELETE", ME, json=body, headers=who.headers)


async def test_read_me(client: AsyncClient, alice: Account) -> None:
    response = await client.get(ME, headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == alice.user


async def test_update_me(client: AsyncClient, alice: Account) -> None:
    response = await client.patch(
        ME,
        json={
            "email": "Alice.New@Example.com",
            "full_name": "Alice N.",
            "current_password": alice.password,
        },
        headers=alice.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["full_name"]) == ("alice.new@example.com", "Alice N.")
    assert body["updated_at"] > body["created_at"]
    assert (await login(client, "alice.new@example.com", alice.password)).status_code == 200


async def test_a_full_name_is_trimmed_and_never_only_blanks(
    client: AsyncClient, alice: Account
) -> None:
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": "ada@example.com", "password": "password123", "full_name": "  Ada\u200b "},
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["full_name"] == "Ada"
    for blank in ("  ", "\u200b"):
        refused = await client.post(
            "/api/v1/auth/register",
            json={"email": "eve@example.com", "password": "password123", "full_name": blank},
        )
        assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "full_name"]
        patched = await client.patch(ME, json={"full_name": blank}, headers=alice.headers)
        assert assert_problem(patched, 422)["errors"][0]["loc"] == ["body", "full_name"]
    assert (await client.get(ME, headers=alice.headers)).json() == alice.user


async def test_update_me_to_a_taken_email(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    body = {"email": "BOB@example.com", "current_password": alice.password}
    response = await client.patch(ME, json=body, headers=alice.headers)
    assert_problem(response, 409)
    assert (await client.get(ME, headers=alice.headers)).json()["email"] == alice.email


@pytest.mark.parametrize(
    "body",
    [{"is_superuser": True}, {"is_active": False}, {"id": str(uuid.uuid4())}, {"email": None}],
)
async def test_update_me_cannot_grant_itself_anything(
    client: AsyncClient, alice: Account, body: dict[str, object]
) -> None:
    assert_problem(await client.patch(ME, json=body, headers=alice.headers), 422)
    assert (await client.get(ME, headers=alice.headers)).json() == alice.user


async def test_change_password_ends_every_other_session(
    client: AsyncClient, alice: Account
) -> None:
    laptop = (await login(client, alice.email, alice.password)).json()
    response = await client.put(
        f"{ME}/password",
        json={"current_password": alice.password, "new_password": "a brand new secret"},
        headers=alice.headers,
    )
    assert response.status_code == 204
    assert (await client.get(ME, headers=alice.headers)).status_code == 200
    assert (await client.get(ME, headers=bearer(laptop))).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 401
    assert (await login(client, alice.email, "a brand new secret")).status_code == 200


async def test_change_password_needs_the_current_one(client: AsyncClient, alice: Account) -> None:
    wrong = await client.put(
        f"{ME}/password",
        json={"current_password": "not it at all", "new_password": "a brand new secret"},
        headers=alice.headers,
    )
    assert_problem(wrong, 400)
    weak = await client.put(
        f"{ME}/password",
        json={"current_password": alice.password, "new_password": "short"},
        headers=alice.headers,
    )
    assert_problem(weak, 422)
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_delete_me_takes_everything_i_own(
    client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    team = await create(client, alice, "teams", name="Doomed", headquarters="Nowhere")
    power = await create(client, alice, "powers", name="Flight")
    await create(
        client,
        alice,
        "heroes",
        name="Gone",
        secret_name="G",
        team_id=team["id"],
        power_ids=[power["id"]],
    )
    kept = await create(client, bob, "teams", name="Kept", headquarters="Here")

    assert (await _delete_me(client, alice)).status_code == 204
    assert (await client.get(ME, headers=alice.headers)).status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 401
    for resource in ("teams", "heroes", "powers"):
        everyone = (await client.get(f"/api/v1/{resource}", headers=admin.headers)).json()
        assert all(item["owner_id"] != alice.id for item in everyone["items"])
    assert (await client.get(f"/api/v1/teams/{kept['id']}", headers=bob.headers)).status_code == 200


async def test_deleting_oneself_needs_the_current_password(
    client: AsyncClient, alice: Account
) -> None:
    """A stolen access token alone cannot delete the account."""
    team = await create(client, alice, "teams", name="Kept", headquarters="Here")
    bare = await client.delete(ME, headers=alice.headers)
    assert assert_problem(bare, 422)["errors"][0]["loc"] == ["body"]
    empty = await client.request("DELETE", ME, json={}, headers=alice.headers)
    assert assert_problem(empty, 422)["errors"][0]["loc"] == ["body", "current_password"]
    wrong = await _delete_me(client, alice, "not it at all")
    assert assert_problem(wrong, 400)["detail"] == "The current password is wrong."
    assert (await client.get(ME, headers=alice.headers)).json() == alice.user
    assert (
        await client.get(f"/api/v1/teams/{team['id']}", headers=alice.headers)
    ).status_code == 200
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_changing_ones_email_needs_the_current_password(
    client: AsyncClient, alice: Account
) -> None:
    new = "alice.new@example.com"
    missing = await client.patch(ME, json={"email": new, "full_name": "A"}, headers=alice.headers)
    problem = assert_problem(missing, 422)
    assert [e["loc"] for e in problem["errors"]] == [["body", "current_password"]]
    body = {"email": new, "current_password": "not it at all"}
    wrong = await client.patch(ME, json=body, headers=alice.headers)
    assert assert_problem(wrong, 400)["detail"] == "The current password is wrong."
    assert (await client.get(ME, headers=alice.headers)).json() == alice.user
    assert (await login(client, new, alice.password)).status_code == 401
    # A new full name alone needs none.
    renamed = await client.patch(ME, json={"full_name": "Al"}, headers=alice.headers)
    assert (renamed.status_code, renamed.json()["email"]) == (200, alice.email)


async def test_user_management_is_for_superusers_only(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    for method, path, body in [
        ("GET", "/api/v1/users", None),
        ("GET", f"/api/v1/users/{bob.id}", None),
        ("PATCH", f"/api/v1/users/{bob.id}", {"is_active": False}),
        ("PATCH", f"/api/v1/users/{alice.id}", {"is_superuser": True}),
        ("DELETE", f"/api/v1/users/{bob.id}", None),
    ]:
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert_problem(response, 403)
    assert (await client.get(ME, headers=bob.headers)).json()["is_active"] is True


async def test_superuser_reads_updates_and_deletes_users(
    client: AsyncClient, alice: Account, admin: Account
) -> None:
    path = f"/api/v1/users/{alice.id}"
    assert (await client.get(path, headers=admin.headers)).json() == alice.user
    promoted = await client.patch(
        path, json={"is_superuser": True, "full_name": "Al"}, headers=admin.headers
    )
    assert promoted.status_code == 200
    assert (promoted.json()["is_superuser"], promoted.json()["full_name"]) == (True, "Al")
    assert (await client.get("/api/v1/users", headers=alice.headers)).status_code == 200

    assert (await client.delete(path, headers=admin.headers)).status_code == 204
    assert_problem(await client.get(path, headers=admin.headers), 404)
    assert_problem(await client.delete(path, headers=admin.headers), 404)


async def test_deactivation_ends_every_session_at_once(
    client: AsyncClient, alice: Account, admin: Account
) -> None:
    phone = (await login(client, alice.email, alice.password)).json()
    response = await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    for tokens in (alice.tokens, phone):
        assert (await client.get(ME, headers=bearer(tokens))).status_code == 401
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    # Reactivating lets the user sign in again, but the old sessions stay ended.
    await client.patch(f"/api/v1/users/{alice.id}", json={"is_active": True}, headers=admin.headers)
    assert (await client.get(ME, headers=bearer(phone))).status_code == 401
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_the_last_active_superuser_cannot_remove_themselves(
    client: AsyncClient, admin: Account, account: AccountFactory
) -> None:
    me = f"/api/v1/users/{admin.id}"
    for body in ({"is_superuser": False}, {"is_active": False}):
        assert_problem(await client.patch(me, json=body, headers=admin.headers), 409)
    assert_problem(await client.delete(me, headers=admin.headers), 409)
    assert_problem(await _delete_me(client, admin), 409)
    assert (await client.get(ME, headers=admin.headers)).json()["is_superuser"] is True

    await account(superuser=True)  # with a second superuser, stepping down is fine
    assert (
        await client.patch(me, json={"is_superuser": False}, headers=admin.headers)
    ).status_code == 200


async def test_losing_superuser_rights_ends_every_session(
    client: AsyncClient, admin: Account, account: AccountFactory
) -> None:
    """Sessions are renewed when rights change (OWASP): none signed in as a superuser lives on,
    to come back to life if the rights do."""
    other = await account(superuser=True)
    path = f"/api/v1/users/{other.id}"
    for rights in (False, True):
        body = {"is_superuser": rights}
        assert (await client.patch(path, json=body, headers=admin.headers)).status_code == 200
    assert (await client.get(ME, headers=other.headers)).status_code == 401
    refresh = {"refresh_token": other.tokens["refresh_token"]}
    assert (await client.post("/api/v1/auth/refresh", json=refresh)).status_code == 401
    # A change that takes no rights away keeps them.
    other = await signed_in_again(client, other)
    for body in ({"full_name": "O"}, {"is_superuser": True}):
        assert (await client.patch(path, json=body, headers=admin.headers)).status_code == 200
    assert (await client.get(ME, headers=other.headers)).status_code == 200


async def test_superuser_cannot_take_a_taken_email(
    client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    response = await client.patch(
        f"/api/v1/users/{alice.id}", json={"email": bob.email}, headers=admin.headers
    )
    assert_problem(response, 409)


async def test_a_taken_email_is_a_409_also_when_the_change_deactivates(
    client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    body = {"email": bob.email.upper(), "is_active": False}
    response = await client.patch(f"/api/v1/users/{alice.id}", json=body, headers=admin.headers)
    assert assert_problem(response, 409)["detail"] == EMAIL_TAKEN
    # Nothing of the change happened: alice is still active, her session still works.
    assert (await client.get(ME, headers=alice.headers)).json()["email"] == alice.email


async def test_two_superusers_demoting_each_other_at_once_leave_one(
    client: AsyncClient, admin: Account, account: AccountFactory
) -> None:
    """Each waits for the other (rows locked in one order), never a deadlock's 503."""
    other = await account(superuser=True)
    for _ in range(10):
        responses = await asyncio.gather(
            *(
                client.patch(
                    f"/api/v1/users/{target.id}", json={"is_superuser": False}, headers=by.headers
                )
                for target, by in ((other, admin), (admin, other))
            )
        )
        # The loser is refused: its session ended with its rights (401), it is no superuser
        # any more (403), or it would demote the last (409).
        assert sorted(r.status_code for r in responses) in ([200, 401], [200, 403], [200, 409])
        admin, other = [await signed_in_again(client, a) for a in (admin, other)]
        left = [
            a
            for a in (admin, other)
            if (await client.get(ME, headers=a.headers)).json()["is_superuser"]
        ]
        assert len(left) == 1
        demoted = other if left == [admin] else admin
        restored = await client.patch(
            f"/api/v1/users/{demoted.id}", json={"is_superuser": True}, headers=left[0].headers
        )
        assert restored.status_code == 200


async def test_an_account_deleted_twice_at_once_is_deleted_once(
    client: AsyncClient, alice: Account, admin: Account, account: AccountFactory
) -> None:
    mine = await asyncio.gather(*(_delete_me(client, alice) for _ in range(5)))
    assert sorted(r.status_code for r in mine) == [204, 401, 401, 401, 401]
    bob = await account()
    theirs = await asyncio.gather(
        *(client.delete(f"/api/v1/users/{bob.id}", headers=admin.headers) for _ in range(5))
    )
    assert sorted(r.status_code for r in theirs) == [204, 404, 404, 404, 404]


async def test_unknown_and_malformed_user_ids(client: AsyncClient, admin: Account) -> None:
    assert_problem(await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=admin.headers), 404)
    assert_problem(await client.get("/api/v1/users/not-a-uuid", headers=admin.headers), 422)


async def test_list_users_filters_and_sorts(
    client: AsyncClient, admin: Account, account: AccountFactory
) -> None:
    zed = await account(email="zed@example.com", full_name="Zed Zero")
    await account(email="amy@example.com")
    await client.patch(f"/api/v1/users/{zed.id}", json={"is_active": False}, headers=admin.headers)

    async def emails(query: str) -> list[str]:
        response = await client.get(f"/api/v1/users?{query}", headers=admin.headers)
        assert response.status_code == 200, response.text
        return [u["email"] for u in response.json()["items"]]

    assert await emails("sort=email") == ["admin@example.com", "amy@example.com", "zed@example.com"]
    assert await emails("sort=-email") == [
        "zed@example.com",
        "amy@example.com",
        "admin@example.com",
    ]
    assert await emails("is_active=false") == ["zed@example.com"]
    assert await emails("q=ZERO") == ["zed@example.com"]
    assert await emails("q=AMY&sort=email") == ["amy@example.com"]
    # Blanks around a search are ignored, and a blank search filters nothing, as on every list.
    assert await emails("q=%20zed%0A") == ["zed@example.com"]
    for blank in ("%20", "%E2%80%8B", "%09%20"):
        assert len(await emails(f"q={blank}")) == 3
    # Beyond ASCII too, on every database, as names compare.
    await account(email="asa@example.com", full_name="\u00c5SA \u00d6berg")
    assert await emails("q=%C3%A5sa%20%C3%B6") == ["asa@example.com"]
    assert await emails("q=%EF%BC%A2%EF%BC%A5RG") == ["asa@example.com"]  # full-width BE


async def test_first_superuser_is_created_at_startup_once(settings: Settings, app: FastAPI) -> None:
    configured = settings.model_copy(
        update={
            "first_superuser_email": "Root@Example.com",
            "first_superuser_password": SecretStr(PASSWORD),
        }
    )
    for _ in range(2):  # the second startup finds the user and changes nothing
        started = create_app(configured)
        async with started.router.lifespan_context(started):
            transport = ASGITransport(app=started)
            async with AsyncClient(transport=transport, base_url="http://t") as http:
                tokens = (await login(http, "root@example.com", PASSWORD)).json()
                me = (await http.get(ME, headers=bearer(tokens))).json()
                everyone = await http.get("/api/v1/users", headers=bearer(tokens))
    assert me["is_superuser"] is True
    assert [u["email"] for u in everyone.json()["items"]] == ["root@example.com"]


def test_a_first_superuser_password_that_breaks_the_rules_stops_the_service(
    database_url: str,
) -> None:
    """FIRST_SUPERUSER_PASSWORD follows the rules every password does: a service started with
    a short one refuses to start, saying why, and makes no account anyone could sign in to."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "FIRST_SUPERUSER_EMAIL": "root@example.com",
        "FIRST_SUPERUSER_PASSWORD": "x",
    }
    checked = _manage(["check-settings"], env)
    assert checked.returncode == 2
    assert "FIRST_SUPERUSER_PASSWORD must be 8 to 256 characters" in checked.stderr
    with pytest.raises(ValueError, match="FIRST_SUPERUSER_PASSWORD must be 8 to 256"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, first_superuser_email="root@example.com", first_superuser_password="x"
        )
    started = run_python("-c", "import project.app", env=env)
    assert started.returncode != 0
    assert "FIRST_SUPERUSER_PASSWORD must be 8 to 256 characters" in started.stderr


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m project ...` as an operator runs it, with no terminal to ask on."""
    return run_python("-m", "project", *args, env=env)


def test_create_superuser_command(database_url: str, app: FastAPI) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "FIRST_SUPERUSER_PASSWORD": PASSWORD,
        "AUTO_MIGRATE": "false",
    }
    command = ["create-superuser", "--email", "Ops@Example.com"]
    first = _manage(command, env)
    assert first.returncode == 0, first.stderr
    assert "Created superuser ops@example.com" in first.stdout
    # Which database it worked on, the password hidden.
    target = make_url(database_url).render_as_string(hide_password=True)
    assert f"Database: {target}" in first.stdout.splitlines()
    again = _manage(command, env)
    assert "exists; unchanged" in again.stdout
    weak = _manage(command, {**env, "FIRST_SUPERUSER_PASSWORD": "short"})
    assert weak.returncode == 2
    assert "password" in weak.stderr
    # No password set and no terminal to ask on (a script, a container): said, not hung.
    unattended = {k: v for k, v in env.items() if k != "FIRST_SUPERUSER_PASSWORD"}
    no_password = _manage(["create-superuser", "--email", "nobody@example.com"], unattended)
    assert no_password.returncode == 2
    assert "set FIRST_SUPERUSER_PASSWORD" in no_password.stderr
    anonymous = {k: v for k, v in env.items() if k != "FIRST_SUPERUSER_EMAIL"}
    no_email = _manage(["create-superuser"], anonymous)
    assert no_email.returncode == 2
    assert "--email (or FIRST_SUPERUSER_EMAIL) is required" in no_email.stderr


async def test_create_superuser_says_when_the_email_is_a_plain_users(
    database_url: str, alice: Account
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "FIRST_SUPERUSER_PASSWORD": PASSWORD,
        "AUTO_MIGRATE": "false",
    }
    done = await asyncio.to_thread(_manage, ["create-superuser", "--email", alice.email], env)
    assert done.returncode == 0, done.stderr
    assert f"{alice.email} exists and is not a superuser; unchanged." in done.stdout
