"""What every list takes and answers. A page is `ORDER BY key, id LIMIT n+1` from where the last
ended, so a deep page costs what the first does; a signed cursor holds for its sort and filters."""

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import BigInteger, ColumnElement, DateTime, Integer, SmallInteger, String, or_
from sqlalchemy.types import TypeEngine

from project.data.views import Filter
from project.errors import InvalidField
from project.text import NAME_MAX, NO_NUL, fold, trim

T = TypeVar("T")
PAGING_FIELDS = frozenset({"limit", "cursor", "include_total"})

SORT_HELP = "The field to sort by, with `-` first for descending; ties are broken by id."


class ListQuery(BaseModel):
    """The query every collection takes; each adds `sort` (its whitelist) and its filters."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=20, ge=1, le=100, description="Items per page.")
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` from the previous page, with the same sort and filters.",
    )
    include_total: bool = Field(default=False, description="Also count every matching item.")
    sort: str = Field(default="created_at", description=SORT_HELP)


SEARCH_HELP = (
    "Case-insensitive substring search: names (users: email and full name)."
    " Surrounding blanks are ignored; empty or blank matches everything."
)
# Surrounding blanks are not stored, so not searched for: a blank search filters nothing.
SearchText = Annotated[
    str | None,
    Field(max_length=NAME_MAX, pattern=NO_NUL, description=SEARCH_HELP),
    AfterValidator(lambda text: None if text is None else trim(text) or None),
]


def like_pattern(text: str) -> str:
    """`text` as a case-insensitive substring pattern for `LIKE ... ESCAPE '/'`."""
    escaped = fold(text).replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def search(*keys: Any) -> Filter:
    """`q`: rows whose folded keys (see `fold`) contain the folded text."""
    return Filter(lambda value: or_(*(key.like(value, escape="/") for key in keys)), like_pattern)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    total: SkipJsonSchema[None] | int = Field(
        default=None,
        exclude_if=lambda total: total is None,
        description="How many items match; present only with `include_total=true`.",
    )


def _fingerprint(query: ListQuery) -> str:
    """The list, sort and filters a cursor is for."""
    kind = type(query)
    return _digest(kind.__name__, tuple((f, getattr(query, f)) for f in kind.model_fields))


@lru_cache(maxsize=4096)  # asked on every page, and the sorts and filters used repeat
def _digest(kind: str, fields: tuple[tuple[str, Any], ...]) -> str:
    scope = {name: value for name, value in fields if name not in PAGING_FIELDS}
    bound = json.dumps([kind, scope], sort_keys=True, default=str)
    return hashlib.sha256(bound.encode()).hexdigest()[:16]


def _sort_key(value: Any, sql_type: TypeEngine[Any]) -> Any:
    """A cursor's sort key, checked against its column's type: a cursor is signed, but a
    value the database would reject must not reach it even so (a leaked key, a bug)."""
    impl = getattr(sql_type, "impl", sql_type)  # a TypeDecorator's underlying type
    if isinstance(impl, DateTime):
        key = datetime.fromisoformat(value["datetime"])
        if key.tzinfo is None:
            raise ValueError("a naive timestamp")
        return key
    if isinstance(impl, Integer):
        bits = 64 if isinstance(impl, BigInteger) else 16 if isinstance(impl, SmallInteger) else 32
        if type(value) is not int or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"not a {bits}-bit integer")
        return value
    if isinstance(impl, String):
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError("not a string, or one with a NUL character")
        value.encode()  # a lone surrogate raises UnicodeEncodeError, a ValueError
        return value
    # A sort on a column of another type needs its own case here (and in `Pager.encode`).
    raise NotImplementedError(f"cursors cannot carry a sort key of type {sql_type}")


ANOTHER_LIST = (
    "This cursor belongs to another list, sort or filters; start again from the first page."
)


class Pager:
    """Signs and reads cursors."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"cursor:" + secret.encode()).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, query: ListQuery, key: Any, row_id: uuid.UUID) -> str:
        value = {"datetime": key.isoformat()} if isinstance(key, datetime) else key
        payload = json.dumps([_fingerprint(query), value, str(row_id)]).encode()
        return base64.urlsafe_b64encode(self._sign(payload) + payload).rstrip(b"=").decode()

    def decode(self, query: ListQuery, key: ColumnElement[Any]) -> tuple[Any, uuid.UUID]:
        """The position `query.cursor` names: a value of the sort `key`, and a row id."""
        assert query.cursor is not None
        try:
            raw = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4))
            signature, payload = raw[:16], raw[16:]
            if not hmac.compare_digest(signature, self._sign(payload)):
                raise ValueError("bad signature")
            fingerprint, value, row_id = json.loads(payload)
            if fingerprint == _fingerprint(query):
                return _sort_key(value, key.type), uuid.UUID(row_id)
        except (ValueError, binascii.Error, TypeError, KeyError) as exc:
            raise InvalidField(["query", "cursor"], "Not a cursor this API issued.") from exc
        raise InvalidField(["query", "cursor"], ANOTHER_LIST)
