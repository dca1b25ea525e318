"""Numbered SQLite migrations, applied in one ``BEGIN IMMEDIATE`` transaction.

``schema_version`` records each applied file. Writers from other processes wait on the
database lock, and the version is read inside the transaction, so two migrators never apply
the same file twice; a failing file rolls everything back to the previous version.
"""

from __future__ import annotations

import logging
import sqlite3

import aiosqlite

from bot.errors import StorageError
from storage.common import Migration, load_migrations, sqlite_time, utcnow
from storage.sqlite.database import describe_open_problem

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))"
)


def migrations() -> list[Migration]:
    return load_migrations("storage.sqlite")


def split_statements(sql: str) -> list[str]:
    """The statements of a script (``executescript`` would commit our open transaction)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


async def apply_migrations(
    conn: aiosqlite.Connection, path: str, *, target_version: int | None = None
) -> tuple[int, int]:
    """Bring the schema to ``target_version`` (default: the newest); return (from, to)."""
    known = migrations()
    target = len(known) if target_version is None else target_version
    try:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            current = await _apply(conn, known, target, path)
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
    except sqlite3.Error as exc:
        raise StorageError(describe_open_problem(path, exc)) from exc
    if current < target:
        logger.info("migrated SQLite database %s from version %d to %d", path, current, target)
    return current, max(current, target)


async def _apply(conn: aiosqlite.Connection, known: list[Migration], target: int, path: str) -> int:
    await conn.execute(_SCHEMA_VERSION)
    rows = await conn.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    current = int(next(iter(rows))[0])
    if current > len(known):
        raise StorageError(
            f"The SQLite database {path} has schema version {current}, newer than this bot knows "
            f"({len(known)}); upgrade the bot."
        )
    for migration in known[current:target]:
        for statement in split_statements(migration.sql):
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, sqlite_time(utcnow())),
        )
    return current
