"""The errors domain code raises; `project.web.problems` turns them into problem+json."""

from collections.abc import Mapping, Sequence
from typing import ClassVar

from fastapi import status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

ACCOUNT_GONE = "Your account no longer exists."
CONFLICT = "The request conflicts with the current state of the data."


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request cannot be processed."
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, detail: str | None = None, headers: Mapping[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = {**self.default_headers, **(headers or {})}
        self.errors: list[FieldError] | None = None
        super().__init__(self.detail)


class BadRequest(ProblemError): ...


class AuthenticationFailed(ProblemError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Not authenticated, or the token is invalid or expired."
    default_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class PermissionDenied(ProblemError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "Only a superuser may do this."


class NotFound(ProblemError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, resource: str):
        super().__init__(f"No {resource} with that id.")


class Conflict(ProblemError):
    status_code = status.HTTP_409_CONFLICT


class Gone(ProblemError):
    status_code = status.HTTP_410_GONE


class PreconditionFailed(ProblemError):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since you read it: fetch it again and retry."


class UnsupportedMediaType(ProblemError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class TooManyRequests(ProblemError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, {"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(ProblemError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable; retry shortly."

    def __init__(self, detail: str | None = None, retry_after: int = 5):
        super().__init__(detail, {"Retry-After": str(retry_after)})


class InvalidField(ProblemError):
    """A well-formed request whose field names something that cannot be used (422)."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT

    def __init__(self, loc: Sequence[str | int], msg: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.errors = [FieldError(loc=list(loc), msg=msg, type="value_error")]


FOREIGN_KEY_VIOLATION = "23503"
# A broken foreign key (`fk_<table>_<column>_<referred table>`): a row deleted meanwhile.
_GONE_MEANWHILE = {
    "fk_heroes_team_id_teams": ("team_id", "The team was just deleted."),
    "fk_hero_powers_power_id_powers": ("power_ids", "A power was just deleted."),
}


def integrity_problem(exc: IntegrityError, conflict: str = CONFLICT) -> ProblemError:
    """A refused write: a unique clash (a 409 saying `conflict`), or a row deleted meanwhile."""
    # The driver's error and the one it wraps (asyncpg's, via SQLAlchemy); SQLite's name no key.
    errors = (exc.orig, getattr(exc.orig, "__cause__", None))
    if FOREIGN_KEY_VIOLATION not in (getattr(error, "sqlstate", None) for error in errors):
        return Conflict(CONFLICT if "FOREIGN KEY constraint failed" in str(exc.orig) else conflict)
    name = next(filter(None, (str(getattr(e, "constraint_name", None) or "") for e in errors)), "")
    if name in _GONE_MEANWHILE:
        return InvalidField(["body", _GONE_MEANWHILE[name][0]], _GONE_MEANWHILE[name][1])
    if name == "fk_hero_powers_hero_id_heroes":
        return NotFound("hero")
    # Every table's key to users names its owner: the caller.
    return AuthenticationFailed(ACCOUNT_GONE) if name.endswith("_users") else Conflict(CONFLICT)
