"""Storage backends implementing the core's store protocols (``bot.ports``).

``open_store(DATABASE_URL)`` is the one entry point the composition root needs; ``migrate``
and ``backup_sqlite`` serve the ``db`` CLI commands. The store logic is written once
(``storage.conversations``, ``storage.ledger``, ``storage.records``) over a small driver
interface (``storage.database``) that ``storage.sqlite`` and ``storage.postgres`` implement.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.errors import StorageError
from bot.ports import Store
from storage.common import new_id, parse_database_url

if TYPE_CHECKING:
    from storage.postgres.signals import PgSignals
    from storage.redis import RedisLimits

__all__ = [
    "backup_sqlite",
    "migrate",
    "open_shared_limits",
    "open_signals",
    "open_store",
    "parse_database_url",
    "process_lock",
]


async def open_shared_limits(redis_url: str) -> RedisLimits:
    """Rate budgets shared by every process (``storage.redis``); close with ``await limits.close()``."""
    from storage.redis import open_limits

    return await open_limits(redis_url)


def open_signals(database_url: str) -> PgSignals | None:
    """Signals between processes (PostgreSQL LISTEN/NOTIFY, ``storage.postgres.signals``); None on
    SQLite, which serves one process. Close it with ``await signals.close()``."""
    target = parse_database_url(database_url)
    if target.backend == "sqlite":
        return None
    from storage.postgres.signals import PgSignals

    return PgSignals(target.url, target.where)


@contextlib.contextmanager
def process_lock(database_url: str) -> Iterator[bool]:
    """For a bot process's whole life: on SQLite, the file's exclusive lock (a second process is
    refused with a clear StorageError) and True (no other process can share it); on PostgreSQL,
    nothing to hold and False (several processes share it through leases, see ``storage.leases``)."""
    target = parse_database_url(database_url)
    if target.backend != "sqlite":
        yield False
        return
    from storage.sqlite.lockfile import hold_exclusive

    with hold_exclusive(target.sqlite_path):
        yield True


async def open_store(database_url: str, *, process_id: str | None = None) -> Store:
    """Open the database named by DATABASE_URL, apply pending migrations, and return the store.

    ``process_id`` names the process the store works for (the owner of the holds and image jobs
    it creates, see ``storage.leases``); a fresh one when not given.
    """
    target = parse_database_url(database_url)
    process_id = process_id or new_id()
    if target.backend == "sqlite":
        from storage.sqlite import open_sqlite

        return await open_sqlite(target.sqlite_path, process_id=process_id)
    from storage.postgres import open_postgres

    return await open_postgres(target.url, target.where, process_id=process_id)


async def migrate(database_url: str, *, target_version: int | None = None) -> tuple[int, int]:
    """Apply pending migrations (up to ``target_version``); return (from_version, to_version)."""
    target = parse_database_url(database_url)
    if target.backend == "sqlite":
        from storage import sqlite

        return await sqlite.migrate(target.sqlite_path, target_version=target_version)
    from storage import postgres

    return await postgres.migrate(target.url, target.where, target_version=target_version)


async def backup_sqlite(database_url: str, dest_path: str | os.PathLike[str]) -> None:
    """Copy a SQLite database consistently, even while the bot is using it."""
    target = parse_database_url(database_url)
    if target.backend != "sqlite":
        raise StorageError("backup_sqlite needs a sqlite:/// DATABASE_URL; back up PostgreSQL with pg_dump.")
    from storage import sqlite

    await sqlite.backup(target.sqlite_path, dest_path)
