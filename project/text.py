"""What text the API accepts (no NUL anywhere), and how names and email addresses compare."""

import re
import unicodedata
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, WithJsonSchema

NO_NUL = r"^[^\x00]*$"
# What `str.strip()` strips (nothing past U+3000), for the schema's pattern to say the same.
BLANKS = "".join(filter(str.isspace, map(chr, range(0x3001))))
NAME_MAX = 255
PASSWORD_MIN, PASSWORD_MAX = 8, 256
NAME_KEY_BYTES = 4 * NAME_MAX  # UTF-8 bytes of a name's folded key (see `fold`)
# Unicode's Default_Ignorable_Code_Point: characters that show nothing.
INVISIBLE_BMP = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
INVISIBLE = INVISIBLE_BMP + "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
# Visible text, no NUL, as `\uXXXX` escapes (ECMA-262 without `u`: past U+FFFF, `trim` refuses).
_ESCAPED = "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in BLANKS + INVISIBLE_BMP)
# Bidirectional embeddings, overrides and isolates: they can make a name display as other text.
_BIDI = "\\u202a-\\u202e\\u2066-\\u2069"
NOT_BLANK = f"^[^\\x00{_BIDI}]*[^\\x00{_ESCAPED}][^\\x00{_BIDI}]*$"
BIDI = re.compile(f"[{_BIDI}]")
IGNORABLE = re.compile(f"[{INVISIBLE}]")
EDGES = re.compile(f"^[{BLANKS}{INVISIBLE}]+|[{BLANKS}{INVISIBLE}]+\\Z")


def fold(text: str) -> str:
    r"""The key names compare and sort by (NFKC_Casefold): `AVENGERS`, `Aven\u200bgers` alike."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", folded)).strip(BLANKS)


def trim(text: str) -> str:
    """`text` composed (NFC), without surrounding blanks or invisible characters."""
    return EDGES.sub("", unicodedata.normalize("NFC", text))


def _typed(limit: int, what: str = "text") -> tuple[Any, ...]:
    """Typed text's constraints; it is kept trimmed (NFC), a 422 if none is visible or too long."""

    def check(value: str) -> str:
        trimmed = trim(value)
        if len(trimmed) > limit:
            raise ValueError(f"the {what} is over {limit} characters once composed")
        key = fold(trimmed) if what == "name" else trimmed
        if not key:
            raise ValueError(f"the {what} has no visible characters")
        # Ligatures fold to several letters each; a key must stay small enough for a B-tree index.
        if what == "name" and len(key.encode()) > NAME_KEY_BYTES:
            raise ValueError("the name is too long once its characters are spelled out")
        return trimmed

    sent = () if what == "name" else (Field(min_length=1, max_length=limit, pattern=NOT_BLANK),)
    return (*sent, AfterValidator(check))


# Constraints sit inside the types, so that the schema shows them under `| None` too.
Name = Annotated[str, *_typed(NAME_MAX, "name")]
Text = Annotated[str, *_typed(NAME_MAX)]
DESCRIPTION_MAX = 2000
LongText = Annotated[str, *_typed(DESCRIPTION_MAX)]


def canonical_email(value: str, strict: bool = False) -> str:
    """An address as stored (email-validator's form, lower-cased); `strict` refuses invalid ones."""
    try:
        email = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        if strict:
            raise ValueError(f"not a valid email address: {exc}") from None
        return value.strip().lower()
    return email.normalized.lower()


Email = Annotated[
    str,
    AfterValidator(lambda value: canonical_email(value, strict=True)),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
