"""The outbox loses nothing: an SMTP server down or refusing for a while, a crash between the
commit and the send, a message that keeps failing (counted, listed, sent again by hand), and
two senders on one database, which never send one message at once."""

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, select, update
from sqlmodel import col

from project.config import Settings
from project.database import Database
from project.mail import Letters
from project.mail.outbox import Outbox
from project.models import AccountToken, MailRequest, OutboxMessage, utcnow
from tests.conftest import TEST_SECRET, AccountFactory
from tests.factories import PASSWORD
from tests.mailbox import FRONTEND_URL, Mailbox, sending_to, token_in
from tests.server import LiveServer, run_python

RESET = "/api/v1/auth/password-reset"
WAIT_SECONDS = 30


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture
def settings(settings: Settings, mailbox: Mailbox, request: pytest.FixtureRequest) -> Settings:
    return sending_to(mailbox, settings, **getattr(request, "param", {}))


async def until(app: FastAPI, done: Callable[[list[OutboxMessage]], bool]) -> None:
    """Wait until the outbox's messages are as `done` says."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        async with app.state.database.session() as session:
            if done(list(await session.scalars(select(OutboxMessage)))):
                return
        assert time.monotonic() < deadline, "the outbox never got there"
        await asyncio.sleep(0.05)


async def test_smtp_down_then_refusing_then_back_delivers_every_message(
    client: AsyncClient, mailbox: Mailbox, account: AccountFactory, app: FastAPI
) -> None:
    mailbox.stop()
    people = [await account() for _ in range(3)]
    for who in people:
        assert (await client.post(RESET, json={"email": who.email})).status_code == 202
    await until(app, lambda rows: len(rows) == 6 and all(r.attempts >= 3 for r in rows))
    mailbox.refusing = True  # up, but answering 451
    mailbox.start()
    await until(app, lambda rows: all(r.attempts >= 4 for r in rows))
    mailbox.refusing = False
    for who in people:
        subjects = {m["Subject"] for m in await mailbox.receive(who.email, 2)}
        assert subjects == {"Confirm your email address", "Reset your password"}
    await until(app, lambda rows: all(r.status == "sent" for r in rows))


FAIL_FAST = pytest.mark.parametrize(
    "settings", [{"mail_max_attempts": 2, "metrics_enabled": True}], indirect=True
)


@FAIL_FAST
async def test_a_message_that_keeps_failing_is_counted_listed_and_retried(
    client: AsyncClient,
    mailbox: Mailbox,
    account: AccountFactory,
    app: FastAPI,
    database_url: str,
) -> None:
    mailbox.stop()
    who = await account()
    await until(app, lambda rows: [r.status for r in rows] == ["failed"])
    metrics = (await client.get("/metrics")).text
    [family] = [f for f in text_string_to_metric_families(metrics) if f.name == "emails"]
    assert [(s.labels, s.value) for s in family.samples if s.name == "emails_total"] == [
        ({"outcome": "failed"}, 1.0)
    ]
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "AUTO_MIGRATE": "false",
    }
    listed = await asyncio.to_thread(run_python, "-m", "project", "failed-emails", env=env)
    assert listed.returncode == 0, listed.stderr
    assert who.email in listed.stdout and "2 attempts" in listed.stdout
    mailbox.start()
    retried = await asyncio.to_thread(
        run_python, "-m", "project", "failed-emails", "--retry", env=env
    )
    assert "Made 1 failed emails due again." in retried.stdout, retried.stderr
    [message] = await mailbox.receive(who.email)
    assert token_in(message, "verify-email")


async def _forget_mail_requests(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(delete(MailRequest))
    finally:
        await database.engine.dispose()


def test_a_message_committed_before_a_crash_is_sent_after_the_restart(
    database_url: str, tmp_path: Path, settings: Settings, mailbox: Mailbox
) -> None:
    """Killed (SIGKILL) after the commit and before the send: sent once it runs again."""
    asyncio.run(_forget_mail_requests(settings))
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mailbox.port),
        "SMTP_TLS": "false",
        "FRONTEND_URL": FRONTEND_URL,
        "MAIL_POLL_SECONDS": "3600",  # one look at startup, then none before the kill
    }
    email = f"crash-{uuid.uuid4().hex[:8]}@example.com"
    with LiveServer(database_url, tmp_path, env) as server:
        body = {"email": email, "password": PASSWORD}
        assert httpx.post(f"{server.url}/api/v1/auth/register", json=body).status_code == 201
        assert httpx.post(f"{server.url}{RESET}", json={"email": email}).status_code == 202
        server.kill()
        assert mailbox.to(email) == []
        server.env["MAIL_POLL_SECONDS"] = "0.1"
        server.start()
        received = mailbox.wait_for(email, 2)
    assert {m["Subject"] for m in received} == {"Confirm your email address", "Reset your password"}
    assert token_in(next(m for m in received if "Reset" in m["Subject"]), "reset-password")


async def test_two_senders_never_send_one_message_at_once(
    settings: Settings, mailbox: Mailbox
) -> None:
    """Two workers' senders on one database (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite:
    one writer at a time) share the messages: each is sent once, by one of them."""
    mailbox.delay = 0.05  # a slow server: each send overlaps the other sender's claims
    databases = [Database(settings) for _ in range(2)]
    letters = Letters(settings)
    async with databases[0].session(write=True) as session:
        messages = [
            letters.write("account_exists", f"pair{n}@example.com", link="x") for n in range(30)
        ]
        session.add_all(messages)
        await session.commit()
    ids = {f"<{m.id}@example.com>" for m in messages}
    senders = [Outbox(database, settings) for database in databases]
    sent = [0, 0]
    for n, sender in enumerate(senders):
        sender.observers.append(lambda outcome, n=n: sent.__setitem__(n, sent[n] + 1))
    tasks = [asyncio.create_task(sender.run()) for sender in senders]
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        mine = col(OutboxMessage.id).in_([m.id for m in messages])
        statuses: set[str] = set()
        while statuses != {"sent"}:  # every one marked sent, once received
            assert time.monotonic() < deadline, f"not every message was sent: {statuses}"
            await asyncio.sleep(0.05)
            async with databases[0].session() as session:
                statuses = set(await session.scalars(select(col(OutboxMessage.status)).where(mine)))
        await asyncio.sleep(0.5)  # time enough for any message sent twice to arrive
    finally:
        for task in tasks:
            task.cancel()
        for database in databases:
            await database.engine.dispose()
    received = [str(m["Message-ID"]) for m in mailbox.messages if str(m["Message-ID"]) in ids]
    assert sorted(received) == sorted(ids)  # each once
    assert all(sent), sent  # both took part


async def test_pruning_forgets_old_sent_emails_and_expired_links(
    client: AsyncClient, mailbox: Mailbox, account: AccountFactory, app: FastAPI, database_url: str
) -> None:
    old, recent = await account(), await account()
    for who in (old, recent):
        await mailbox.receive(who.email)
    await until(app, lambda rows: all(r.status == "sent" for r in rows))
    async with app.state.database.session(write=True) as session:
        long_ago = utcnow() - timedelta(days=31)
        to_old = col(OutboxMessage.recipient) == old.email
        await session.execute(update(OutboxMessage).where(to_old).values(sent_at=long_ago))
        await session.execute(
            update(AccountToken)
            .where(col(AccountToken.email) == old.email)
            .values(expires_at=long_ago)
        )
        await session.commit()
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": database_url}
    env |= {"SECRET_KEY": TEST_SECRET, "AUTO_MIGRATE": "false"}
    done = await asyncio.to_thread(run_python, "-m", "project", "prune-sessions", env=env)
    assert "Deleted 1 sent emails and 1 expired email links." in done.stdout, done.stderr
    async with app.state.database.session() as session:
        left = set(await session.scalars(select(col(OutboxMessage.recipient))))
        links = set(await session.scalars(select(col(AccountToken.email))))
    assert left == links == {recent.email}
