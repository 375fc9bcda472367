"""Migrations go up and down on the suite's database engine, and models.py never drifts
from them. These run against a database of their own, next to the shared test one."""

import asyncio
import importlib.util
import random
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import project.models  # noqa: F401  (registers every table on SQLModel.metadata)
from project.config import Settings
from project.database import create_engine
from project.text import fold
from tests.conftest import alembic_config

TABLES = set(SQLModel.metadata.tables)  # every table the models describe
VERSIONS = Path(__file__).parents[1] / "alembic" / "versions"


def _run(url: str, work: Any) -> Any:
    """Run `work(sync_connection)` on a fresh engine for `url`."""

    async def go() -> Any:
        engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names()) - {"alembic_version"}


def _drift(connection: Connection, metadata: sa.MetaData = SQLModel.metadata) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": metadata}
    )
    return list(compare_metadata(context, metadata))


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "head")
    assert _run(scratch_url, _tables) == TABLES
    command.downgrade(config, "base")
    assert _run(scratch_url, _tables) == set()
    command.upgrade(config, "head")
    assert _run(scratch_url, _tables) == TABLES


def test_models_and_migrations_do_not_drift(scratch_url: str) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    assert _run(scratch_url, _drift) == []


def test_drift_check_notices_a_column_added_without_a_migration(scratch_url: str) -> None:
    """The drift test above can fail: a model change with no migration is reported."""
    command.upgrade(alembic_config(scratch_url), "head")
    changed = sa.MetaData(naming_convention=SQLModel.metadata.naming_convention)
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["heroes"].append_column(sa.Column("nickname", sa.String(50)))
    diff = _run(scratch_url, lambda connection: _drift(connection, changed))
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "heroes", "nickname")]


OWNER = uuid.UUID(int=1)


def _insert_at_0001(connection: Connection, table: str, **values: Any) -> uuid.UUID:
    """A row as 0001's code wrote it: the name's key is its plain casefold()."""
    row_id = uuid.uuid4()
    columns = {"id": row_id, "owner_id": OWNER, "version": 1, **values}
    columns["name_key"] = values["name"].casefold()
    typed = [sa.column(c, sa.Uuid() if c.endswith("id") else None) for c in columns]
    connection.execute(sa.table(table, *typed).insert().values(columns))
    return row_id


def _seed_0001(connection: Connection, *teams: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO users (id, email, hashed_password, is_active, is_superuser) "
            "VALUES (:id, 'ada@example.com', 'x', true, false)"
        ).bindparams(sa.bindparam("id", OWNER, type_=sa.Uuid()))
    )
    for name in teams:
        _insert_at_0001(connection, "teams", name=name, headquarters="HQ")
    _insert_at_0001(connection, "heroes", name="\uff34hor", secret_name="T")
    connection.commit()


def _keys(connection: Connection) -> dict[str, str]:
    """Every team's and hero's name, with the key it is stored with."""
    keys: dict[str, str] = {}
    for table_name in ("teams", "heroes"):
        table = sa.table(table_name, sa.column("name"), sa.column("name_key"))
        rows = connection.execute(sa.select(table.c.name, table.c.name_key))
        keys.update((name, key) for name, key in rows)
    return keys


def test_0002_rekeys_names_the_way_the_models_fold_them(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "0001")
    _run(scratch_url, lambda connection: _seed_0001(connection, "Cafe\u0301", "X\u200bMen"))
    command.upgrade(config, "head")
    assert _run(scratch_url, _keys) == {
        "Cafe\u0301": fold("Caf\u00e9"),
        "X\u200bMen": "xmen",
        "\uff34hor": "thor",
    }
    command.downgrade(config, "0001")
    assert _run(scratch_url, _keys) == {
        "Cafe\u0301": "cafe\u0301",
        "X\u200bMen": "x\u200bmen",
        "\uff34hor": "\uff54hor",
    }


def test_0002_refuses_names_that_would_clash_and_changes_nothing(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "0001")
    seed = ("Caf\u00e9", "Cafe\u0301", "\u200b")
    _run(scratch_url, lambda connection: _seed_0001(connection, *seed))
    with pytest.raises(RuntimeError, match="rename them") as refused:
        command.upgrade(config, "head")
    assert "'\\u200b': nothing visible in it" in str(refused.value)
    clash = re.search(r"teams \S+ ('.*'): the same name as ('.*')", str(refused.value))
    assert clash is not None
    assert set(clash.groups()) == {"'Caf\u00e9'", "'Cafe\u0301'"}
    assert _run(scratch_url, _keys)["Cafe\u0301"] == "cafe\u0301"
    revision = _run(
        scratch_url, lambda c: c.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    )
    assert revision == [("0001",)]


def test_0004_gives_full_names_their_search_keys(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "0003")

    def seed(connection: Connection) -> None:
        for n, full_name in enumerate(("\u00c5SA \u00d6berg", None)):
            connection.execute(
                sa.text(
                    "INSERT INTO users (id, email, full_name, hashed_password, is_active,"
                    " is_superuser) VALUES (:id, :email, :full_name, 'x', true, false)"
                ).bindparams(
                    sa.bindparam("id", uuid.UUID(int=n + 1), type_=sa.Uuid()),
                    email=f"user{n}@example.com",
                    full_name=full_name,
                )
            )
        connection.commit()

    def keys(connection: Connection) -> list[tuple[Any, ...]]:
        query = "SELECT email, full_name_key FROM users ORDER BY email"
        return [tuple(row) for row in connection.execute(sa.text(query))]

    _run(scratch_url, seed)
    command.upgrade(config, "head")
    assert _run(scratch_url, keys) == [
        ("user0@example.com", fold("\u00c5SA \u00d6berg")),
        ("user1@example.com", None),
    ]
    command.downgrade(config, "0003")
    command.upgrade(config, "head")


def test_rebuilding_the_users_table_keeps_what_users_own(scratch_url: str) -> None:
    """On SQLite, 0004's downgrade copies `users` into a new table and drops the old one:
    with foreign keys enforced during migrations, that drop would cascade to every team."""
    config = alembic_config(scratch_url)
    command.upgrade(config, "head")

    def seed(connection: Connection) -> None:
        _seed_0001(connection, "Avengers")

    def count(connection: Connection) -> tuple[int, int]:
        teams = connection.execute(sa.text("SELECT count(*) FROM teams")).scalar_one()
        users = connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
        return teams, users

    _run(scratch_url, seed)
    command.downgrade(config, "0003")
    assert _run(scratch_url, count) == (1, 1)
    command.upgrade(config, "head")
    assert _run(scratch_url, count) == (1, 1)


def test_the_head_revision_folds_names_as_the_models_do() -> None:
    """A change to `fold` needs a migration that rekeys the stored names: this test fails
    until the newest such migration uses the same rule."""
    folding = [
        path for path in sorted(VERSIONS.glob("*.py")) if "nfkc_casefold" in path.read_text()
    ]
    spec = importlib.util.spec_from_file_location("rekey", folding[-1])
    assert spec is not None and spec.loader is not None
    head = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(head)
    characters = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    assert all(head.nfkc_casefold(c) == fold(c) for c in characters)
    # What only shows across characters: composition, invisible and blank ends, Hangul.
    pick = random.Random(2026)
    texts = [
        "Cafe\u0301",
        "A\u200b B",
        " \u200b",
        "\u1100\u1161\u11a8",
        *("".join(pick.choices(characters, k=pick.randint(2, 6))) for _ in range(20_000)),
    ]
    assert [head.nfkc_casefold(t) for t in texts] == [fold(t) for t in texts]
