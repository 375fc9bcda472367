"""Command line:

* `python -m project create-superuser --email admin@example.com`: the password is read from
  FIRST_SUPERUSER_PASSWORD, or prompted for, never taken as an argument (it would land in
  the shell history and the process list);
* `python -m project prune-sessions`: delete ended login sessions and expired refresh
  tokens of every user (a sign-in does it for its own user), for a daily cron job;
* `python -m project unlock-sign-in --email someone@example.com`: forget the failed sign-ins
  of an email, so that its owner, locked out by someone guessing, gets in before the
  throttling window has passed;
* `python -m project check-settings`: exit 0 if the settings are valid, otherwise say why and
  exit 2 (the start script runs it first, so that a bad setting stops the start instead of
  every worker failing, and failing again, as the server replaces it).
"""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col

from project.auth import sessions, throttle
from project.auth.passwords import PasswordHasher
from project.config import get_settings
from project.database import Database, migrate
from project.models import User, UserCreate
from project.services import users
from project.text import canonical_email


@asynccontextmanager
async def _database() -> AsyncIterator[Database]:
    settings = get_settings()
    if settings.migrate_at_startup:
        await migrate(settings.database_url)
    database = Database(settings)
    try:
        yield database
    finally:
        await database.dispose()


async def _create_superuser(email: str, password: str) -> str:
    async with _database() as database:
        async with database.driver() as db:
            if await users.ensure_superuser(db, PasswordHasher(database.settings), email, password):
                return f"Created superuser {email}."
        async with database.session() as session:
            user = await session.scalar(select(User).where(col(User.email) == email))
        if user is not None and not user.is_superuser:
            return (
                f"{email} exists and is not a superuser; unchanged. A superuser can make it one "
                "(the admin, or PATCH /api/v1/users/{id} with is_superuser)."
            )
        return f"{email} exists; unchanged."


def _target() -> str:
    """The database a command works on, its password hidden: a command run without the
    service's environment would otherwise quietly use the development SQLite file."""
    url = make_url(get_settings().database_url)
    return f"Database: {url.render_as_string(hide_password=True)}"


async def _prune_sessions() -> tuple[int, int]:
    async with _database() as database, database.session(write=True) as session:
        counts = await sessions.prune(session, database.settings.admin_session_lifetime)
        await session.commit()
        return counts


async def _unlock(email: str) -> int:
    async with _database() as database, database.session(write=True) as session:
        forgotten = await throttle.unlock(session, email)
        await session.commit()
        return forgotten


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m project")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-superuser", help="create a superuser unless the email exists"
    )
    create.add_argument("--email", default=os.environ.get("FIRST_SUPERUSER_EMAIL"))
    commands.add_parser(
        "prune-sessions", help="delete ended login sessions and expired refresh tokens"
    )
    unlock = commands.add_parser(
        "unlock-sign-in", help="forget an email's failed sign-ins, ending its lock at once"
    )
    unlock.add_argument("--email", required=True)
    commands.add_parser("check-settings", help="check the settings and say what is wrong")
    args = parser.parse_args(argv)

    if args.command == "check-settings":
        try:
            settings = get_settings()
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(map(str, error["loc"])).upper()
                for line in error["msg"].removeprefix("Value error, ").splitlines():
                    print(f"{where + ': ' if where else ''}{line}", file=sys.stderr)
            return 2
        print(f"Settings are valid ({settings.environment}).")
        print(_target())
        return 0

    print(_target())
    if args.command == "prune-sessions":
        sessions, tokens = asyncio.run(_prune_sessions())
        print(f"Deleted {sessions} ended sessions and {tokens} more expired refresh tokens.")
        return 0
    if args.command == "unlock-sign-in":
        email = canonical_email(args.email)
        print(f"Forgot {asyncio.run(_unlock(email))} sign-in attempts for {email}.")
        return 0

    if not args.email:
        parser.error("--email (or FIRST_SUPERUSER_EMAIL) is required")
    password = os.environ.get("FIRST_SUPERUSER_PASSWORD")
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
    print(asyncio.run(_create_superuser(account.email, account.password)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
