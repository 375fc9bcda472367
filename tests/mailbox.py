"""A real SMTP server (aiosmtpd) for the tests, in a thread of its own: it keeps what it
receives, can refuse for a while (451) or be stopped and started again on the same port.

with Mailbox() as mailbox:
    ...  # the service sends to 127.0.0.1:mailbox.port
    [message] = await mailbox.receive("alice@example.com")
    token = token_in(message, "reset-password")
"""

import asyncio
import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from project.config import Settings
from tests.pgcluster import free_port

FRONTEND_URL = "https://app.example.com"
WAIT_SECONDS = 30


class Mailbox:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.refusing = False
        self.delay = 0.0  # seconds each message takes to receive
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        await asyncio.sleep(self.delay)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, recipient: str, subject: str | None = None) -> list[EmailMessage]:
        with self._lock:
            return [
                m for m in self.messages if m["To"] == recipient and subject in (None, m["Subject"])
            ]

    async def receive(
        self, recipient: str, count: int = 1, subject: str | None = None
    ) -> list[EmailMessage]:
        """The first `count` messages to `recipient` (with this subject, if given), waiting
        for them as long as it takes."""
        deadline = time.monotonic() + WAIT_SECONDS
        while len(found := self.to(recipient, subject)) < count:
            assert time.monotonic() < deadline, f"{count} emails to {recipient} never came"
            await asyncio.sleep(0.05)
        return found[:count]

    def wait_for(
        self, recipient: str, count: int = 1, subject: str | None = None
    ) -> list[EmailMessage]:
        """`receive`, from a test that is not async."""
        return asyncio.run(self.receive(recipient, count, subject))

    def __enter__(self) -> "Mailbox":
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def token_in(message: EmailMessage, page: str) -> str:
    """The token of the link to `{FRONTEND_URL}/{page}` in the message's plain-text part,
    which the HTML part links to as well."""
    found = re.search(
        rf"{re.escape(FRONTEND_URL)}/{page}\?token=([A-Za-z0-9_-]+)", text_of(message)
    )
    assert found, text_of(message)
    assert f'href="{FRONTEND_URL}/{page}?token={found.group(1)}"' in html_of(message)
    return found.group(1)


def sending_to(mailbox: Mailbox, settings: Settings, **more: Any) -> Settings:
    """`settings` with the outbox's sender on, sending to `mailbox` and retrying quickly."""
    fast = {"mail_poll_seconds": 0.05, "mail_retry_seconds": 0.1, "smtp_timeout": 5.0}
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_tls": False}
    update = {"mail_sender": True, **smtp, **fast, "frontend_url": FRONTEND_URL, **more}
    return settings.model_copy(update=update)
