"""Login attempts say whether they failed, so that sign-ins still in flight are told apart
from failures: a burst of correct sign-ins is no longer refused as if each had failed.

The rows already there cannot tell, and keep `failed` false: the throttle counts an attempt
that has been in flight for over a minute as failed, so they keep counting as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 13:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_attempts") as batch:
        batch.add_column(
            sa.Column("failed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_column("failed")
