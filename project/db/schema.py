"""Whether the database's schema (its Alembic revision) is the one this code was written for."""

from pathlib import Path
from typing import NamedTuple

from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


class Revisions(NamedTuple):
    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def load(cls) -> "Revisions":
        """Read `alembic/versions` (blocking: files are read and imported)."""
        script = ScriptDirectory.from_config(AlembicConfig(str(ALEMBIC_INI)))
        known = frozenset(revision.revision for revision in script.walk_revisions())
        return cls(frozenset(script.get_heads()), known)

    async def problem(self, connection: AsyncConnection) -> str | None:
        """What keeps this database from serving this code, or None (a newer schema is fine)."""
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
