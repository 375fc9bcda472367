"""Whether the database's schema (its Alembic revision) is the one this code was written for."""

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


@dataclass(frozen=True)
class Revisions:
    """The head revision(s) in `alembic/versions`, and every revision there."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def load(cls) -> "Revisions":
        """Read `alembic/versions` (blocking: files are read and imported)."""
        script = ScriptDirectory.from_config(AlembicConfig(str(ALEMBIC_INI)))
        known = frozenset(revision.revision for revision in script.walk_revisions())
        return cls(frozenset(script.get_heads()), known)

    async def problem(self, connection: AsyncConnection) -> str | None:
        """Why this database cannot serve this code yet, or None. A revision this code does
        not know is a newer release's, whose migrations keep this one working: fine."""
        current: frozenset[str] = await connection.run_sync(
            lambda sync: frozenset(MigrationContext.configure(sync).get_current_heads())
        )
        if not current:
            return "The database has no schema yet: run `alembic upgrade head`."
        if current == self.heads or not current <= self.known:
            return None
        return (
            f"The database schema is at revision {', '.join(sorted(current))} and this code "
            f"needs {', '.join(sorted(self.heads))}: run `alembic upgrade head`."
        )
