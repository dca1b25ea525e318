"""Migrations upgrade old databases in place; opening fails clearly on damaged or unreachable ones."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from bot.errors import StorageError
from bot.ports import Account, ConversationKey, Turn
from storage import backup_sqlite, migrate, open_store
from storage.common import parse_database_url
from storage.sqlite import open_sqlite
from storage.sqlite.migrate import migrations

NEWEST = len(migrations())  # the lead renumbers migrations at merges: never a literal here

KEY = ConversationKey("telegram", "1", "2")
ALICE = Account("telegram", "alice")

# Rows as a bot on schema version 1 wrote them (no turns.status, no image_jobs.deadline_at).
VERSION_1_ROWS = [
    "INSERT INTO conversations (platform, scope, channel, owner) VALUES ('telegram', '1', '2', '')",
    "INSERT INTO turns (conversation_id, role, text, tokens)"
    " SELECT id, 'user', 'old question', 4 FROM conversations",
    "INSERT INTO turns (conversation_id, role, text, tokens)"
    " SELECT id, 'assistant', 'old answer', 6 FROM conversations",
    "INSERT INTO accounts (platform, holder, balance) VALUES ('telegram', 'alice', 250)",
    "INSERT INTO ledger (platform, holder, kind, amount, balance_after, idempotency_key)"
    " VALUES ('telegram', 'alice', 'grant', 250, 250, 'open:telegram:alice')",
    "INSERT INTO image_jobs (id, requester_platform, requester_holder, platform, scope, channel, state)"
    " VALUES ('j1', 'telegram', 'alice', 'telegram', '1', '2', 'queued')",
]


async def raw_execute(database_url: str, statements: list[str]) -> None:
    """Run SQL behind the store's back, as an older bot version would have."""
    target = parse_database_url(database_url)
    if target.backend == "sqlite":
        async with aiosqlite.connect(target.sqlite_path) as conn:
            for statement in statements:
                await conn.execute(statement)
            await conn.commit()
        return
    conn = await asyncpg.connect(database_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def schema_versions(database_url: str) -> list[int]:
    target = parse_database_url(database_url)
    query = "SELECT version FROM schema_version ORDER BY version"
    if target.backend == "sqlite":
        async with aiosqlite.connect(target.sqlite_path) as conn:
            return [row[0] for row in await conn.execute_fetchall(query)]
    conn = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_version_1_database_is_upgraded_in_place(database_url: str) -> None:
    """A database with only migration 0001 and old rows opens upgraded, with every row intact."""
    assert await migrate(database_url, target_version=1) == (0, 1)
    await raw_execute(database_url, VERSION_1_ROWS)

    store = await open_store(database_url)
    try:
        context = await store.load_context(KEY, 100)
        assert [(t.text, t.status) for t in context] == [
            ("old question", "complete"),
            ("old answer", "complete"),
        ]
        assert await store.balance(ALICE) == 250
        job = await store.get_job("j1")
        assert job is not None
        assert job.deadline_at is None
        await store.append_turns(KEY, [Turn("user", "new", 1, status="stopped")])
        after = await store.load_context(KEY, 100)
        assert [(t.text, t.status) for t in after][-1] == ("new", "stopped")
    finally:
        await store.close()
    assert await schema_versions(database_url) == list(range(1, NEWEST + 1))


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    """migrate reports (0, newest) on an empty database and (newest, newest) the second time."""
    first = await migrate(database_url)
    second = await migrate(database_url)

    assert first == (0, NEWEST)
    assert second == (NEWEST, NEWEST)
    assert await schema_versions(database_url) == list(range(1, NEWEST + 1))


async def test_database_newer_than_the_code_is_refused(database_url: str) -> None:
    """A schema version this code does not know stops the open with a clear message."""
    await migrate(database_url)
    await raw_execute(database_url, ["INSERT INTO schema_version (version, name) VALUES (99, 'future')"])

    with pytest.raises(StorageError, match="newer than this bot knows"):
        await open_store(database_url)


# ---------------------------------------------------------------- SQLite files


async def test_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a database gives a StorageError that says so and names the file."""
    path = tmp_path / "bot.sqlite3"
    path.write_bytes(b"this is not a database, just text " * 200)

    with pytest.raises(StorageError) as raised:
        await open_store(f"sqlite:///{path}")

    assert "is not a usable database" in str(raised.value)
    assert str(path) in str(raised.value)


async def test_sqlite_folders_are_created(tmp_path: Path) -> None:
    """Missing folders on the way to the SQLite file are created."""
    path = tmp_path / "a" / "b" / "bot.sqlite3"
    store = await open_store(f"sqlite:///{path}")
    await store.close()

    assert path.is_file()


async def test_in_memory_sqlite_works_for_tests() -> None:
    """sqlite:///:memory: opens a private, migrated database that works like a file."""
    store = await open_store("sqlite:///:memory:")
    try:
        await store.append_turns(KEY, [Turn("user", "hello", 2)])
        assert [t.text for t in await store.load_context(KEY, 10)] == ["hello"]
    finally:
        await store.close()


async def test_unwritable_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    """A path whose folder cannot be created (a file is in the way) gives a StorageError."""
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(StorageError, match="Could not create the folder"):
        await open_store(f"sqlite:///{blocker / 'db' / 'bot.sqlite3'}")


async def test_locked_sqlite_database_is_a_clear_error(tmp_path: Path) -> None:
    """A database another process holds a write lock on fails to open with 'locked' in the message."""
    path = tmp_path / "bot.sqlite3"
    await (await open_sqlite(str(path))).close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="locked"):
            await open_sqlite(str(path), busy_timeout_ms=20)
    finally:
        holder.close()


async def test_backup_while_open_is_a_consistent_copy(tmp_path: Path) -> None:
    """A backup taken while the store is open and writing opens on its own with the committed data."""
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    dest = tmp_path / "backups" / "copy.sqlite3"
    dest.parent.mkdir()
    store = await open_store(url)
    try:
        await store.append_turns(KEY, [Turn("user", f"t{i}", 1) for i in range(50)])
        await store.open_account(ALICE, starting_grant=77, reason="welcome")
        await backup_sqlite(url, dest)
        await store.append_turns(KEY, [Turn("user", "after the backup", 1)])
    finally:
        await store.close()

    copy = await open_store(f"sqlite:///{dest}")
    try:
        assert len(await copy.load_context(KEY, 1000)) == 50
        assert await copy.balance(ALICE) == 77
    finally:
        await copy.close()
    with sqlite3.connect(dest) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_backup_needs_a_sqlite_url() -> None:
    """backup_sqlite refuses a PostgreSQL URL with a pointer to pg_dump."""
    with pytest.raises(StorageError, match="pg_dump"):
        await backup_sqlite("postgresql://u:secret@127.0.0.1/db", "/tmp/never")


# ---------------------------------------------------------------- PostgreSQL


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_postgres_names_host_and_port_only() -> None:
    """An unreachable server gives a StorageError naming host:port and never the password."""
    port = closed_local_port()

    with pytest.raises(StorageError) as raised:
        await open_store(f"postgresql://bot:hunter2secret@127.0.0.1:{port}/bot")

    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2secret" not in message
