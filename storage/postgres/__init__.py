"""The PostgreSQL backend: open a pool (after migrating) and migrate only."""

from __future__ import annotations

import logging

from storage.postgres.database import PgDatabase, connect_one, connect_pool
from storage.postgres.migrate import apply_migrations
from storage.store import SqlStore

logger = logging.getLogger(__name__)

__all__ = ["PgDatabase", "migrate", "open_postgres"]


async def open_postgres(url: str, where: str, *, max_connections: int = 10) -> SqlStore:
    """Migrate to the newest schema on one connection, then open the pool and return the store."""
    await migrate(url, where)
    pool = await connect_pool(url, where, max_size=max_connections)
    logger.info("opened PostgreSQL database at %s", where)
    return SqlStore(PgDatabase(where, pool))


async def migrate(url: str, where: str, *, target_version: int | None = None) -> tuple[int, int]:
    conn = await connect_one(url, where)
    try:
        return await apply_migrations(conn, where, target_version=target_version)
    finally:
        await conn.close()
