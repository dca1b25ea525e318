"""The SQLite backend: open (configure, migrate), migrate only, and back up a live database."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

from bot.errors import StorageError
from storage.common import new_id
from storage.sqlite.database import BUSY_TIMEOUT_MS, SqliteDatabase, connect, stamp_owner
from storage.sqlite.migrate import apply_migrations
from storage.store import SqlStore

logger = logging.getLogger(__name__)

__all__ = ["SqliteDatabase", "backup", "migrate", "open_sqlite"]


async def open_sqlite(
    path: str,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    separate_reader: bool = True,
    process_id: str | None = None,
) -> SqlStore:
    """Open (creating folders and file), migrate to the newest schema, and return the store.

    New reservations and image jobs written through the store's writer connection are stamped
    with ``process_id`` as their owner (temporary triggers, which live and die with the connection).
    """
    process_id = process_id or new_id()
    writer = await connect(path, busy_timeout_ms=busy_timeout_ms, isolation_level="IMMEDIATE")
    reader = None
    try:
        await apply_migrations(writer, path)
        await stamp_owner(writer, process_id)
        if separate_reader and path != ":memory:":
            reader = await connect(path, busy_timeout_ms=busy_timeout_ms, reader=True)
    except BaseException:
        await writer.close()
        raise
    logger.info("opened SQLite database %s", path)
    return SqlStore(SqliteDatabase(path, writer, reader), process_id)


async def migrate(path: str, *, target_version: int | None = None) -> tuple[int, int]:
    conn = await connect(path)
    try:
        return await apply_migrations(conn, path, target_version=target_version)
    finally:
        await conn.close()


async def backup(path: str, dest_path: str | os.PathLike[str]) -> None:
    """Write a consistent copy of ``path`` to ``dest_path`` (replacing it), even while it is in use.

    ``VACUUM INTO`` reads one snapshot (WAL lets the bot keep writing meanwhile) into a
    temporary file, which is then renamed over the destination so a reader never sees half a copy.
    """
    if path == ":memory:":
        raise StorageError("An in-memory SQLite database cannot be backed up; DATABASE_URL names no file.")
    if not await asyncio.to_thread(Path(path).is_file):
        raise StorageError(f"Cannot back up {path}: there is no such SQLite file.")
    dest = Path(dest_path)
    partial = dest.with_name(dest.name + ".partial")
    await asyncio.to_thread(_remove, partial)
    conn = await connect(path)
    try:
        await conn.execute("VACUUM INTO ?", (str(partial),))
    except sqlite3.Error as exc:
        raise StorageError(f"Could not back up the SQLite database {path} to {dest}: {exc}.") from exc
    finally:
        await conn.close()
    await asyncio.to_thread(os.replace, partial, dest)
    logger.info("backed up SQLite database %s to %s", path, dest)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
