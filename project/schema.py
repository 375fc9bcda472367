"""Whether the database's schema is the one this code was written for: Alembic's revision
in the database against the newest one in `alembic/versions`."""

from functools import cache

from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from project.database import ALEMBIC_INI

UPGRADE = "run `alembic upgrade head`"


@cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The head revision(s) in `alembic/versions`, and every revision there."""
    script = ScriptDirectory.from_config(AlembicConfig(str(ALEMBIC_INI)))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


def _current(connection: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


async def schema_problem(connection: AsyncConnection) -> str | None:
    """Why this database cannot serve this code yet, or None. A database at a revision this
    code does not know was migrated by a newer release, whose migrations keep the schema
    working for the one before it while both run (a rolling deployment): that is fine."""
    current = await connection.run_sync(_current)
    heads, known = _revisions()
    if not current:
        return f"The database has no schema yet: {UPGRADE}."
    if current == heads or not current <= known:
        return None
    return (
        f"The database schema is at revision {', '.join(sorted(current))} and this code needs "
        f"{', '.join(sorted(heads))}: {UPGRADE}."
    )
