"""The PostgreSQL backend: open a pool (after migrating) and migrate only."""

from __future__ import annotations

import logging

from storage.common import new_id
from storage.postgres.database import PgDatabase, connect_one, connect_pool
from storage.postgres.migrate import apply_migrations
from storage.store import SqlStore

logger = logging.getLogger(__name__)

PROCESS_SETTING = "minitoolai.process_id"

__all__ = ["PgDatabase", "migrate", "open_postgres"]


async def open_postgres(
    url: str, where: str, *, max_connections: int = 10, process_id: str | None = None
) -> SqlStore:
    """Migrate to the newest schema on one connection, then open the pool and return the store.

    Every pooled connection carries ``minitoolai.process_id``, which new reservations and image
    jobs take as their owner (the column default of migration 0003).
    """
    await migrate(url, where)
    process_id = process_id or new_id()
    pool = await connect_pool(
        url, where, max_size=max_connections, server_settings={PROCESS_SETTING: process_id}
    )
    logger.info("opened PostgreSQL database at %s as process %s", where, process_id)
    return SqlStore(PgDatabase(where, pool), process_id)


async def migrate(url: str, where: str, *, target_version: int | None = None) -> tuple[int, int]:
    conn = await connect_one(url, where)
    try:
        return await apply_migrations(conn, where, target_version=target_version)
    finally:
        await conn.close()
