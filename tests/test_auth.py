"""Register, login, refresh rotation with reuse detection, logout, and forged tokens."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from passlib.context import CryptContext
from sqlalchemy import update
from sqlmodel import col, select

from project.config import Settings
from project.models import AuthSession, RefreshToken, User, utcnow
from tests.conftest import ROOT, TEST_SECRET, AccountFactory
from tests.factories import PASSWORD, Account, assert_problem, bearer, login, sign_up

ME = "/api/v1/users/me"


async def test_register_returns_the_user_without_any_secret(client: AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "New@Example.com", "password": PASSWORD, "full_name": "New Person"},
    )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {
        "id",
        "email",
        "full_name",
        "is_active",
        "is_superuser",
        "email_verified_at",
        "created_at",
        "updated_at",
    }
    assert user["email"] == "new@example.com"
    assert user["full_name"] == "New Person"
    assert (user["is_active"], user["is_superuser"]) == (True, False)
    assert user["created_at"].endswith("Z")
    assert user["created_at"] == user["updated_at"]
    assert "argon2" not in response.text
    assert PASSWORD not in response.text
    # The new account's own URL (RFC 9110 §15.3.2), where a superuser finds it.
    assert response.headers["location"] == f"http://testserver/api/v1/users/{user['id']}"


async def test_register_accepts_test_domains_but_not_unroutable_ones(client: AsyncClient) -> None:
    ok = await client.post(
        "/api/v1/auth/register", json={"email": "qa@staging.test", "password": PASSWORD}
    )
    assert ok.status_code == 201
    for email in ("a@b.invalid", "a@localhost", "a@[127.0.0.1]", "a..b@example.com"):
        refused = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "email"]


async def test_register_trims_blanks_around_the_email_as_sign_in_does(
    client: AsyncClient,
) -> None:
    registered = await client.post(
        "/api/v1/auth/register", json={"email": " Ada@Example.com\t", "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == "ada@example.com"
    assert (await login(client, " ada@example.com ", PASSWORD)).status_code == 200


async def test_register_rejects_a_taken_email_whatever_its_case(
    client: AsyncClient, alice: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "ALICE@example.com", "password": PASSWORD}
    )
    assert "already exists" in assert_problem(response, 409)["detail"]


async def test_every_spelling_of_an_address_signs_in_to_its_one_account(
    client: AsyncClient,
) -> None:
    """What registration counts as the same address (a 409), sign-in takes for it too."""
    await sign_up(client, "Caf\u00e9@b\u00fccher.example")
    for spelling in (
        "cafe\u0301@xn--bcher-kva.example",  # decomposed é, the domain in punycode
        " CAF\u00c9@B\u00dcCHER.EXAMPLE ",
    ):
        taken = await client.post(
            "/api/v1/auth/register", json={"email": spelling.strip(), "password": PASSWORD}
        )
        assert_problem(taken, 409)
        assert (await login(client, spelling, PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com", "password": "short12"}, "password"),
        ({"email": "x@example.com", "password": "p" * 257}, "password"),
        ({"email": "x@example.com", "password": "has\x00nul-byte"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "x@example.com", "password": PASSWORD, "full_name": "a\x00b"}, "full_name"),
        ({"email": "x@example.com", "password": PASSWORD, "full_name": ""}, "full_name"),
        ({"email": "x@example.com"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD, "is_superuser": True}, "is_superuser"),
        ({"email": "x@example.com", "password": PASSWORD, "is_active": False}, "is_active"),
        ({"email": "x@example.com", "password": PASSWORD, "id": str(uuid.uuid4())}, "id"),
    ],
)
async def test_register_rejects_invalid_input_and_mass_assignment(
    client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/auth/register", json=body)
    problem = assert_problem(response, 422)
    assert [field] in [e["loc"][1:] for e in problem["errors"]]
    assert "input" not in problem["errors"][0]  # a rejected password is never echoed


async def test_a_password_of_256_characters_is_accepted_whole(client: AsyncClient) -> None:
    long_password = "é" * 256
    response = await client.post(
        "/api/v1/auth/register", json={"email": "long@example.com", "password": long_password}
    )
    assert response.status_code == 201
    assert (await login(client, "long@example.com", long_password)).status_code == 200
    # Not truncated: the same password minus its last character does not work.
    assert (await login(client, "long@example.com", long_password[:-1])).status_code == 401


async def test_a_password_typed_in_another_unicode_form_is_the_same_password(
    client: AsyncClient,
) -> None:
    decomposed = "Cafe\u0301 au lait, s'il vous plai\u0302t"  # as some keyboards send it
    body = {"email": "cafe@example.com", "password": decomposed}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    composed = "Caf\u00e9 au lait, s'il vous pla\u00eet"
    assert (await login(client, "cafe@example.com", composed)).status_code == 200
    full_width = "\uff23af\u00e9 au lait, s'il vous pla\u00eet"  # a full-width C
    assert (await login(client, "cafe@example.com", full_width)).status_code == 200
    # Accents still matter: this is another password.
    assert (
        await login(client, "cafe@example.com", "Cafe au lait, s'il vous plait")
    ).status_code == 401


async def test_login_returns_a_bearer_pair(client: AsyncClient, alice: Account) -> None:
    response = await login(client, "Alice@Example.com", alice.password)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(ME, headers=bearer(body))
    assert me.json()["email"] == "alice@example.com"


async def test_login_failures_all_look_the_same(
    client: AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    await client.patch(
        f"/api/v1/users/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    wrong_password = await login(client, bob.email, "wrong password")
    unknown_user = await login(client, "nobody@example.com", PASSWORD)
    inactive_user = await login(client, alice.email, alice.password)
    not_an_address = await login(client, "bob", bob.password)
    details = set()
    for response in (wrong_password, unknown_user, inactive_user, not_an_address):
        details.add(assert_problem(response, 401)["detail"])
        assert response.headers["www-authenticate"] == "Bearer"
    assert len(details) == 1


async def test_login_takes_a_form_not_json(client: AsyncClient, alice: Account) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"username": alice.email, "password": alice.password}
    )
    assert_problem(response, 415)


async def test_requests_without_a_token_are_refused(client: AsyncClient) -> None:
    response = await client.get(ME)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def _claims(account: Account, **changes: Any) -> dict[str, Any]:
    payload = jwt.decode(account.tokens["access_token"], options={"verify_signature": False})
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _forge(payload: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def _alg_none(account: Account) -> str:
    _header, payload, _ = account.tokens["access_token"].split(".")
    import base64
    import json

    none = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{none.decode().rstrip('=')}.{payload}."


def _tampered(account: Account) -> str:
    header, payload, signature = account.tokens["access_token"].split(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


FORGERIES = {
    "alg none": _alg_none,
    "wrong key": lambda a: _forge(_claims(a), key="another-secret-key-of-enough-length-00"),
    "tampered payload": _tampered,
    "expired": lambda a: _forge(
        _claims(
            a,
            exp=datetime.now(UTC) - timedelta(seconds=61),
            iat=datetime.now(UTC) - timedelta(hours=1),
        )
    ),
    "refresh token as access": lambda a: a.tokens["refresh_token"],
    "wrong issuer": lambda a: _forge(_claims(a, iss="someone-else")),
    "wrong audience": lambda a: _forge(_claims(a, aud="someone-else")),
    "HS512 instead of HS256": lambda a: _forge(_claims(a), algorithm="HS512"),
    "garbage": lambda a: "not.a.jwt",
    # Well signed, but no date can hold them (past year 9999): refused, not a 500.
    "exp of 10**30": lambda a: _forge(_claims(a, exp=10**30)),
    "exp of 1e308": lambda a: _forge(_claims(a, exp=1e308)),
    "unknown session": lambda a: _forge(_claims(a, sid=str(uuid.uuid4()))),
    **{
        f"missing {claim}": (lambda a, c=claim: _forge(_claims(a, **{c: None})))
        for claim in ("exp", "iat", "sub", "jti", "iss", "aud", "sid", "type")
    },
}


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_tokens_are_refused(client: AsyncClient, alice: Account, forgery: str) -> None:
    token = FORGERIES[forgery](alice)
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
    # The genuine token still works: the refusal was about the forgery.
    assert (await client.get(ME, headers=alice.headers)).status_code == 200


async def test_two_authorization_headers_are_refused_in_either_order(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    """A proxy that checked the last one and a service that reads the first would disagree."""
    genuine = alice.headers["Authorization"]
    for pair in ((genuine, "Bearer forged"), ("Bearer forged", genuine), (genuine, genuine)):
        headers = [("Authorization", value) for value in pair]
        for path in (ME, "/api/v1/teams", f"/api/v1/heroes/{uuid.uuid4()}"):
            response = await client.get(path, headers=headers)
            assert assert_problem(response, 401)["detail"].startswith("Send one"), path
    mixed = [("Authorization", genuine), ("Authorization", bob.headers["Authorization"])]
    assert_problem(await client.get(ME, headers=mixed), 401)


async def test_a_re_signed_genuine_payload_is_accepted(client: AsyncClient, alice: Account) -> None:
    """The forgery tests fail for the right reason: the same claims, properly signed, pass."""
    token = _forge(_claims(alice))
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_an_access_token_is_not_a_refresh_token(client: AsyncClient, alice: Account) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": alice.tokens["access_token"]}
    )
    assert_problem(response, 401)


async def test_refresh_rotates_and_spends_the_old_token(
    client: AsyncClient, alice: Account
) -> None:
    first = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != alice.tokens["refresh_token"]
    assert (await client.get(ME, headers=bearer(rotated))).status_code == 200
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert second.status_code == 200


async def test_reusing_a_spent_refresh_token_ends_the_whole_session(
    client: AsyncClient, alice: Account
) -> None:
    stolen = alice.tokens["refresh_token"]
    rotated = (await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})).json()
    other_login = (await login(client, alice.email, alice.password)).json()

    replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert "already used" in assert_problem(replay, 401)["detail"]

    # Every token of that session is dead, the legitimate rotated pair included...
    assert (await client.get(ME, headers=bearer(rotated))).status_code == 401
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 401
    # ...but another login session of the same user is untouched.
    assert (await client.get(ME, headers=bearer(other_login))).status_code == 200


async def test_logout_ends_that_session_at_once(client: AsyncClient, alice: Account) -> None:
    other_login = (await login(client, alice.email, alice.password)).json()
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert response.content == b"" and "content-type" not in response.headers
    assert (await client.get(ME, headers=alice.headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert (await client.get(ME, headers=bearer(other_login))).status_code == 200
    # Logging out twice is refused: the session no longer exists.
    twice = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert_problem(twice, 401)


@pytest.mark.parametrize("path", ["logout", "refresh"])
@pytest.mark.parametrize(
    ("token", "status"), [("", 422), ("garbage", 401), ("a.b.c", 401), ("a.b\x00.c", 422)]
)
async def test_a_bad_refresh_token(client: AsyncClient, path: str, token: str, status: int) -> None:
    response = await client.post(f"/api/v1/auth/{path}", json={"refresh_token": token})
    problem = assert_problem(response, status)
    if status == 422:
        assert problem["errors"][0]["loc"] == ["body", "refresh_token"]


async def test_logout_all_ends_every_session(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    phone = (await login(client, alice.email, alice.password)).json()
    response = await client.post("/api/v1/auth/logout-all", headers=alice.headers)
    assert response.status_code == 204
    for tokens in (alice.tokens, phone):
        assert (await client.get(ME, headers=bearer(tokens))).status_code == 401
        refresh = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refresh.status_code == 401
    assert (await client.get(ME, headers=bob.headers)).status_code == 200
    assert (await login(client, alice.email, alice.password)).status_code == 200


def _session_id(tokens: dict[str, Any]) -> uuid.UUID:
    claims = jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
    return uuid.UUID(claims["sid"])


async def _expire_refresh_tokens(
    app: FastAPI, *logins: dict[str, Any], spent_only: bool = False
) -> None:
    """As if these logins had been left alone for longer than a refresh token lives (or,
    with `spent_only`, as if their used tokens had been used that long ago)."""
    sessions = [_session_id(tokens) for tokens in logins]
    which = col(RefreshToken.session_id).in_(sessions)
    if spent_only:
        which &= col(RefreshToken.used_at).is_not(None)
    async with app.state.database.session(write=True) as session:
        await session.execute(
            update(RefreshToken)
            .where(which)
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
        await session.commit()


async def _session_ids(app: FastAPI, user: Account) -> set[uuid.UUID]:
    async with app.state.database.session() as session:
        rows = await session.scalars(
            select(col(AuthSession.id)).where(col(AuthSession.user_id) == uuid.UUID(user.id))
        )
        return set(rows)


async def _sign_in_ago(app: FastAPI, tokens: dict[str, Any], ago: timedelta) -> None:
    """As if this login session had signed in `ago`."""
    async with app.state.database.session(write=True) as session:
        await session.execute(
            update(AuthSession)
            .where(col(AuthSession.id) == _session_id(tokens))
            .values(created_at=utcnow() - ago)
        )
        await session.commit()


async def test_refreshing_never_stretches_a_session_past_its_absolute_lifetime(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    """OWASP's absolute timeout: a session signs in again after SESSION_MAX_DAYS (30)."""
    refresh = alice.tokens["refresh_token"]
    await _sign_in_ago(app, alice.tokens, timedelta(days=30) - timedelta(seconds=60))
    near_the_end = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert near_the_end.status_code == 200, near_the_end.text
    pair = near_the_end.json()
    assert 0 < pair["expires_in"] <= 60  # not 15 minutes: the session has one left
    for token in (pair["access_token"], pair["refresh_token"]):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] <= (utcnow() + timedelta(seconds=61)).timestamp()
    assert (await client.get(ME, headers=bearer(pair))).status_code == 200

    await _sign_in_ago(app, pair, timedelta(days=30, seconds=1))
    ended = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert "sign in again" in assert_problem(ended, 401)["detail"]
    assert (await login(client, alice.email, alice.password)).json()["expires_in"] == 15 * 60


async def test_signing_in_clears_what_that_user_can_no_longer_use(
    app: FastAPI, client: AsyncClient, alice: Account, bob: Account
) -> None:
    """Sessions whose refresh tokens have all expired, and ended ones, would pile up with
    every login; the user's next sign-in removes them. Live sessions, and the spent tokens
    that reuse detection needs, stay."""
    forgotten = alice.tokens
    phone = (await login(client, alice.email, alice.password)).json()
    stolen = phone["refresh_token"]
    phone = (await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})).json()
    await _expire_refresh_tokens(app, forgotten, bob.tokens)

    laptop = (await login(client, alice.email, alice.password)).json()

    assert await _session_ids(app, alice) == {_session_id(phone), _session_id(laptop)}
    assert await _session_ids(app, bob) == {_session_id(bob.tokens)}  # not until bob signs in
    replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert "already used" in assert_problem(replay, 401)["detail"]


async def test_the_prune_command_clears_every_users_dead_sessions(
    app: FastAPI, client: AsyncClient, database_url: str, account: AccountFactory
) -> None:
    idle, gone, active = [await account() for _ in range(3)]
    await _expire_refresh_tokens(app, idle.tokens)
    refresh = {"refresh_token": active.tokens["refresh_token"]}
    rotated = (await client.post("/api/v1/auth/refresh", json=refresh)).json()
    await _expire_refresh_tokens(app, rotated, spent_only=True)
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": gone.tokens["refresh_token"]}
    )
    assert logout.status_code == 204

    env = {**os.environ, "DATABASE_URL": database_url, "AUTO_MIGRATE": "false"}
    command = [sys.executable, "-m", "project", "prune-sessions"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert "Deleted 2 ended sessions and 1 more expired refresh tokens." in done.stdout
    assert await _session_ids(app, idle) == set()
    assert await _session_ids(app, gone) == set()
    assert await _session_ids(app, active) == {_session_id(active.tokens)}
    assert (await client.get(ME, headers=bearer(rotated))).status_code == 200
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 200


async def test_no_response_ever_carries_a_password_hash(
    client: AsyncClient, account: AccountFactory
) -> None:
    admin = await account(superuser=True)
    user = await account(full_name="Some One")
    responses = [
        await client.get(ME, headers=user.headers),
        await client.patch(ME, json={"full_name": "Renamed"}, headers=user.headers),
        await client.get("/api/v1/users", headers=admin.headers),
        await client.get(f"/api/v1/users/{user.id}", headers=admin.headers),
        await client.patch(
            f"/api/v1/users/{user.id}", json={"full_name": "X"}, headers=admin.headers
        ),
    ]
    for response in responses:
        assert response.status_code == 200
        assert "argon2" not in response.text
        assert "password" not in response.text


async def test_login_takes_what_swagger_uis_authorize_button_sends(
    client: AsyncClient, alice: Account
) -> None:
    form = {
        "grant_type": "password",
        "username": alice.email,
        "password": alice.password,
        "scope": "",
        "client_id": "",
        "client_secret": "",
    }
    response = await client.post("/api/v1/auth/login", data=form)
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    other_grant = await client.post(
        "/api/v1/auth/login", data={**form, "grant_type": "client_credentials"}
    )
    assert assert_problem(other_grant, 422)["errors"][0]["loc"] == ["body", "grant_type"]
    smuggled = await client.post("/api/v1/auth/login", data={**form, "is_superuser": "true"})
    assert assert_problem(smuggled, 422)["errors"][0]["loc"] == ["body", "is_superuser"]


class TestStrongerHashSettings:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"argon2_time_cost": 3})

    async def test_an_older_hash_is_upgraded_when_its_owner_signs_in(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        weaker = CryptContext(schemes=["argon2"], argon2__time_cost=2, argon2__memory_cost=19456)
        async with app.state.database.session(write=True) as session:
            user = await session.scalar(select(User).where(col(User.email) == alice.email))
            assert user is not None
            user.hashed_password = weaker.hash(alice.password)
            await session.commit()

        assert (await login(client, alice.email, alice.password)).status_code == 200
        async with app.state.database.session() as session:
            upgraded = await session.scalar(
                select(col(User.hashed_password)).where(col(User.email) == alice.email)
            )
        assert upgraded is not None and ",t=3," in upgraded
        assert (await login(client, alice.email, alice.password)).status_code == 200


class TestFewHashingSlots:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"password_hash_concurrency": 1, "password_hash_queue": 6}
        )

    async def test_a_flood_of_registrations_does_not_keep_anyone_from_signing_in(
        self, client: AsyncClient, alice: Account
    ) -> None:
        async def register(n: int) -> int:
            body = {"email": f"flood{n}@example.com", "password": PASSWORD}
            return (await client.post("/api/v1/auth/register", json=body)).status_code

        flood = [asyncio.create_task(register(n)) for n in range(40)]
        # The first refusals mean the registrations' line is full: sign in now.
        await asyncio.wait(flood, return_when=asyncio.FIRST_COMPLETED)
        signed_in = await login(client, alice.email, alice.password)
        statuses = await asyncio.gather(*flood)

        assert signed_in.status_code == 200, signed_in.text
        assert statuses.count(503) >= 40 - 1 - 6, statuses  # only one hashes, six may wait
        assert set(statuses) == {201, 503}
