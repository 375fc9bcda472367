"""Initial schema: users, sessions, login throttle, teams, powers, heroes.

Made by autogenerate, then reviewed by hand: portable timestamp defaults (now() on every
database), plain create_index instead of batch blocks (this migration only creates tables),
check constraints that autogenerate does not emit, and a downgrade that drops in FK order.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:21:04+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _owner(table: str) -> list[sa.schema.SchemaItem]:
    """The columns and constraints every owned resource shares."""
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name_key", sa.String(length=1020), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f(f"fk_{table}_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.CheckConstraint("version >= 1", name=op.f(f"ck_{table}_version_positive")),
    ]


def _owner_indexes(table: str) -> None:
    op.create_index(op.f(f"ix_{table}_owner_id"), table, ["owner_id"])
    op.create_index(op.f(f"ix_{table}_name_key"), table, ["name_key"])
    op.create_index(f"ix_{table}_owner_id_created_at", table, ["owner_id", "created_at", "id"])
    op.create_index(f"ix_{table}_created_at_id", table, ["created_at", "id"])


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=True),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])
    op.create_index(op.f("ix_users_is_active"), "users", ["is_active"])

    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"])

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_refresh_tokens_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_refresh_tokens_session_id"), "refresh_tokens", ["session_id"])

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_email"), "login_attempts", ["email"])
    op.create_index(op.f("ix_login_attempts_client"), "login_attempts", ["client"])
    op.create_index("ix_login_attempts_created_at", "login_attempts", ["created_at"])

    op.create_table(
        "teams",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("headquarters", sa.String(length=255), nullable=False),
        *_owner("teams"),
    )
    _owner_indexes("teams")
    op.create_index("ix_teams_updated_at_id", "teams", ["updated_at", "id"])
    op.create_index("uq_teams_owner_id_name_key", "teams", ["owner_id", "name_key"], unique=True)

    op.create_table(
        "powers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        *_owner("powers"),
    )
    _owner_indexes("powers")
    op.create_index("uq_powers_owner_id_name_key", "powers", ["owner_id", "name_key"], unique=True)

    op.create_table(
        "heroes",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_name", sa.String(length=255), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        *_owner("heroes"),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_heroes_team_id_teams"), ondelete="SET NULL"
        ),
        sa.CheckConstraint("age >= 0 AND age <= 10000", name=op.f("ck_heroes_age_range")),
    )
    _owner_indexes("heroes")
    op.create_index("ix_heroes_updated_at_id", "heroes", ["updated_at", "id"])
    op.create_index(op.f("ix_heroes_age"), "heroes", ["age"])
    op.create_index(op.f("ix_heroes_team_id"), "heroes", ["team_id"])

    op.create_table(
        "hero_powers",
        sa.Column("hero_id", sa.Uuid(), nullable=False),
        sa.Column("power_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["hero_id"],
            ["heroes.id"],
            name=op.f("fk_hero_powers_hero_id_heroes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["power_id"],
            ["powers.id"],
            name=op.f("fk_hero_powers_power_id_powers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hero_id", "power_id", name=op.f("pk_hero_powers")),
    )
    op.create_index(op.f("ix_hero_powers_power_id"), "hero_powers", ["power_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; children go before the tables they reference.
    for table in (
        "hero_powers",
        "heroes",
        "powers",
        "teams",
        "login_attempts",
        "refresh_tokens",
        "auth_sessions",
        "users",
    ):
        op.drop_table(table)
