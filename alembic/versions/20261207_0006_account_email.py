"""Account email: users' `email_verified_at`, the tokens mailed in links (reset, verification),
the requests for them that the throttle counts, and the outbox the sender sends from.

Accounts made before this revision are taken as verified: with `REQUIRE_VERIFIED_EMAIL` on
(production's default) none of them could sign in otherwise, and they have used their
addresses with this service since.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 18:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _row(table: str, *columns: sa.Column[object] | sa.Constraint) -> None:
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        *columns,
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(_moment("email_verified_at"))
    op.execute(sa.text("UPDATE users SET email_verified_at = CURRENT_TIMESTAMP"))

    _row(
        "account_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _moment("expires_at", nullable=False),
        _moment("used_at"),
        _moment("voided_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )
    op.create_index(op.f("ix_account_tokens_user_id"), "account_tokens", ["user_id"])

    _row(
        "mail_requests",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
    )
    op.create_index(op.f("ix_mail_requests_email"), "mail_requests", ["email"])
    op.create_index(op.f("ix_mail_requests_client"), "mail_requests", ["client"])
    op.create_index("ix_mail_requests_created_at", "mail_requests", ["created_at"])

    _row(
        "outbox_messages",
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("next_attempt_at", nullable=False),
        _moment("claimed_until"),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        _moment("sent_at"),
    )
    op.create_index(
        "ix_outbox_messages_status_next_attempt_at",
        "outbox_messages",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_table("outbox_messages")
    op.drop_table("mail_requests")
    op.drop_table("account_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified_at")
