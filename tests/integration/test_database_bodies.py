"""``Database.run_write`` / ``run_read``: a transaction's statements as one body, on both backends.

On SQLite the body runs whole in the database's thread (one trip instead of one per statement);
it must then await nothing but its statements, and one that does is refused and rolled back.
"""

from __future__ import annotations

import asyncio

import pytest

from storage.database import Rollback, Tx
from storage.store import SqlStore


async def test_a_body_commits_all_its_statements_and_returns_its_result(store: SqlStore) -> None:
    async def body(tx: Tx) -> int:
        await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", "a", "1")
        await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", "b", "2")
        return int(await tx.fetchval("SELECT count(*) FROM meta WHERE key IN (?, ?)", "a", "b"))

    assert await store.database.run_write(body) == 2
    assert await store.get_meta_many(["a", "b"]) == {"a": "1", "b": "2"}


async def test_a_body_that_raises_leaves_nothing_behind(store: SqlStore) -> None:
    async def body(tx: Tx) -> None:
        await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", "a", "1")
        raise Rollback("lost")

    with pytest.raises(Rollback) as raised:
        await store.database.run_write(body)

    assert raised.value.result == "lost"
    assert await store.get_meta("a") is None
    await store.set_meta("a", "after")  # the connection is usable again: no transaction left open
    assert await store.get_meta("a") == "after"


async def test_reads_in_one_body_see_committed_data(store: SqlStore) -> None:
    await store.set_meta("a", "1")

    async def body(tx: Tx) -> list[str]:
        first = await tx.fetchval("SELECT value FROM meta WHERE key = ?", "a")
        rows = await tx.fetch("SELECT key FROM meta WHERE key = ?", "missing")
        return [str(first), str(len(rows))]

    assert await store.database.run_read(body) == ["1", "0"]


async def test_concurrent_bodies_take_turns(store: SqlStore) -> None:
    """Read-modify-write bodies from many tasks at once: none lost (each is one transaction)."""
    await store.set_meta("n", "0")

    async def bump(tx: Tx) -> None:
        value = int(await tx.fetchval(f"SELECT value FROM meta WHERE key = ?{lock}", "n"))
        await tx.execute("UPDATE meta SET value = ? WHERE key = ?", str(value + 1), "n")

    lock = store.database.lock_clause
    await asyncio.gather(*(store.database.run_write(bump) for _ in range(50)))

    assert await store.get_meta("n") == "50"


async def test_on_sqlite_a_body_that_waits_on_anything_else_is_refused_and_undone(
    store: SqlStore, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL runs a body on the event loop: it may await anything")

    async def body(tx: Tx) -> None:
        await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", "a", "1")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than its own statements"):
        await store.database.run_write(body)

    assert await store.get_meta("a") is None
