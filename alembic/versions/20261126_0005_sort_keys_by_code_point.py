"""On PostgreSQL, the columns lists sort on (names' folded keys, emails) compare by code
point (`COLLATE "C"`), as SQLite always does: the database's default collation follows the
cluster's locale, and `en_US` ignores blanks and punctuation, so a page came in one order in
development and another in production. Their indexes are rebuilt with the new collation.
SQLite needs nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 15:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    ("teams", "name_key", 1020),
    ("heroes", "name_key", 1020),
    ("powers", "name_key", 1020),
    ("users", "email", 254),
]


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.String(length, collation=collation),
            existing_type=sa.String(length),
            existing_nullable=False,
        )


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
