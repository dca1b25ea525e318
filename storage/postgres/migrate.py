"""Numbered PostgreSQL migrations, applied in one transaction under an advisory lock.

``pg_advisory_xact_lock`` (keyed by the current schema) makes concurrent migrators queue,
and the version is read after taking it, so each file is applied exactly once. PostgreSQL's
DDL is transactional: a failing file leaves the previous version intact.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import StorageError
from storage.common import Migration, load_migrations
from storage.postgres.database import DRIVER_ERRORS

logger = logging.getLogger(__name__)

_LOCK_CLASS = 7_395_120  # an arbitrary constant naming "MiniToolAI Bot migrations"

_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


def migrations() -> list[Migration]:
    return load_migrations("storage.postgres")


async def apply_migrations(conn: Any, where: str, *, target_version: int | None = None) -> tuple[int, int]:
    """Bring the schema to ``target_version`` (default: the newest); return (from, to)."""
    known = migrations()
    target = len(known) if target_version is None else target_version
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _LOCK_CLASS)
            await conn.execute(_SCHEMA_VERSION)
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            if current > len(known):
                raise StorageError(
                    f"The PostgreSQL database at {where} has schema version {current}, newer than this "
                    f"bot knows ({len(known)}); upgrade the bot."
                )
            for migration in known[current:target]:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
    except DRIVER_ERRORS as exc:
        raise StorageError(f"Could not migrate the PostgreSQL database at {where}: {exc}.") from exc
    if current < target:
        logger.info("migrated PostgreSQL database at %s from version %d to %d", where, current, target)
    return current, max(current, target)
