import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

# The key committed in `.env` for local development. Production refuses to start with it.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me-0123456789abcdef"  # noqa: S105
DRIVERS = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# An origin as browsers send it: scheme, host and maybe a port; no path, no trailing slash.
ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Every setting of the service, from the environment, then `.env` (not in production)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `.env` holds development values (CORS origins for local frontends, docs on, a SQLite
        # file) that a production process, started from a checkout say, must not pick up.
        if _lower({**env_settings(), **init_settings()}.get("environment")) == "production":
            return init_settings, env_settings, file_secret_settings
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    environment: Annotated[
        Literal["development", "test", "production"], BeforeValidator(_lower)
    ] = "development"

    database_url: str = "sqlite+aiosqlite:///./heroes.db"
    db_pool_size: int = Field(
        10, ge=1, description="Connections kept open per process (SQLite: 5)."
    )
    db_max_overflow: int = Field(
        5, ge=0, description="More connections opened under load (SQLite: 0)."
    )
    db_pool_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a pooled connection."
    )
    db_pool_recycle: int = Field(1800, description="Seconds before a connection is replaced.")
    db_pool_pre_ping: bool = True
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout: float = Field(10.0, gt=0, description="Seconds per SQL statement.")
    sqlite_busy_timeout: float = Field(default=10.0, gt=0)
    auto_migrate: bool | None = Field(
        None, description="Run `alembic upgrade head` at startup (default: SQLite in development)."
    )

    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    jwt_issuer: str = "heroes-api"
    jwt_audience: str = "heroes-api"
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    session_max_days: int = Field(
        30, ge=1, description="A login session ends this long after its sign-in."
    )

    password_hash_concurrency: int = Field(default=2, ge=1)
    password_hash_queue: int = Field(default=64, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=19456)
    argon2_time_cost: int = Field(default=2, ge=2)

    login_window_seconds: int = Field(default=900, ge=1)
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_client: int = Field(default=100, ge=1)

    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    cors_origins: Annotated[list[str], NoDecode] = []
    docs_enabled: bool = True
    admin_enabled: bool = Field(default=True, description="Serve the admin UI at /admin.")
    admin_session_hours: int = Field(
        8, ge=1, description="An admin sign-in lasts this long, however busy."
    )
    log_level: Annotated[
        str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)
    ] = "INFO"

    metrics_enabled: bool = Field(default=False, description="Serve Prometheus /metrics.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics requires; required in production."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: dict[str, object]) -> dict[str, object]:
        if isinstance(origins := data.get("cors_origins"), str):
            data["cors_origins"] = [o.strip() for o in origins.split(",") if o.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> "Settings":
        """Every unsafe combination at once, one line each, so that one attempt can fix them all."""
        if self.metrics_token is not None and not self.metrics_token.get_secret_value():
            self.metrics_token = None  # METRICS_TOKEN= (empty) means unset
        production = self.environment == "production"
        key = self.secret_key.get_secret_value()
        problems = []
        if not self.database_url.startswith(DRIVERS):
            problems.append(
                f"DATABASE_URL must start with {' or '.join(DRIVERS)} (the drivers this service "
                f"uses), not {self.database_url.partition('://')[0] or '(none)'}://"
            )
        if production and "database_url" not in self.model_fields_set:
            problems.append(
                "DATABASE_URL must be set in production (the default is a development SQLite "
                "file in the working directory)"
            )
        if self.log_level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        problems += [
            f"CORS_ORIGINS: {origin!r} is not an origin as a browser sends it "
            "(scheme://host[:port], no path and no trailing slash)"
            for origin in self.cors_origins
            if origin != "*" and not ORIGIN.match(origin)
        ]
        if len(key.encode()) < 32:
            problems.append("SECRET_KEY must be at least 32 bytes")
        if production and key == DEVELOPMENT_SECRET_KEY:
            problems.append("SECRET_KEY is the development key; set a random one in production")
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS may not be '*': credentials are allowed")
        if self.metrics_token is not None and len(self.metrics_token.get_secret_value()) < 32:
            problems.append("METRICS_TOKEN must be at least 32 characters")
        if production and self.metrics_enabled and not self.metrics_token:
            problems.append("METRICS_ENABLED in production needs a METRICS_TOKEN")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _size_the_sqlite_pool(self) -> "Settings":
        # Every SQLite connection is a thread of aiosqlite's, competing with the one event loop
        # (and its GIL): past a few, more only add thread switches. Either setting overrides.
        if self.is_sqlite and "db_pool_size" not in self.model_fields_set:
            self.db_pool_size = 5
        if self.is_sqlite and "db_max_overflow" not in self.model_fields_set:
            self.db_max_overflow = 0
        return self

    @property
    def admin_session_lifetime(self) -> timedelta:
        return timedelta(hours=self.admin_session_hours)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def migrate_at_startup(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.is_sqlite and self.environment == "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
