"""PostgreSQL ``LISTEN/NOTIFY`` between the bot's processes, on one dedicated connection.

asyncpg delivers notifications to listeners on the connection that LISTENs, between other work;
the same connection sends (under a lock: one statement at a time per connection). If it drops,
it is opened again and every channel listened to again; meanwhile signals are lost, which the
users of signals tolerate (they re-check the database on a timer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from storage.postgres.database import DRIVER_ERRORS, connect_one

logger = logging.getLogger(__name__)


class PgSignals:
    def __init__(self, url: str, where: str) -> None:
        self._url = url
        self._where = where
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._channels: dict[str, Callable[[str], None]] = {}

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect_one(self._url, self._where)
            for channel in self._channels:
                await self._conn.add_listener(channel, self._deliver)
        return self._conn

    def _deliver(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        callback = self._channels.get(channel)
        if callback is not None:
            callback(payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        async with self._lock:
            self._channels[channel] = callback
            conn = await self._connection()
            await conn.add_listener(channel, self._deliver)

    async def notify(self, channel: str, payload: str) -> None:
        async with self._lock:
            try:
                conn = await self._connection()
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
            except DRIVER_ERRORS:
                logger.warning("could not signal %s; reconnecting for the next one", channel, exc_info=True)
                self._conn = None

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
