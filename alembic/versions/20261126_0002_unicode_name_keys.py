"""Name keys compare names the way Unicode matches identifiers (NFKC_Casefold).

Until this revision a name's key was its `casefold()`, so `Café` written composed and
decomposed, a name in full-width letters or one with a zero-width space inside were other
names than the ones they read as. This revision recomputes every key with the new rule.
The names themselves are left as they were stored. A name whose new key would clash with
another of its owner's (teams and powers), would be empty (a name of invisible characters)
or too long stops the upgrade with a list of those rows: rename them (the API or the
admin) and run it again. The downgrade restores the plain `casefold()` keys, which never
clash where these did not.

The rule is copied here rather than imported, so that this revision keeps meaning what it
meant when it was written whatever `project.text.fold` later becomes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:20:00+00:00
"""

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_BYTES = 1020
IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# Teams and powers have names unique per owner; heroes' names only need their keys.
TABLES = {"teams": True, "powers": True, "heroes": False}


def nfkc_casefold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", folded)).strip()


def _table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Uuid()),
        sa.column("owner_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("name_key", sa.String()),
    )


def _rows(connection: sa.Connection, table: sa.TableClause) -> Iterator[sa.Row[Any]]:
    """Every row's id, owner, name and key, read in batches in id order."""
    select = sa.select(table.c.id, table.c.owner_id, table.c.name, table.c.name_key)
    select = select.order_by(table.c.id).limit(10_000)
    batch = connection.execute(select).all()
    while batch:
        yield from batch
        batch = connection.execute(select.where(table.c.id > batch[-1][0])).all()


def _rekey(key: Callable[[str], str], check: bool) -> None:
    """Give every name the key `key` gives it; with `check`, first refuse (listing them)
    names that would clash or whose key would be too long."""
    connection = op.get_bind()
    refused: list[str] = []
    changes: dict[str, list[dict[str, object]]] = {}
    for name, unique in TABLES.items():
        table = _table(name)
        seen: dict[tuple[object, str], str] = {}
        changes[name] = []
        for row_id, owner_id, row_name, old in _rows(connection, table):
            new = key(row_name)
            if check and not new:
                refused.append(f"{name} {row_id} {row_name!r}: nothing visible in it")
            if check and len(new.encode()) > KEY_BYTES:
                refused.append(f"{name} {row_id} {row_name!r}: too long once folded")
            if check and unique and (clash := seen.get((owner_id, new))) is not None:
                refused.append(f"{name} {row_id} {row_name!r}: the same name as {clash!r}")
            if unique:
                seen[(owner_id, new)] = row_name
            if new != old:
                changes[name].append({"row_id": row_id, "key": new})
    if refused:
        raise RuntimeError(
            "These names read the same as another of their owner's, show nothing or are too "
            "long, once compared the new way; rename them and upgrade again:\n  "
            + "\n  ".join(refused)
        )
    for name, changed in changes.items():
        if changed:
            table = _table(name)
            update = (
                table.update()
                .where(table.c.id == sa.bindparam("row_id"))
                .values(name_key=sa.bindparam("key"))
            )
            connection.execute(update, changed)


def upgrade() -> None:
    _rekey(nfkc_casefold, check=True)


def downgrade() -> None:
    _rekey(str.casefold, check=False)
