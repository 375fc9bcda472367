"""What text the API accepts, and how it compares: names (trimmed, composed, and a key
that makes names that read the same one name), email addresses, and no NUL anywhere."""

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, WithJsonSchema

NO_NUL = r"^[^\x00]*$"
# What `str.strip()` strips (every `str.isspace()` character), spelled out so that the
# schema's pattern below says the same thing to clients.
BLANKS = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NAME_MAX = 255
NAME_KEY_BYTES = 4 * NAME_MAX  # UTF-8 bytes of a name's folded key (see `fold`)


# Unicode's Default_Ignorable_Code_Point: characters that show nothing (zero-width spaces and
# joiners, direction marks, variation selectors, the soft hyphen, tags).
INVISIBLE_BMP = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
INVISIBLE = INVISIBLE_BMP + "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"


def _escaped(chars: str) -> str:
    """Characters (and `a-z` ranges) as `\\uXXXX` escapes, which every regular expression
    dialect reads alike."""
    return "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in chars)


# A name or other text: not only blanks and invisible characters (they are stripped, see
# `Name` and `Text`), no NUL. The schema's dialect (ECMA-262 without the `u` flag) cannot
# name characters past U+FFFF: text of only those is refused after the pattern, by `trim`.
NOT_BLANK = f"^[^\\x00]*[^\\x00{_escaped(BLANKS)}{_escaped(INVISIBLE_BMP)}][^\\x00]*$"
IGNORABLE = re.compile(f"[{INVISIBLE}]")
# What a name may not begin or end with: blanks and invisible characters.
EDGES = re.compile(f"^[{BLANKS}{INVISIBLE}]+|[{BLANKS}{INVISIBLE}]+\\Z")


def fold(text: str) -> str:
    r"""The key names are compared, searched and sorted by: Unicode's caseless matching of
    identifiers (NFKC_Casefold), so that names that read the same are one name. `Avengers`,
    `AVENGERS`, its full-width twin and `Aven\u200bgers` (a zero-width space) all
    clash, and so do `Café` composed and decomposed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", folded)).strip(BLANKS)


def trim(text: str) -> str:
    """`text` composed (NFC), without surrounding blanks or invisible characters."""
    return EDGES.sub("", unicodedata.normalize("NFC", text))


def _trimmed(what: str, limit: int) -> Callable[[str], str]:
    """A check of text as sent (its length and pattern are checked first, on what the
    client sent, as the schema says) that keeps it trimmed: a 422 if nothing visible is
    left, or if composing made it longer than its column holds (rare, but NFC can)."""

    def check(value: str) -> str:
        trimmed = trim(value)
        if not trimmed:
            raise ValueError(f"the {what} has no visible characters")
        if len(trimmed) > limit:
            raise ValueError(f"the {what} is over {limit} characters once composed")
        return trimmed

    return check


def _key_fits(name: str) -> str:
    # A full-length name of ordinary letters always fits; one of ligatures that each fold to
    # several letters may not, and its key must stay small enough for a B-tree index.
    key = fold(name)
    if not key:
        raise ValueError("the name has no visible characters")
    if len(key.encode()) > NAME_KEY_BYTES:
        raise ValueError("the name is too long once its characters are spelled out")
    return name


# A name is kept in Unicode's composed form (NFC: `e` + U+0301 becomes `é`) and without
# surrounding blanks or invisible characters, so `" Avengers"` clashes with `"Avengers"`, and a
# name of only blanks is a 422.
Name = Annotated[str, AfterValidator(_trimmed("name", NAME_MAX)), AfterValidator(_key_fits)]

TEXT_MAX = NAME_MAX
DESCRIPTION_MAX = 2000
# Other text a person types (a headquarters, a secret name, a full name, a description) is
# kept like a name (composed, without surrounding blanks or invisible characters), and only
# blanks or invisible characters is a 422 like an empty string. The constraints sit inside
# the type so that the schema shows them under `... | None` too.
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
    """An address in the syntax email-validator accepts, in its normal form (Unicode NFC,
    the domain as Unicode rather than `xn--` punycode) and lower-cased, so that `Ada@X.com`
    and `ada@x.com` are one account. Nothing is looked up in DNS; `.test` domains (RFC 6761)
    are accepted, since test and staging set-ups use them."""
    email = validate_email(value, check_deliverability=False, test_environment=True)
    return email.normalized.lower()


def canonical_email(value: str) -> str:
    """The form an address is stored in, for looking one up (a sign-in): an address no
    account could have is only trimmed and lower-cased, and then simply matches nothing."""
    try:
        return _normalized_email(value.strip())
    except EmailNotValidError:
        return value.strip().lower()


def _valid_email(value: str) -> str:
    try:
        return _normalized_email(value.strip())  # blanks a form left around it, as at sign-in
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


Email = Annotated[
    str,
    AfterValidator(_valid_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
