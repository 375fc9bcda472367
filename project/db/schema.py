"""Whether the database's schema is the one this code was written for: Alembic's revision
in the database against the newest one in `alembic/versions`."""

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _current(connection: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


@dataclass(frozen=True)
class Revisions:
    """The head revision(s) in `alembic/versions`, and every revision there."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def load(cls) -> "Revisions":
        """Read `alembic/versions` (blocking: files are read and imported)."""
        script = ScriptDirectory.from_config(AlembicConfig(str(ALEMBIC_INI)))
        return cls(
            frozenset(script.get_heads()),
            frozenset(revision.revision for revision in script.walk_revisions()),
        )

    async def problem(self, connection: AsyncConnection) -> str | None:
        """Why this database cannot serve this code yet, or None. A database at a revision
        this code does not know was migrated by a newer release, whose migrations keep the
        schema working for the one before it while both run (a rolling deployment): fine."""
        current = await connection.run_sync(_current)
        if not current:
            return "The database has no schema yet: run `alembic upgrade head`."
        if current == self.heads or not current <= self.known:
            return None
        return (
            f"The database schema is at revision {', '.join(sorted(current))} and this code "
            f"needs {', '.join(sorted(self.heads))}: run `alembic upgrade head`."
        )
