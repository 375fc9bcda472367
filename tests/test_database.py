"""The engine's SQLite set-up and its pool hygiene, on a SQLite file of the test's own (the
PostgreSQL side is covered against a real server in test_connections.py and test_faults.py),
the pool's fairness on the test database, and what a broken foreign key tells the caller."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from project.config import Settings
from project.database import Database
from project.db.pool import checkout
from project.errors import FOREIGN_KEY_VIOLATION, InvalidField, integrity_problem


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    """A one-connection pool, so that a test gets the same connection back."""
    database = Database(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}",
            sqlite_busy_timeout=3,
            db_pool_size=1,
            db_max_overflow=0,
        )
    )
    yield database
    await database.engine.dispose()


async def test_every_sqlite_connection_is_set_up_for_concurrent_use(sqlite: Database) -> None:
    pragmas: dict[str, Any] = {}
    async with sqlite.engine.connect() as connection:
        for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            pragmas[name] = (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
    # synchronous=1 is NORMAL: with WAL, a commit survives a crash of the process.
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 3000,
        "synchronous": 1,
    }


async def test_a_connection_goes_back_to_the_pool_with_no_transaction_open(
    sqlite: Database,
) -> None:
    """The pool rolls back only what is still open (no needless ROLLBACK after each read on
    the driver), but it does roll that back: otherwise the next user of the connection would
    hold the write lock without knowing it."""
    async with sqlite.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        await driver.execute("BEGIN IMMEDIATE")  # a write on the driver, left half done
        assert driver.in_transaction
    async with sqlite.engine.connect() as connection:
        again = (await connection.get_raw_connection()).driver_connection
        assert again is driver  # the same connection, from the pool
        assert not again.in_transaction


@asynccontextmanager
async def _pool(
    settings: Settings, *, size: int, overflow: int, wait: float
) -> AsyncIterator[Database]:
    """The test database behind a pool of its own, checked to be all back when done."""
    database = Database(
        settings.model_copy(
            update={"db_pool_size": size, "db_max_overflow": overflow, "db_pool_timeout": wait}
        )
    )
    try:
        yield database
        assert database.pool_status()["in_use"] == 0
    finally:
        await database.engine.dispose()


async def test_pooled_connections_go_to_waiters_in_the_order_they_asked(
    settings: Settings,
) -> None:
    """A request that returns its connection and at once asks for another queues behind the
    requests already waiting: a busy client must not starve a waiting request into a 503."""
    served: list[str] = []
    busy_started = asyncio.Event()

    async def busy(database: Database) -> None:
        for _ in range(300):  # about 3 s of back-to-back use, well past the pool timeout
            async with held(database.engine):
                served.append("busy")
                busy_started.set()
                await asyncio.sleep(0.01)
            if "waiting" in served:
                return

    async def waiting(database: Database) -> None:
        async with held(database.engine):
            served.append("waiting")

    async with _pool(settings, size=1, overflow=0, wait=1) as database:
        busy_task = asyncio.create_task(busy(database))
        await busy_started.wait()
        await asyncio.gather(waiting(database), busy_task)
        # Served at the first return of the connection, ahead of the busy client's next use,
        # not after the busy client stops (or, on an unfair pool, times out meanwhile).
        assert served == ["busy", "waiting", "busy"]


async def test_connections_returned_while_others_wait_go_to_them_not_closed(
    settings: Settings,
) -> None:
    """A connection handed back while requests wait goes to one of them: it is not closed
    as surplus to the pool's size, only for another to be opened a moment later."""
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    both_served = asyncio.Barrier(2)

    async def use(database: Database) -> None:
        async with held(database.engine):
            await both_served.wait()  # each holds its connection until both have one

    async with _pool(settings, size=1, overflow=1, wait=5) as database:
        event.listen(database.engine.sync_engine, "connect", count)
        kept, overflow = await checkout(database.engine), await checkout(database.engine)
        waiting = [asyncio.create_task(use(database)) for _ in range(2)]
        await asyncio.sleep(0.05)  # both wait for a connection
        # Both come back at once, before either waiter runs.
        await greenlet_spawn(lambda: (kept.close(), overflow.close()))
        await asyncio.gather(*waiting)
        assert opened == 2  # the two the pool had; none closed and opened again


@asynccontextmanager
async def held(engine: AsyncEngine) -> AsyncIterator[None]:
    """A connection of the pool, held until the block ends."""
    connection = await checkout(engine)
    try:
        yield
    finally:
        await greenlet_spawn(connection.close)


class _DriverError(Exception):
    sqlstate = FOREIGN_KEY_VIOLATION

    def __init__(self, constraint_name: str) -> None:
        super().__init__(constraint_name)
        self.constraint_name = constraint_name


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("fk_heroes_team_id_teams", (422, ["body", "team_id"])),
        ("fk_hero_powers_power_id_powers", (422, ["body", "power_ids"])),
        ("fk_hero_powers_hero_id_heroes", (404, None)),
        ("fk_auth_sessions_user_id_users", (401, None)),
        ("fk_quests_owner_id_users", (401, None)),  # any owned table's owner is the caller
        ("fk_quests_hero_id_heroes", (409, None)),  # a key of its own, not a hero's powers
    ],
)
def test_a_broken_foreign_key_answers_for_the_row_it_names(
    constraint: str, expected: tuple[int, list[str] | None]
) -> None:
    problem = integrity_problem(IntegrityError("INSERT", None, _DriverError(constraint)))
    field = problem.errors[0].loc if isinstance(problem, InvalidField) else None
    assert (problem.status_code, field) == expected
