"""Every SQLModel class, a family per resource: `XBase`, table `X`, `XCreate`/`XUpdate`, `XPublic`.
A private column (a password hash, a name's key) is only on the table: no response can carry it."""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import CheckConstraint, DateTime, Index, String, event, false
from sqlalchemy import Text as SQLText
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper, declared_attr
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Relationship, SQLModel, func
from sqlmodel._compat import SQLModelConfig

from project import text
from project.text import NAME_KEY_BYTES, NAME_MAX, NO_NUL, Email, LongText, Name, Text, fold

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON has real booleans and numbers: `"17"` or `true` for an age is a client bug, not an age.
STRICT = {"strict": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sort_key(length: int) -> String:
    """A string lists sort on, by code point on every database as on SQLite: PostgreSQL's
    default collation follows the cluster's locale (`en_US` ignores blanks, punctuation)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _text(max_length: int = NAME_MAX, min_length: int = 1, pattern: str = NO_NUL, **kw: Any) -> Any:
    """A string field that rejects NUL (PostgreSQL cannot store it; no client means it)."""
    extra = {"pattern": pattern}
    return Field(min_length=min_length, max_length=max_length, schema_extra=extra, **kw)


def _timestamp(**column: Any) -> Any:
    columns = {"server_default": func.now(), **column}
    return Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=columns)


def _example(example: dict[str, Any]) -> SQLModelConfig:
    return SQLModelConfig(extra="forbid", json_schema_extra={"examples": [example]})


class RequestBody(SQLModel):
    """Request bodies reject unknown fields: a client learns `owner_id` cannot be set."""

    model_config = SQLModelConfig(extra="forbid")


class Timestamped(SQLModel):
    """What every response about a row carries; every field is sent (null when empty)."""

    model_config = SQLModelConfig(json_schema_serialization_defaults_required=True)

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class Row(SQLModel):
    """What every table has: an id, and when the row was made and last changed."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp(onupdate=utcnow)


class Owned(SQLModel):
    """A row of the user who made it, and gone with that user."""

    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)


class Versioned(SQLModel):
    """SQLAlchemy bumps the version on every UPDATE and makes the UPDATE conditional on the
    version that was read: a concurrent change fails instead of being overwritten."""

    version: int = Field(default=1, nullable=False)

    @declared_attr  # type: ignore[arg-type]
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class NameKey(SQLModel):
    """A row whose `name` is unique per owner, compared, sorted and searched by this key
    (see `fold`), which the hook below keeps whenever the row is written."""

    name_key: str = Field(
        default="",
        max_length=NAME_KEY_BYTES,
        sa_type=_sort_key(NAME_KEY_BYTES),
        index=True,
    )


@event.listens_for(NameKey, "before_insert", propagate=True)
@event.listens_for(NameKey, "before_update", propagate=True)
def _keep_name_key(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    target.name_key = fold(target.name)


@event.listens_for(SQLModel, "before_insert", propagate=True)
def _born_unchanged(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    """A new row's `updated_at` equals its `created_at`, to the microsecond."""
    if getattr(target, "created_at", None) is not None and hasattr(target, "updated_at"):
        target.updated_at = target.created_at


class UserBase(SQLModel):
    email: Email = Field(max_length=254)
    full_name: str | None = _text(default=None)


class User(UserBase, Row, table=True):
    __tablename__ = "users"

    email: str = Field(max_length=254, unique=True, sa_type=_sort_key(254))
    # What `q` searches (kept by `_keep_full_name_key`): any length, a character may fold to many.
    full_name_key: str | None = Field(default=None, sa_type=SQLText)
    hashed_password: str = Field(max_length=255)
    is_active: bool = Field(default=True, index=True)
    is_superuser: bool = Field(default=False)
    email_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)


@event.listens_for(User, "before_insert")
@event.listens_for(User, "before_update")
def _keep_full_name_key(mapper: Mapper[Any], connection: Any, target: User) -> None:
    target.full_name_key = None if target.full_name is None else fold(target.full_name)


class UserCreate(RequestBody, UserBase):
    model_config = _example(
        {"email": "ada@example.com", "password": "correct horse battery", "full_name": "Ada"}
    )

    password: str = _text(text.PASSWORD_MAX, text.PASSWORD_MIN)
    full_name: Text | None = None


class UserChange(RequestBody):
    model_config = _example({"full_name": "Ada Lovelace"})

    email: Email = Field(default=None, max_length=254)
    full_name: Text | None = None


class UserUpdateMe(UserChange):
    # Checked, never stored (`exclude`); `update_me` requires it with `email`.
    current_password: str | None = _text(
        text.PASSWORD_MAX, default=None, exclude=True, description="Required with `email`."
    )


class UserUpdate(UserChange):
    is_active: bool = Field(default=None, schema_extra=STRICT)
    is_superuser: bool = Field(default=None, schema_extra=STRICT)


class CurrentPassword(RequestBody):
    model_config = _example({"current_password": "correct horse battery"})

    current_password: str = _text(text.PASSWORD_MAX)


class PasswordChange(CurrentPassword):
    model_config = _example(
        {"current_password": "correct horse battery", "new_password": "staple battery horse"}
    )

    new_password: str = _text(text.PASSWORD_MAX, text.PASSWORD_MIN)


class UserPublic(UserBase, Timestamped):
    is_active: bool
    is_superuser: bool
    email_verified_at: datetime | None = Field(
        description="When the owner followed the link mailed to this email (null: not yet)."
    )


class EmailAddress(RequestBody):
    model_config = _example({"email": "ada@example.com"})

    email: Email = Field(max_length=254)


class LinkToken(RequestBody):
    model_config = _example({"token": "Gk8v2mQ3dE7yU1oP9sLwR5tXcZ0aHbNfJ4iKuVqYe6M"})

    token: str = _text(128, description="The `token` of the link the email carried.")


class PasswordReset(LinkToken):
    model_config = _example(
        {"token": "Gk8v2mQ3dE7yU1oP9sLwR5tXcZ0aHbNfJ4iKuVqYe6M", "new_password": "staple horse"}
    )

    new_password: str = _text(text.PASSWORD_MAX, text.PASSWORD_MIN)


class TeamBase(SQLModel):
    name: Name = _text(pattern=text.NOT_BLANK)
    headquarters: str = _text()


class Team(NameKey, TeamBase, Owned, Versioned, Row, table=True):
    __tablename__ = "teams"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        Index("uq_teams_owner_id_name_key", "owner_id", "name_key", unique=True),
        Index("ix_teams_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_teams_created_at_id", "created_at", "id"),
        Index("ix_teams_updated_at_id", "updated_at", "id"),
    )


class TeamCreate(RequestBody, TeamBase):
    model_config = _example({"name": "Avengers", "headquarters": "Stark Tower, New York"})

    headquarters: Text


class TeamUpdate(RequestBody):
    model_config = _example({"headquarters": "Avengers Compound"})

    name: Name = _text(pattern=text.NOT_BLANK, default=None)
    headquarters: Text = Field(default=None)


class TeamPublic(TeamBase, Timestamped):
    owner_id: uuid.UUID
    version: int


class TeamDetail(TeamPublic):
    heroes_count: int


class PowerBase(SQLModel):
    name: Name = _text(pattern=text.NOT_BLANK)
    description: str | None = _text(max_length=text.DESCRIPTION_MAX, default=None)


class HeroPowerLink(SQLModel, table=True):
    __tablename__ = "hero_powers"

    hero_id: uuid.UUID = Field(foreign_key="heroes.id", ondelete="CASCADE", primary_key=True)
    power_id: uuid.UUID = Field(
        foreign_key="powers.id", ondelete="CASCADE", primary_key=True, index=True
    )


class Power(NameKey, PowerBase, Owned, Versioned, Row, table=True):
    __tablename__ = "powers"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        Index("uq_powers_owner_id_name_key", "owner_id", "name_key", unique=True),
        Index("ix_powers_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_powers_created_at_id", "created_at", "id"),
    )


class PowerCreate(RequestBody, PowerBase):
    model_config = _example({"name": "Flight", "description": "Moves through the air unaided."})

    description: LongText | None = None


class PowerUpdate(RequestBody):
    model_config = _example({"description": "Flies faster than sound."})

    name: Name = _text(pattern=text.NOT_BLANK, default=None)
    description: LongText | None = None


class PowerPublic(PowerBase, Timestamped):
    owner_id: uuid.UUID
    version: int


AGE_MAX = 10_000


class HeroBase(SQLModel):
    name: Name = _text(pattern=text.NOT_BLANK)
    secret_name: str = _text()
    age: int | None = Field(default=None, ge=0, le=AGE_MAX, schema_extra=STRICT)


class Hero(NameKey, HeroBase, Owned, Versioned, Row, table=True):
    __tablename__ = "heroes"

    team_id: uuid.UUID | None = Field(
        default=None, foreign_key="teams.id", ondelete="SET NULL", index=True
    )
    age: int | None = Field(default=None, index=True)

    team: Team | None = Relationship(sa_relationship_kwargs={"lazy": "raise"})
    powers: list[Power] = Relationship(
        link_model=HeroPowerLink,
        sa_relationship_kwargs={
            "lazy": "raise",
            "order_by": "Power.name_key",
            "passive_deletes": True,
        },
    )

    __table_args__ = (
        CheckConstraint(f"age >= 0 AND age <= {AGE_MAX}", name="age_range"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_heroes_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_heroes_created_at_id", "created_at", "id"),
        Index("ix_heroes_updated_at_id", "updated_at", "id"),
    )


MAX_POWERS_PER_HERO = 100


class HeroCreate(RequestBody, HeroBase):
    model_config = _example(
        {
            "name": "Spider-Boy",
            "secret_name": "Pedro Parqueador",
            "age": 16,
            "team_id": None,
            "power_ids": [],
        }
    )

    secret_name: Text
    team_id: uuid.UUID | None = None
    power_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_POWERS_PER_HERO)


class HeroUpdate(RequestBody):
    model_config = _example({"age": 17, "power_ids": []})

    name: Name = _text(pattern=text.NOT_BLANK, default=None)
    secret_name: Text = Field(default=None)
    age: int | None = Field(default=None, ge=0, le=AGE_MAX, schema_extra=STRICT)
    team_id: uuid.UUID | None = None
    power_ids: list[uuid.UUID] = Field(default=None, max_length=MAX_POWERS_PER_HERO)


class HeroPublic(HeroBase, Timestamped):
    owner_id: uuid.UUID
    team_id: uuid.UUID | None
    version: int
    team: TeamPublic | None
    powers: list[PowerPublic]


class AuthSession(Row, table=True):
    """One login: every token pair that refreshing it produces shares this row."""

    __tablename__ = "auth_sessions"

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RefreshToken(Row, table=True):
    """A refresh token by its SHA-256 hash; the token itself is never stored."""

    __tablename__ = "refresh_tokens"

    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", ondelete="CASCADE", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginAttempt(Row, table=True):
    """A login attempt in flight or failed; the throttle counts these per email and client."""

    __tablename__ = "login_attempts"

    email: str = Field(max_length=320, index=True)
    client: str = Field(max_length=64, index=True)
    # False while the attempt is in flight (see `project.auth.credentials`).
    failed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})

    __table_args__ = (Index("ix_login_attempts_created_at", "created_at"),)


class Accepted(SQLModel):
    detail: str = Field(description="What happens next; the same whatever the email.")


class AccountToken(Row, table=True):
    """A token mailed in a link (a password reset, an email's verification), by its SHA-256
    hash; the token itself is never stored. It works once, before `expires_at`, unless voided."""

    __tablename__ = "account_tokens"

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    purpose: str = Field(max_length=16)
    email: str = Field(max_length=254, description="The address the link was mailed to.")
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A newer token of the same purpose, or a new password, voids it.
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MailRequest(Row, table=True):
    """An email someone asked for (a reset or verification link); the throttle counts these."""

    __tablename__ = "mail_requests"

    email: str = Field(max_length=320, index=True)
    client: str = Field(max_length=64, index=True)

    __table_args__ = (Index("ix_mail_requests_created_at", "created_at"),)


class OutboxMessage(Row, table=True):
    """An email to send, written in the transaction that made it necessary; the sender
    (`project.mail.outbox`) claims it, sends it, and empties its body once sent."""

    __tablename__ = "outbox_messages"

    recipient: str = Field(max_length=320)
    subject: str = Field(max_length=255)
    text_body: str = Field(sa_type=SQLText)
    html_body: str = Field(sa_type=SQLText)
    status: str = Field(default="pending", max_length=16)  # pending, sent or failed
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # While a sender holds it; a sender that died lets it go when this passes.
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )


class TokenPair(SQLModel):
    model_config = SQLModelConfig(json_schema_serialization_defaults_required=True)

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(RequestBody):
    model_config = _example({"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."})

    refresh_token: str = _text(4096)


class Liveness(SQLModel):
    status: str = Field(description="`ok` while the process serves.")


class PoolUsage(SQLModel):
    in_use: int = Field(description="Connections checked out right now.")
    capacity: int = Field(description="The most this process opens (pool size plus overflow).")


class Readiness(Liveness):
    database: str = Field(description="`ok` when the database answered a query.")
    pool: PoolUsage | None = Field(
        description="Only for a caller with the metrics token (`METRICS_TOKEN`); without one"
        " set, outside production only."
    )
