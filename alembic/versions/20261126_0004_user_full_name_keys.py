"""Users' full names get a search key, folded the way names are compared (NFKC_Casefold),
so that `q` on the users' list finds `ÅSA` with `åsa` on every database: SQLite's own
`lower()` folds only ASCII letters, and PostgreSQL's depends on the database's locale.

The rule is copied here rather than imported, so that this revision keeps meaning what it
meant when it was written whatever `project.text.fold` later becomes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:30:00+00:00
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def nfkc_casefold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", folded)).strip()


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("full_name_key", sa.Text(), nullable=True))
    connection = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        sa.column("full_name", sa.String()),
        sa.column("full_name_key", sa.Text()),
    )
    select = (
        sa.select(users.c.id, users.c.full_name)
        .where(users.c.full_name.is_not(None))
        .order_by(users.c.id)
        .limit(10_000)
    )
    update = (
        users.update()
        .where(users.c.id == sa.bindparam("user_id"))
        .values(full_name_key=sa.bindparam("key"))
    )
    batch_rows = connection.execute(select).all()
    while batch_rows:
        keys = [{"user_id": i, "key": nfkc_casefold(name)} for i, name in batch_rows]
        connection.execute(update, keys)
        batch_rows = connection.execute(select.where(users.c.id > batch_rows[-1][0])).all()


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("full_name_key")
