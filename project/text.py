"""What text the API accepts (no NUL anywhere), and how names and email addresses compare."""

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, WithJsonSchema

NO_NUL = r"^[^\x00]*$"
# What `str.strip()` strips, spelled out so that the schema's pattern says the same.
BLANKS = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NAME_MAX = 255
NAME_KEY_BYTES = 4 * NAME_MAX  # UTF-8 bytes of a name's folded key (see `fold`)
# Unicode's Default_Ignorable_Code_Point: characters that show nothing.
INVISIBLE_BMP = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
INVISIBLE = INVISIBLE_BMP + "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"


def _escaped(chars: str) -> str:
    """As `\\uXXXX` escapes (ranges kept), which every regular expression dialect reads."""
    return "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in chars)


# Text with something visible, and no NUL. The schema's dialect (ECMA-262 without the `u`
# flag) cannot name characters past U+FFFF: text of only those is refused later, by `trim`.
NOT_BLANK = f"^[^\\x00]*[^\\x00{_escaped(BLANKS)}{_escaped(INVISIBLE_BMP)}][^\\x00]*$"
IGNORABLE = re.compile(f"[{INVISIBLE}]")
EDGES = re.compile(f"^[{BLANKS}{INVISIBLE}]+|[{BLANKS}{INVISIBLE}]+\\Z")


def fold(text: str) -> str:
    r"""The key names are compared and sorted by (NFKC_Casefold): `Avengers`, `AVENGERS`, its
    full-width twin, `Aven\u200bgers` and `Café` composed or decomposed read the same."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", folded)).strip(BLANKS)


def trim(text: str) -> str:
    """`text` composed (NFC), without surrounding blanks or invisible characters."""
    return EDGES.sub("", unicodedata.normalize("NFC", text))


def _trimmed(what: str, limit: int) -> Callable[[str], str]:
    """A check that keeps text trimmed (its length and pattern are checked before, on what
    was sent): a 422 if nothing visible is left, or if NFC made it longer than `limit`."""

    def check(value: str) -> str:
        trimmed = trim(value)
        if not trimmed:
            raise ValueError(f"the {what} has no visible characters")
        if len(trimmed) > limit:
            raise ValueError(f"the {what} is over {limit} characters once composed")
        return trimmed

    return check


def _key_fits(name: str) -> str:
    # Ligatures fold to several letters each; a key must stay small enough for a B-tree index.
    key = fold(name)
    if not key:
        raise ValueError("the name has no visible characters")
    if len(key.encode()) > NAME_KEY_BYTES:
        raise ValueError("the name is too long once its characters are spelled out")
    return name


# Names and other text a person types are kept composed (NFC) and trimmed; nothing left is a
# 422. Constraints sit inside the type, so the schema shows them under `... | None` too.
Name = Annotated[str, AfterValidator(_trimmed("name", NAME_MAX)), AfterValidator(_key_fits)]

TEXT_MAX = NAME_MAX
DESCRIPTION_MAX = 2000
Text = Annotated[
    str,
    Field(min_length=1, max_length=TEXT_MAX, pattern=NOT_BLANK),
    AfterValidator(_trimmed("text", TEXT_MAX)),
]
LongText = Annotated[
    str,
    Field(min_length=1, max_length=DESCRIPTION_MAX, pattern=NOT_BLANK),
    AfterValidator(_trimmed("text", DESCRIPTION_MAX)),
]


def _normalized_email(value: str) -> str:
    """Trimmed, in email-validator's normal form (NFC, the domain in Unicode) and lower-cased,
    so `Ada@X.com` is `ada@x.com`. No DNS lookup; `.test` domains (RFC 6761) are accepted."""
    email = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    return email.normalized.lower()


def canonical_email(value: str) -> str:
    """An address as stored, to look one up; one no account could have is trimmed, lower-cased."""
    try:
        return _normalized_email(value)
    except EmailNotValidError:
        return value.strip().lower()


def _valid_email(value: str) -> str:
    try:
        return _normalized_email(value)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


Email = Annotated[
    str,
    AfterValidator(_valid_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
