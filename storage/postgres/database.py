"""PostgreSQL through an asyncpg pool: one pooled connection per transaction.

Correctness across processes comes from the database itself: atomic ``UPDATE ... RETURNING``
statements, unique idempotency keys and ``SELECT ... FOR UPDATE`` row locks (see
``storage.ledger``), so no process-local lock is needed here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from bot.errors import StorageError
from storage.common import Row
from storage.database import Body, T

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0

# What a broken connection or a refused statement raises; InsufficientCredits and the like pass.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, TimeoutError, ValueError)


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (our SQL has no ``?`` inside literals)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTx:
    """Statements on one pooled connection (inside a transaction when writing)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._conn.fetch(numbered(sql), *args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        row: Row | None = await self._conn.fetchrow(numbered(sql), *args)
        return row

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._conn.fetchval(numbered(sql), *args)

    async def execute(self, sql: str, *args: object) -> int:
        return _rowcount(await self._conn.execute(numbered(sql), *args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._conn.executemany(numbered(sql), list(rows))


class PgDatabase:
    """The :class:`storage.database.Database` for PostgreSQL."""

    lock_clause = " FOR UPDATE"

    def __init__(self, where: str, pool: Any) -> None:
        self.where = where
        self._pool = pool

    @property
    def pool(self) -> Any:
        """The asyncpg pool, for maintenance (bulk loading in benchmarks)."""
        return self._pool

    @asynccontextmanager
    async def write(self) -> AsyncIterator[PgTx]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield PgTx(conn)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"Could not write to PostgreSQL at {self.where}: {_describe(exc)}.") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PgTx]:
        try:
            async with self._pool.acquire() as conn:
                yield PgTx(conn)
        except DRIVER_ERRORS as exc:
            raise StorageError(f"Could not read from PostgreSQL at {self.where}: {_describe(exc)}.") from exc

    async def run_write(self, body: Body[T]) -> T:
        async with self.write() as tx:
            return await body(tx)

    async def run_read(self, body: Body[T]) -> T:
        async with self.read() as tx:
            return await body(tx)

    async def close(self) -> None:
        await self._pool.close()


def _describe(exc: BaseException) -> str:
    # Server messages name users and objects, never the password; socket errors name host:port.
    if isinstance(exc, asyncpg.PostgresError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


async def connect_pool(
    url: str,
    where: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> Any:
    """Create a pool; an unreachable server or refused login is a StorageError naming host:port only."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=server_settings,
        )
    except CONNECT_ERRORS as exc:
        raise StorageError(_connect_problem(where, exc)) from None


async def connect_one(url: str, where: str) -> Any:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except CONNECT_ERRORS as exc:
        raise StorageError(_connect_problem(where, exc)) from None


def _connect_problem(where: str, exc: BaseException) -> str:
    if isinstance(exc, OSError | TimeoutError):
        reason = "the server did not answer (is it running, and is the host and port right?)"
    elif isinstance(exc, ValueError):
        reason = "DATABASE_URL could not be understood as a PostgreSQL URL"
    else:
        # Server messages name the user or database, never the password.
        reason = f"the server refused ({type(exc).__name__}: {exc})"
    return f"Could not connect to PostgreSQL at {where}: {reason}."
