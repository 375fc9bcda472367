"""The outbox's sender, one per worker: it claims a due message (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite has one writer at a time), holds it for a lease, sends it over SMTP (or to
the log, with no `SMTP_HOST`), then marks it sent, or due again later, or failed for good.

Delivery is at-least-once: a sender that dies between the SMTP server's "OK" and marking the
message sent leaves it to be sent again once its lease passes. Each message keeps one
`Message-ID` on every attempt, by which mail clients can recognise a repeat."""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from project.config import Settings
from project.database import Database
from project.models import OutboxMessage, utcnow

logger = logging.getLogger("project.mail")
PENDING, SENT, FAILED = "pending", "sent", "failed"
LONGEST_WAIT = timedelta(hours=1)


def _due(now: object) -> ColumnElement[bool]:
    claimed = col(OutboxMessage.claimed_until)
    due = (col(OutboxMessage.status) == PENDING) & (col(OutboxMessage.next_attempt_at) <= now)
    return due & (claimed.is_(None) | (claimed < now))


class Outbox:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database, self.settings = database, settings
        # A claim lasts well past one attempt: nobody else sends it meanwhile.
        self.lease = timedelta(seconds=2 * settings.smtp_timeout + 10)
        self.observers: list[Callable[[str], None]] = []  # told "sent" or "failed"

    async def run(self) -> None:
        """Send what is due, then look again every `MAIL_POLL_SECONDS`; until cancelled."""
        while True:
            try:
                while await self.send_one():
                    pass
            except Exception as exc:  # the database is down: try again at the next look
                logger.warning("the outbox could not be read: %r", exc)
            await asyncio.sleep(self.settings.mail_poll_seconds)

    async def claim(self) -> OutboxMessage | None:
        """The most overdue message, held by this sender for a lease; or None."""
        now = utcnow()
        first = select(OutboxMessage).where(_due(now)).order_by(col(OutboxMessage.next_attempt_at))
        # A read first: most looks find nothing, and need no writer's turn (SQLite) to say so.
        any_due = select(col(OutboxMessage.id)).where(_due(now)).limit(1)
        async with self.database.session() as session:
            if await session.scalar(any_due) is None:
                return None
        async with self.database.session(write=True) as session:
            message = await session.scalar(first.limit(1).with_for_update(skip_locked=True))
            if message is not None:
                message.claimed_until = now + self.lease
                message.attempts += 1
                await session.commit()
            return message

    async def send_one(self) -> bool:
        """Claim and send one message: whether there was one."""
        message = await self.claim()
        if message is None:
            return False
        try:
            await self.deliver(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._failed(message, exc)
        else:
            # Sent: the body (with its link's token) need not be kept.
            done = {"status": SENT, "sent_at": utcnow(), "text_body": "", "html_body": ""}
            await self._mark(message, claimed_until=None, last_error=None, **done)
            self._tell(SENT)
        return True

    async def deliver(self, message: OutboxMessage) -> None:
        s = self.settings
        if not s.smtp_host:
            fields = {"to": message.recipient, "subject": message.subject}
            logger.info(
                "email (not sent: no SMTP_HOST)\n%s", message.text_body, extra={"fields": fields}
            )
            return
        email = EmailMessage()
        email["From"] = formataddr((s.emails_from_name, s.emails_from_email))
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        domain = s.emails_from_email.rpartition("@")[2] or "localhost"
        email["Message-ID"] = f"<{message.id}@{domain}>"
        email.set_content(message.text_body)
        email.add_alternative(message.html_body, subtype="html")
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        await aiosmtplib.send(
            email,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user or None,
            password=password if s.smtp_user else None,
            start_tls=s.smtp_tls,
            use_tls=s.smtp_ssl,
            timeout=s.smtp_timeout,
        )

    async def _failed(self, message: OutboxMessage, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        fields = {"message_id": str(message.id), "attempts": message.attempts, "error": error}
        if message.attempts >= self.settings.mail_max_attempts:
            logger.error("email failed for good", extra={"fields": fields})
            await self._mark(message, status=FAILED, claimed_until=None, last_error=error)
            self._tell(FAILED)
            return
        wait = timedelta(seconds=self.settings.mail_retry_seconds * 2 ** (message.attempts - 1))
        logger.warning("email not sent; will retry", extra={"fields": fields})
        later = utcnow() + min(wait, LONGEST_WAIT)
        await self._mark(message, next_attempt_at=later, claimed_until=None, last_error=error)

    async def _mark(self, message: OutboxMessage, **values: object) -> None:
        async with self.database.session(write=True) as session:
            this = col(OutboxMessage.id) == message.id
            await session.execute(update(OutboxMessage).where(this).values(**values))
            await session.commit()

    def _tell(self, outcome: str) -> None:
        for observe in self.observers:
            observe(outcome)


async def prune(session: AsyncSession, older_than: timedelta) -> int:
    """Delete the messages sent more than `older_than` ago: how many (the caller commits)."""
    old = (col(OutboxMessage.status) == SENT) & (col(OutboxMessage.sent_at) < utcnow() - older_than)
    result = await session.execute(delete(OutboxMessage).where(old))
    return int(getattr(result, "rowcount", 0) or 0)


async def failed(database: Database) -> list[OutboxMessage]:
    """The messages that failed for good, oldest first."""
    async with database.session() as session:
        found = select(OutboxMessage).where(col(OutboxMessage.status) == FAILED)
        return list(await session.scalars(found.order_by(col(OutboxMessage.created_at))))


async def retry_failed(database: Database) -> int:
    """Make every failed message due again, with its attempts counted afresh: how many."""
    async with database.session(write=True) as session:
        again = {"status": PENDING, "attempts": 0, "next_attempt_at": utcnow()}
        is_failed = col(OutboxMessage.status) == FAILED
        result = await session.execute(update(OutboxMessage).where(is_failed).values(**again))
        await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
