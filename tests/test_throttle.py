"""Login throttling: per email and per client address, counted in the database."""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, event
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from project.auth import credentials
from project.auth.credentials import AT_ONCE, LOCKED
from project.config import Settings
from project.models import LoginAttempt, utcnow
from tests.conftest import ROOT
from tests.factories import Account, assert_problem, login

WINDOW = 900
ME = "/api/v1/users/me"


async def _fail(client: AsyncClient, email: str, times: int) -> list[int]:
    return [(await login(client, email, "wrong password")).status_code for _ in range(times)]


@asynccontextmanager
async def _from(app: FastAPI, address: str) -> AsyncIterator[AsyncClient]:
    """A client at `address`, as the server sees it."""
    transport = ASGITransport(app=app, client=(address, 4000))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _age_attempts(app: FastAPI, by: timedelta) -> None:
    """Move every recorded attempt into the past, as if `by` had elapsed."""
    async with app.state.database.session(write=True) as session:
        for attempt in await session.scalars(select(LoginAttempt)):
            attempt.created_at -= by
        await session.commit()


async def test_an_email_is_locked_after_five_failures(client: AsyncClient, alice: Account) -> None:
    assert await _fail(client, alice.email, 5) == [401] * 5
    locked = await login(client, alice.email, "wrong password")
    problem = assert_problem(locked, 429)
    assert 0 < int(locked.headers["Retry-After"]) <= WINDOW
    # Even the right password waits: otherwise the lock would only slow a guesser down.
    right = await login(client, alice.email, alice.password)
    assert_problem(right, 429)
    assert "alice" not in problem["detail"].lower()


async def test_an_unknown_email_is_throttled_exactly_like_a_known_one(
    client: AsyncClient, alice: Account
) -> None:
    assert await _fail(client, "ghost@example.com", 5) == [401] * 5
    ghost = await login(client, "ghost@example.com", "wrong password")
    assert await _fail(client, alice.email, 5) == [401] * 5
    real = await login(client, alice.email, "wrong password")
    assert assert_problem(ghost, 429)["detail"] == assert_problem(real, 429)["detail"]


async def test_the_lock_on_one_account_does_not_touch_another(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    await _fail(client, alice.email, 6)
    assert (await login(client, bob.email, bob.password)).status_code == 200


async def test_the_owner_gets_back_in_once_the_window_has_passed(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    await _fail(client, alice.email, 5)
    # An attacker who keeps hammering a locked account does not extend the lock.
    assert await _fail(client, alice.email, 10) == [429] * 10
    await _age_attempts(app, timedelta(seconds=WINDOW + 1))
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_an_operator_can_unlock_an_email_at_once(
    client: AsyncClient, database_url: str, alice: Account, bob: Account
) -> None:
    for who in (alice, bob):
        await _fail(client, who.email, 5)
    env = {**os.environ, "DATABASE_URL": database_url, "AUTO_MIGRATE": "false"}
    command = [sys.executable, "-m", "project", "unlock-sign-in", "--email", " Alice@Example.com"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Forgot 5 sign-in attempts for alice@example.com." in done.stdout
    assert (await login(client, alice.email, alice.password)).status_code == 200
    assert_problem(await login(client, bob.email, bob.password), 429)  # only the one named


async def test_the_window_slides(app: FastAPI, client: AsyncClient, alice: Account) -> None:
    await _fail(client, alice.email, 4)
    await _age_attempts(app, timedelta(seconds=WINDOW - 60))
    await _fail(client, alice.email, 1)
    assert (await login(client, alice.email, "wrong")).status_code == 429
    await _age_attempts(app, timedelta(seconds=61))  # the first four leave the window
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_a_successful_login_resets_no_other_count(
    client: AsyncClient, alice: Account, bob: Account
) -> None:
    await _fail(client, alice.email, 4)
    assert (await login(client, bob.email, bob.password)).status_code == 200
    assert (await login(client, alice.email, alice.password)).status_code == 200
    assert await _fail(client, alice.email, 1) == [401]
    assert (await login(client, alice.email, "wrong")).status_code == 429


async def test_a_concurrent_burst_cannot_slip_past_the_limit(
    client: AsyncClient, alice: Account
) -> None:
    statuses = await asyncio.gather(*(login(client, alice.email, f"guess {i}") for i in range(20)))
    codes = sorted(r.status_code for r in statuses)
    assert codes.count(401) <= 5
    assert codes.count(429) >= 15
    assert set(codes) <= {401, 429}


async def test_a_burst_of_correct_sign_ins_all_get_in(client: AsyncClient, alice: Account) -> None:
    """Sign-ins in flight are no failures: twelve at once (a script, many tabs) take turns
    instead of being refused as over the limit of five."""
    burst = await asyncio.gather(*(login(client, alice.email, alice.password) for _ in range(12)))
    assert [r.status_code for r in burst] == [200] * 12
    assert (await login(client, alice.email, "wrong password")).status_code == 401


async def _in_flight_elsewhere(app: FastAPI, email: str, count: int, age: timedelta) -> None:
    """Attempts another worker has recorded and not finished, started `age` ago."""
    started = utcnow() - age
    async with app.state.database.session(write=True) as session:
        for _ in range(count):
            session.add(LoginAttempt(email=email, client="192.0.2.1", created_at=started))
        await session.commit()


async def test_sign_ins_in_flight_elsewhere_say_retry_in_a_moment(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    await _fail(client, alice.email, 2)
    await _in_flight_elsewhere(app, alice.email, 3, timedelta(seconds=1))
    refused = await login(client, alice.email, alice.password)
    problem = assert_problem(refused, 429)
    assert refused.headers["Retry-After"] == "1"
    assert problem["detail"] == AT_ONCE
    # The refusal is no failure: once the others have ended, the owner gets in.
    async with app.state.database.session(write=True) as session:
        await session.execute(delete(LoginAttempt).where(col(LoginAttempt.failed).is_(False)))
        await session.commit()
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_an_attempt_that_never_ended_counts_as_failed(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    """An attempt whose process died mid-way (the row was never resolved) must not let a
    guesser off: after a minute it counts as a failure."""
    await _in_flight_elsewhere(app, alice.email, 5, timedelta(minutes=2))
    locked = await login(client, alice.email, alice.password)
    assert assert_problem(locked, 429)["detail"] == LOCKED
    assert int(locked.headers["Retry-After"]) > 60


async def test_a_sign_in_that_waits_too_long_for_its_turn_is_told_to_retry(
    client: AsyncClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "TURN_WAIT_SECONDS", 0.05)
    async with credentials.take_turn(alice.email):  # a sign-in for alice that takes long
        waited = await login(client, alice.email, alice.password)
    assert assert_problem(waited, 429)["detail"] == AT_ONCE
    assert waited.headers["Retry-After"] == "1"
    assert (await login(client, alice.email, alice.password)).status_code == 200


class TestPerClientLimit:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"login_max_failures_per_client": 3})

    async def test_one_client_is_limited_across_many_emails(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        for n in range(3):
            assert (await login(client, f"target{n}@example.com", "x" * 8)).status_code == 401
        assert_problem(await login(client, "target9@example.com", "x" * 8), 429)
        # Another client address is not affected by this one's failures.
        transport = ASGITransport(app=app, client=("203.0.113.7", 4000))
        async with AsyncClient(transport=transport, base_url="http://testserver") as other:
            assert (await login(other, alice.email, alice.password)).status_code == 200

    async def test_an_ipv6_client_is_limited_with_its_64(
        self, app: FastAPI, alice: Account, bob: Account
    ) -> None:
        """One IPv6 host may hold a whole /64: its addresses share one budget. IPv4
        neighbours do not, nor do other /64s."""
        for n, (flooder, neighbour, other) in enumerate(
            (
                ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1"),
                ("198.51.100.1", "::ffff:198.51.100.1", "198.51.100.2"),
            )
        ):
            async with _from(app, flooder) as guesser:
                assert await _fail(guesser, f"target{n}@example.com", 3) == [401] * 3
            async with _from(app, neighbour) as same:
                assert_problem(await login(same, alice.email, alice.password), 429)
            async with _from(app, other) as elsewhere:
                assert (await login(elsewhere, bob.email, bob.password)).status_code == 200

    async def test_an_owner_behind_a_locked_address_keeps_refreshing(
        self, app: FastAPI, alice: Account
    ) -> None:
        async with _from(app, "192.0.2.44") as shared:
            assert await _fail(shared, "target@example.com", 3) == [401] * 3
            assert_problem(await login(shared, alice.email, alice.password), 429)
            body = {"refresh_token": alice.tokens["refresh_token"]}
            assert (await shared.post("/api/v1/auth/refresh", json=body)).status_code == 200

    async def test_an_operator_can_unlock_an_address_at_once(
        self, app: FastAPI, database_url: str, alice: Account
    ) -> None:
        for n, address in enumerate(("2001:db8:7:7::1", "192.0.2.9")):
            async with _from(app, address) as guesser:
                assert await _fail(guesser, f"target{n}@example.com", 3) == [401] * 3
        env = {**os.environ, "DATABASE_URL": database_url, "AUTO_MIGRATE": "false"}

        async def unlock(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "project", "unlock-sign-in", *args]
            return await asyncio.to_thread(
                subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True
            )

        done = await unlock("--address", "2001:db8:7:7:abcd::1")  # any address of the /64
        assert done.returncode == 0, done.stderr
        assert "Forgot 3 sign-in attempts for 2001:db8:7:7::/64." in done.stdout
        async with _from(app, "2001:db8:7:7::1") as unlocked:
            assert (await login(unlocked, alice.email, alice.password)).status_code == 200
        async with _from(app, "192.0.2.9") as still:  # only the one named
            assert_problem(await login(still, alice.email, alice.password), 429)
        done = await unlock("--address", "192.0.2.9")
        assert "Forgot 3 sign-in attempts for 192.0.2.9." in done.stdout
        async with _from(app, "192.0.2.9") as unlocked:
            assert (await login(unlocked, alice.email, alice.password)).status_code == 200
        for args, error in (
            ((), "one of the arguments --email --address is required"),
            (("--email", alice.email, "--address", "192.0.2.9"), "not allowed with"),
            (("--address", "2001:db8::/48"), "2001:db8::/48 is no IP address, nor an IPv6 /64"),
        ):
            refused = await unlock(*args)
            assert (refused.returncode, error in refused.stderr) == (2, True), refused.stderr


async def test_a_login_refused_as_busy_is_not_a_failure(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    hasher = app.state.hasher
    hasher._queued["verify"] = hasher._queue_limit  # the sign-ins' line is full
    for _ in range(6):
        assert_problem(await login(client, alice.email, alice.password), 503)
    hasher._queued["verify"] = 0
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_a_login_the_database_failed_is_not_a_failure(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    """A sign-in whose account lookup the database could not answer (a statement timeout,
    say) is a 503, and never brings the account nearer to its lock."""

    def time_out(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM users" in statement:
            raise OperationalError(statement, None, TimeoutError("statement timeout"))

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", time_out)
    try:
        for _ in range(6):
            assert_problem(await login(client, alice.email, alice.password), 503)
    finally:
        event.remove(engine, "before_cursor_execute", time_out)
    assert (await login(client, alice.email, alice.password)).status_code == 200


async def test_guessing_the_current_password_is_throttled_like_a_login(
    client: AsyncClient, alice: Account, settings: Settings
) -> None:
    async def change(current: str) -> int:
        body = {"current_password": current, "new_password": "a brand new secret"}
        response = await client.put("/api/v1/users/me/password", json=body, headers=alice.headers)
        return response.status_code

    allowed = settings.login_max_failures_per_email
    assert [await change("wrong password") for _ in range(allowed)] == [400] * allowed
    assert_problem(
        await client.put(
            "/api/v1/users/me/password",
            json={"current_password": alice.password, "new_password": "a brand new secret"},
            headers=alice.headers,
        ),
        429,
    )
    assert_problem(await login(client, alice.email, alice.password), 429)


@pytest.mark.parametrize("change", ["delete the account", "change the email"])
async def test_guessing_the_password_to_a_sensitive_change_is_throttled_like_a_login(
    client: AsyncClient, alice: Account, settings: Settings, change: str
) -> None:
    async def attempt(current: str) -> int:
        if change == "delete the account":
            body = {"current_password": current}
            return (
                await client.request("DELETE", ME, json=body, headers=alice.headers)
            ).status_code
        body = {"email": "new@example.com", "current_password": current}
        return (await client.patch(ME, json=body, headers=alice.headers)).status_code

    allowed = settings.login_max_failures_per_email
    assert [await attempt("wrong password") for _ in range(allowed)] == [400] * allowed
    assert await attempt(alice.password) == 429
    assert_problem(await login(client, alice.email, alice.password), 429)
    assert (await client.get(ME, headers=alice.headers)).json()["email"] == alice.email
