"""The command line (`python -m project --help`): a superuser's password comes from the environment
or a prompt, never an argument. Run prune-sessions daily; start.sh runs check-settings first;
prune-sessions also forgets sent emails and expired email links; failed-emails shows the emails
the outbox gave up on, and sends them again with --retry."""

import argparse
import asyncio
import getpass
import os
import sys
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col

from project.auth import credentials, links, sessions
from project.auth.credentials import PasswordHasher
from project.config import get_settings
from project.database import Database, migrate
from project.mail import outbox
from project.models import User, UserCreate
from project.services import users
from project.text import canonical_email

KEEP_DAYS = 30  # sent emails and expired email links, for questions about them


async def _emails(database: Database, retry: bool) -> str:
    """The emails that failed for good; with `retry`, each due again."""
    found = await outbox.failed(database)
    lines = [
        f"{m.id}  {m.created_at:%Y-%m-%d %H:%M}Z  {m.recipient}  {m.subject!r}  "
        f"{m.attempts} attempts: {m.last_error}"
        for m in found
    ]
    if retry:
        lines.append(f"Made {await outbox.retry_failed(database)} failed emails due again.")
    return "\n".join(lines or ["No failed emails."])


async def _run(
    command: str, email: str, password: str, client: str = "", retry: bool = False
) -> str:
    settings = get_settings()
    if settings.migrate_at_startup:
        await migrate(settings.database_url)
    database = Database(settings)
    try:
        if command == "create-superuser":
            async with database.driver() as db:
                if await users.ensure_superuser(db, PasswordHasher(settings), email, password):
                    return f"Created superuser {email}."
            async with database.session() as session:
                user = await session.scalar(select(User).where(col(User.email) == email))
            if user is not None and not user.is_superuser:
                return (
                    f"{email} exists and is not a superuser; unchanged. A superuser can make it "
                    "one (the admin, or PATCH /api/v1/users/{id} with is_superuser)."
                )
            return f"{email} exists; unchanged."
        if command == "failed-emails":
            return await _emails(database, retry)
        async with database.session(write=True) as session:
            if command == "prune-sessions":
                ended, tokens = await sessions.prune(session, settings.admin_session_lifetime)
                done = f"Deleted {ended} ended sessions and {tokens} more expired refresh tokens."
                kept = timedelta(days=KEEP_DAYS)
                sent, spent = await outbox.prune(session, kept), await links.prune(session, kept)
                done += f" Deleted {sent} sent emails and {spent} expired email links."
            else:
                forgot = await credentials.unlock(session, email, client)
                done = f"Forgot {forgot} sign-in attempts for {client or email}."
            await session.commit()
            return done
    finally:
        await database.engine.dispose()


def _client(value: str) -> str:
    """`--address`: an address, or an IPv6 /64 (`2001:db8::/64`), as the throttle keys it."""
    address, slash, prefix = value.partition("/")
    key = credentials.client_key(address)
    if slash and not (prefix == "64" and key.endswith("/64")):
        raise argparse.ArgumentTypeError(f"{value} is no IP address, nor an IPv6 /64")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m project")
    add = parser.add_subparsers(dest="command", required=True).add_parser
    create = add("create-superuser", help="create a superuser unless the email exists")
    create.add_argument("--email", default=os.environ.get("FIRST_SUPERUSER_EMAIL"))
    add("prune-sessions", help="delete ended login sessions and expired refresh tokens")
    unlock = add("unlock-sign-in", help="forget an email's or an address's failed sign-ins")
    which = unlock.add_mutually_exclusive_group(required=True)
    which.add_argument("--email")
    which.add_argument("--address", type=_client, help="an IP address, or an IPv6 /64")
    add("check-settings", help="check the settings and say what is wrong")
    emails = add("failed-emails", help="list the emails that failed for good")
    emails.add_argument("--retry", action="store_true", help="and send them again")
    args = parser.parse_args(argv)

    try:  # every command needs settings the service could run with; each problem is said
        settings = get_settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(map(str, error["loc"])).upper()
            for line in error["msg"].removeprefix("Value error, ").splitlines():
                print(f"{where + ': ' if where else ''}{line}", file=sys.stderr)
        return 2
    if args.command == "check-settings":
        print(f"Settings are valid ({settings.environment}).")
    # A command run without the service's environment would quietly use a development database.
    print(f"Database: {make_url(settings.database_url).render_as_string(hide_password=True)}")
    if args.command == "check-settings":
        return 0
    email, password = canonical_email(getattr(args, "email", None) or ""), ""
    if args.command == "create-superuser":
        if not args.email:
            parser.error("--email (or FIRST_SUPERUSER_EMAIL) is required")
        password = os.environ.get("FIRST_SUPERUSER_PASSWORD", "")
        if not password:
            if not sys.stdin.isatty():
                parser.error("no terminal to ask for the password on: set FIRST_SUPERUSER_PASSWORD")
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password again: ") != password:
                print("The passwords differ; nothing was changed.", file=sys.stderr)
                return 2
        try:
            account = UserCreate(email=args.email, password=password)
        except ValidationError as exc:
            for error in exc.errors():
                print(f"{error['loc'][0]}: {error['msg']}", file=sys.stderr)
            return 2
        email, password = account.email, account.password
    address, retry = getattr(args, "address", None) or "", getattr(args, "retry", False)
    print(asyncio.run(_run(args.command, email, password, address, retry)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
