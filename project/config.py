import re
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from project.text import PASSWORD_MAX, PASSWORD_MIN

# The key committed in `.env` for local development. Production refuses to start with it.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me-0123456789abcdef"  # noqa: S105
DRIVERS = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
Environment = Literal["development", "test", "production"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# An origin as browsers send it: scheme, host and maybe a port; no path, no trailing slash.
ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
FRONTEND = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
# What the Host check can match: a name or an address (no port), `*.` and a domain, or `*`.
HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])$", re.IGNORECASE)


def _text(change: Callable[[str], Any]) -> BeforeValidator:
    """`change` applied to a value given as text (as the environment gives them all), trimmed."""
    return BeforeValidator(lambda value: change(value.strip()) if isinstance(value, str) else value)


LIST = _text(lambda text: [item.strip() for item in text.split(",") if item.strip()])  # a,b


class Settings(BaseSettings):
    """Every setting of the service, from the environment, then `.env` (not in production)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @classmethod
    def settings_customise_sources(  # type: ignore[override]  # sources come by name
        cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `.env` holds development values (local CORS origins, docs on, a SQLite file): not these.
        given = {**sources["env_settings"](), **sources["init_settings"]()}.get("environment")
        if str(given).strip().lower() == "production":
            del sources["dotenv_settings"]
        return tuple(sources.values())

    environment: Annotated[Environment, _text(str.lower)] = "development"
    database_url: str = "sqlite+aiosqlite:///./heroes.db"
    db_pool_size: int = Field(10, ge=1, description="Connections kept per process (SQLite: 5).")
    db_max_overflow: int = Field(5, ge=0, description="Extra connections under load (SQLite: 0).")
    db_pool_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a connection.")
    db_pool_recycle: int = Field(1800, description="Seconds before a connection is replaced.")
    db_pool_pre_ping: bool = True
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout: float = Field(10.0, gt=0, description="Seconds per SQL statement.")
    sqlite_busy_timeout: float = Field(default=10.0, gt=0)
    auto_migrate: bool | None = Field(None, description="Migrate at startup (default: dev SQLite).")
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    jwt_issuer: str = "heroes-api"
    jwt_audience: str = "heroes-api"
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    session_max_days: int = Field(30, ge=1, description="Days a login session lasts from sign-in.")
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
    cors_origins: Annotated[list[str], NoDecode, LIST] = []
    allowed_hosts: Annotated[list[str], NoDecode, LIST] = []
    docs_enabled: bool = Field(
        default=True, description="Serve /docs, /redoc, /openapi.json (default: off in production)."
    )
    admin_enabled: bool = Field(default=True, description="Serve the admin UI at /admin.")
    admin_session_hours: int = Field(8, ge=1, description="Hours an admin sign-in lasts, at most.")
    log_level: Annotated[str, _text(str.upper)] = "INFO"
    metrics_enabled: bool = Field(default=False, description="Serve Prometheus /metrics.")
    metrics_token: SecretStr | None = Field(None, description="Bearer token /metrics requires.")
    frontend_url: Annotated[str, _text(lambda url: url.rstrip("/"))] = "http://localhost:5173"
    smtp_host: str | None = Field(None, description="Without it, emails go to the log.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = Field(True, description="STARTTLS after connecting.")
    smtp_ssl: bool = Field(False, description="TLS from the first byte (port 465).")
    smtp_timeout: float = Field(30.0, gt=0)
    emails_from_email: str = "noreply@example.com"
    emails_from_name: str = "Heroes API"
    password_reset_minutes: int = Field(default=30, ge=1)
    email_verify_hours: int = Field(default=48, ge=1)
    require_verified_email: bool = Field(
        False, description="Unverified accounts cannot sign in (default: on in production)."
    )
    mail_window_seconds: int = Field(default=900, ge=1)
    mail_max_per_email: int = Field(3, ge=1, description="Emails asked for per address a window.")
    mail_max_per_client: int = Field(20, ge=1, description="Emails asked for per client a window.")
    mail_sender: bool = Field(True, description="Run the outbox's sender in this process.")
    mail_poll_seconds: float = Field(2.0, gt=0, description="How often the sender looks for mail.")
    mail_retry_seconds: float = Field(10.0, gt=0, description="The first retry's wait, doubled.")
    mail_max_attempts: int = Field(10, ge=1, description="Attempts before a message has failed.")

    @model_validator(mode="after")
    def _complete(self) -> "Settings":
        """Defaults that hang on others; then every problem at once, so one attempt fixes all."""
        # Each SQLite connection is an aiosqlite thread vying with the loop for the GIL: keep few.
        for name, size in (("db_pool_size", 5), ("db_max_overflow", 0)):
            if self.is_sqlite and name not in self.model_fields_set:
                setattr(self, name, size)
        if self.environment == "production" and "docs_enabled" not in self.model_fields_set:
            self.docs_enabled = False  # a production API's manual is published on purpose
        if self.environment != "production" and not self.allowed_hosts:
            self.allowed_hosts = ["localhost", "127.0.0.1"]  # this machine, as a browser names it
        if self.smtp_ssl and "smtp_tls" not in self.model_fields_set:
            self.smtp_tls = False  # TLS from the start: no STARTTLS on top
        production = self.environment == "production"
        if production and "require_verified_email" not in self.model_fields_set:
            self.require_verified_email = True
        if self.metrics_token is not None and not self.metrics_token.get_secret_value():
            self.metrics_token = None  # METRICS_TOKEN= (empty) means unset
        production, key = self.environment == "production", self.secret_key.get_secret_value()
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
        if production and not self.allowed_hosts:
            problems.append("ALLOWED_HOSTS must be set in production: the hosts clients use, or *")
        problems += [
            f"ALLOWED_HOSTS: {host!r} is not a host name or address (no port), *.domain or *"
            for host in self.allowed_hosts
            if not HOST.match(host)
        ]
        if self.log_level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        problems += [
            f"CORS_ORIGINS: {origin!r} is not an origin as a browser sends it "
            "(scheme://host[:port], no path and no trailing slash)"
            for origin in self.cors_origins
            if origin != "*" and not ORIGIN.match(origin)
        ]
        first_password = (self.first_superuser_password or SecretStr("")).get_secret_value()
        if first_password and not PASSWORD_MIN <= len(first_password) <= PASSWORD_MAX:
            problems.append(
                f"FIRST_SUPERUSER_PASSWORD must be {PASSWORD_MIN} to {PASSWORD_MAX} characters,"
                " as every password is"
            )
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
        if production and self.smtp_user and not (self.smtp_tls or self.smtp_ssl):
            problems.append("SMTP_USER needs SMTP_TLS or SMTP_SSL: the password would go in clear")
        if self.smtp_ssl and self.smtp_tls:
            problems.append("SMTP_SSL and SMTP_TLS exclude each other: choose one")
        if not FRONTEND.match(self.frontend_url):
            problems.append("FRONTEND_URL must be an http(s) URL, without a query or fragment")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def admin_session_lifetime(self) -> timedelta:
        return timedelta(hours=self.admin_session_hours)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def migrate_at_startup(self) -> bool:
        by_default = self.is_sqlite and self.environment == "development"
        return by_default if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    return Settings()
