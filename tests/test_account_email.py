"""Password reset and email verification, end to end: the service sends real mail to an SMTP
server the tests run (aiosmtpd), and each link is read from the message received."""

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlmodel import col

from project.auth import links
from project.config import Settings
from project.models import AccountToken, OutboxMessage, utcnow
from tests.conftest import AccountFactory
from tests.factories import (
    PASSWORD,
    Account,
    assert_problem,
    login,
    production_settings,
    signed_in_again,
)
from tests.mailbox import FRONTEND_URL, Mailbox, html_of, sending_to, text_of, token_in

RESET, CONFIRM = "/api/v1/auth/password-reset", "/api/v1/auth/password-reset/confirm"
VERIFY, RESEND = "/api/v1/auth/verify-email", "/api/v1/auth/verify-email/resend"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a brand new passphrase"
RESET_MAIL, VERIFY_MAIL = "Reset your password", "Confirm your email address"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture
def settings(settings: Settings, mailbox: Mailbox, request: pytest.FixtureRequest) -> Settings:
    return sending_to(mailbox, settings, **getattr(request, "param", {}))


async def reset_token(client: AsyncClient, mailbox: Mailbox, who: Account, nth: int = 1) -> str:
    """Ask for a reset link for `who` and read the `nth` one received from the message."""
    assert (await client.post(RESET, json={"email": who.email})).status_code == 202
    received = await mailbox.receive(who.email, nth, RESET_MAIL)
    return token_in(received[-1], "reset-password")


async def test_a_reset_link_sets_a_new_password_and_ends_every_session(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    other_device = await signed_in_again(client, alice)
    response = await client.post(RESET, json={"email": alice.email.upper()})
    assert response.status_code == 202
    assert response.json() == {
        "detail": "If an account has this email, a link is on its way to it."
    }
    [message] = await mailbox.receive(alice.email, subject=RESET_MAIL)
    assert "30 minutes" in text_of(message) and "30 minutes" in html_of(message)
    token = token_in(message, "reset-password")
    assert len(token) == 43  # 32 random bytes, base64url

    body = {"token": token, "new_password": NEW_PASSWORD}
    assert (await client.post(CONFIRM, json=body)).status_code == 204
    for session in (alice, other_device):
        assert_problem(await client.get(ME, headers=session.headers), 401)
    assert (await login(client, alice.email, PASSWORD)).status_code == 401
    assert (await login(client, alice.email, NEW_PASSWORD)).status_code == 200
    # The link works once.
    again = await client.post(CONFIRM, json={"token": token, "new_password": "yet another one"})
    assert assert_problem(again, 410)["detail"] == links.USED
    assert (await login(client, alice.email, NEW_PASSWORD)).status_code == 200


async def test_the_answer_is_the_same_for_an_email_without_an_account(
    client: AsyncClient, mailbox: Mailbox, alice: Account, account: AccountFactory
) -> None:
    known = await client.post(RESET, json={"email": alice.email})
    unknown = await client.post(RESET, json={"email": "nobody@example.com"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    ignore = {"x-request-id", "date", "content-length"}
    assert {k: v for k, v in known.headers.items() if k not in ignore} == {
        k: v for k, v in unknown.headers.items() if k not in ignore
    }
    # Only the account was mailed: a message sent after both arrives, and no other came.
    bob = await account(email="bob@example.com")
    await reset_token(client, mailbox, bob)
    resets = [m["To"] for m in mailbox.messages if m["Subject"] == RESET_MAIL]
    assert resets == [alice.email, bob.email]


async def test_a_forged_expired_or_superseded_token_changes_nothing(
    client: AsyncClient, mailbox: Mailbox, alice: Account, app: FastAPI
) -> None:
    first = await reset_token(client, mailbox, alice)
    second = await reset_token(client, mailbox, alice, nth=2)

    def attempt(token: str) -> dict[str, str]:
        return {"token": token, "new_password": NEW_PASSWORD}

    forged = await client.post(CONFIRM, json=attempt("x" * 43))
    assert assert_problem(forged, 400)["detail"] == links.FORGED
    superseded = await client.post(CONFIRM, json=attempt(first))
    assert assert_problem(superseded, 410)["detail"] == links.VOID
    async with app.state.database.session(write=True) as session:
        past = utcnow() - timedelta(seconds=1)
        await session.execute(update(AccountToken).values(expires_at=past))
        await session.commit()
    expired = await client.post(CONFIRM, json=attempt(second))
    assert assert_problem(expired, 410)["detail"] == links.EXPIRED
    # Nothing changed: the password, and alice's session.
    assert (await client.get(ME, headers=alice.headers)).status_code == 200
    assert (await login(client, alice.email, PASSWORD)).status_code == 200


async def test_a_new_password_voids_the_reset_links_sent_before(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    token = await reset_token(client, mailbox, alice)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    put = await client.put(f"{ME}/password", json=change, headers=alice.headers)
    assert put.status_code == 204
    stale = await client.post(CONFIRM, json={"token": token, "new_password": "another one!"})
    assert assert_problem(stale, 410)["detail"] == links.VOID
    assert (await login(client, alice.email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_lifts_the_sign_in_lockout(
    client: AsyncClient, mailbox: Mailbox, alice: Account, settings: Settings
) -> None:
    for _ in range(settings.login_max_failures_per_email):
        assert (await login(client, alice.email, "wrong password")).status_code == 401
    assert_problem(await login(client, alice.email, PASSWORD), 429)
    token = await reset_token(client, mailbox, alice)
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert (await client.post(CONFIRM, json=body)).status_code == 204
    assert (await login(client, alice.email, NEW_PASSWORD)).status_code == 200


async def test_reset_requests_are_throttled_per_email_known_or_not(
    client: AsyncClient, alice: Account, settings: Settings
) -> None:
    for email in (alice.email, "nobody@example.com"):
        for _ in range(settings.mail_max_per_email):
            assert (await client.post(RESET, json={"email": email})).status_code == 202
        refused = await client.post(RESET, json={"email": email})
        assert_problem(refused, 429)
        assert 0 < int(refused.headers["Retry-After"]) <= settings.mail_window_seconds


async def test_reset_requests_are_throttled_per_client(
    client: AsyncClient, settings: Settings
) -> None:
    for n in range(settings.mail_max_per_client):
        response = await client.post(RESET, json={"email": f"someone{n}@example.com"})
        assert response.status_code == 202
    assert_problem(await client.post(RESET, json={"email": "one.more@example.com"}), 429)


async def test_links_start_with_the_frontend_url_whatever_the_host(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    response = await client.post(RESET, json={"email": alice.email}, headers={"Host": "t"})
    assert response.status_code == 202
    [message] = await mailbox.receive(alice.email, subject=RESET_MAIL)
    assert token_in(message, "reset-password")
    assert "http://t" not in text_of(message) + html_of(message)


async def test_registration_mails_a_link_that_verifies_the_email(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    assert alice.user["email_verified_at"] is None
    [message] = await mailbox.receive(alice.email, subject=VERIFY_MAIL)
    token = token_in(message, "verify-email")
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204
    me = (await client.get(ME, headers=alice.headers)).json()
    assert me["email_verified_at"] is not None
    assert assert_problem(await client.post(VERIFY, json={"token": token}), 410)["detail"] == (
        links.USED
    )
    assert_problem(await client.post(VERIFY, json={"token": "not-a-token"}), 400)


async def test_a_new_email_is_unverified_until_its_link_is_followed(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    first = token_in((await mailbox.receive(alice.email))[0], "verify-email")
    change = {"email": "alice.new@example.com", "current_password": PASSWORD}
    changed = await client.patch(ME, json=change, headers=alice.headers)
    assert changed.status_code == 200 and changed.json()["email_verified_at"] is None
    # The link sent to the old address no longer verifies anything.
    assert assert_problem(await client.post(VERIFY, json={"token": first}), 410)
    [message] = await mailbox.receive("alice.new@example.com")
    assert (
        await client.post(VERIFY, json={"token": token_in(message, "verify-email")})
    ).status_code == 204
    assert (await client.get(ME, headers=alice.headers)).json()["email_verified_at"] is not None


async def test_resending_voids_the_earlier_link(
    client: AsyncClient, mailbox: Mailbox, alice: Account
) -> None:
    first = token_in((await mailbox.receive(alice.email))[0], "verify-email")
    response = await client.post(RESEND, json={"email": alice.email})
    assert response.status_code == 202
    second = token_in((await mailbox.receive(alice.email, 2, VERIFY_MAIL))[1], "verify-email")
    assert assert_problem(await client.post(VERIFY, json={"token": first}), 410)
    assert (await client.post(VERIFY, json={"token": second})).status_code == 204
    # Verified: a resend mails nothing, and answers the same.
    again = await client.post(RESEND, json={"email": alice.email})
    unknown = await client.post(RESEND, json={"email": "nobody@example.com"})
    assert (
        (again.status_code, again.json())
        == (unknown.status_code, unknown.json())
        == (
            202,
            response.json(),
        )
    )
    await reset_token(client, mailbox, alice)  # sent after them, received after nothing else
    assert len(mailbox.to(alice.email, VERIFY_MAIL)) == 2


_MINTED = {"id", "created_at", "updated_at"}
VARYING = {"date", "x-request-id", "content-length"}
STRICT = pytest.mark.parametrize("settings", [{"require_verified_email": True}], indirect=True)


@STRICT
async def test_with_verified_emails_required_registration_tells_nothing(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    """The taken email is answered as a new one is, and its owner is mailed a notice."""
    body = {"email": "carol@example.com", "password": PASSWORD}
    new = await client.post("/api/v1/auth/register", json=body)
    taken = await client.post(
        "/api/v1/auth/register", json={**body, "password": "another password"}
    )
    for response in (new, taken):
        assert response.status_code == 201
        assert set(response.headers) - VARYING == set(new.headers) - VARYING
        assert {k: v for k, v in response.json().items() if k not in _MINTED} == {
            k: v for k, v in new.json().items() if k not in _MINTED
        }
    # Unverified: no sign-in yet, but only the right password learns why.
    assert_problem(await login(client, body["email"], "another password"), 401)
    refused = await login(client, body["email"], PASSWORD)
    assert "Confirm your email" in assert_problem(refused, 403)["detail"]
    verify, notice = await mailbox.receive(body["email"], 2)
    assert notice["Subject"] == "You already have an account"
    assert f"{FRONTEND_URL}/reset-password" in text_of(notice)
    token = token_in(verify, "verify-email")
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204
    assert (await login(client, body["email"], PASSWORD)).status_code == 200


async def test_the_outbox_and_the_token_are_written_together(
    client: AsyncClient, mailbox: Mailbox, alice: Account, app: FastAPI
) -> None:
    """Only a hash of the token is stored, and a sent message keeps no body."""
    token = await reset_token(client, mailbox, alice)
    async with app.state.database.session() as session:
        hashes = list(await session.scalars(select(col(AccountToken.token_hash))))
    assert token not in str(hashes)
    assert links._digest(token) in hashes
    # Received, then marked sent (a moment later): its body, link and all, is gone.
    deadline = time.monotonic() + 30
    while True:
        async with app.state.database.session() as session:
            found = select(OutboxMessage.text_body, OutboxMessage.html_body, OutboxMessage.status)
            rows = list(await session.execute(found))
        if all(status == "sent" for *_, status in rows):
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    assert len(rows) == 2 and all(text == html == "" for text, html, _ in rows)


async def test_a_superuser_mails_a_reset_or_verification_link_from_the_admin(
    app: FastAPI, client: AsyncClient, mailbox: Mailbox, alice: Account, admin: Account
) -> None:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as browser:
        signed_in = await browser.post(
            "/admin/login", data={"username": admin.email, "password": admin.password}
        )
        assert signed_in.status_code == 302
        page = await browser.get(f"/admin/user/details/{alice.id}")
        assert "Send a password reset link" in page.text
        assert "Resend the verification email" in page.text
        for action in ("send-reset-link", "send-verification"):
            done = await browser.get(f"/admin/user/action/{action}", params={"pks": alice.id})
            assert done.status_code == 302
            assert done.headers["location"].endswith(f"/admin/user/details/{alice.id}")
    [reset] = await mailbox.receive(alice.email, subject=RESET_MAIL)
    first, second = await mailbox.receive(alice.email, 2, VERIFY_MAIL)
    body = {"token": token_in(reset, "reset-password"), "new_password": NEW_PASSWORD}
    assert (await client.post(CONFIRM, json=body)).status_code == 204
    # The new verification link replaced the one sent at registration.
    stale = await client.post(VERIFY, json={"token": token_in(first, "verify-email")})
    assert assert_problem(stale, 410)["detail"] == links.VOID
    fresh = await client.post(VERIFY, json={"token": token_in(second, "verify-email")})
    assert fresh.status_code == 204


def test_email_settings_default_and_refuse_as_documented() -> None:
    assert production_settings().require_verified_email
    assert not production_settings(require_verified_email=False).require_verified_email
    assert production_settings(smtp_ssl=True, smtp_port=465).smtp_tls is False
    for values, problem in (
        ({"smtp_user": "mailer"}, "SMTP_USER needs SMTP_TLS or SMTP_SSL"),
        ({"smtp_tls": True, "smtp_ssl": True}, "SMTP_SSL and SMTP_TLS exclude each other"),
        ({"frontend_url": "app.example.com/x"}, "FRONTEND_URL must be an http(s) URL"),
        ({"frontend_url": "https://app.example.com/?next=1"}, "FRONTEND_URL must be an"),
    ):
        with pytest.raises(ValidationError, match=re.escape(problem)):
            production_settings(smtp_tls=values.pop("smtp_tls", False), **values)
    assert production_settings(frontend_url="https://example.com/app/").frontend_url == (
        "https://example.com/app"
    )
