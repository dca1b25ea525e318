"""The small driver interface the shared store logic is written against.

Each backend (``storage.sqlite``, ``storage.postgres``) implements :class:`Database`: how to
open a write transaction (all or nothing, rolled back on any exception) and how to read.
SQL is written once with ``?`` placeholders; the PostgreSQL driver numbers them (``$1``...).
Row locks are spelled ``{lock}`` where the store needs one: ``FOR UPDATE`` on PostgreSQL,
nothing on SQLite (whose ``BEGIN IMMEDIATE`` already makes writers take turns).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from storage.common import Row

T = TypeVar("T")
Body = Callable[["Tx"], Awaitable[T]]  # a transaction's statements: awaits nothing but the Tx's methods


class Tx(Protocol):
    """Statements inside one transaction (or, for reads, one connection)."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def fetchval(self, sql: str, *args: object) -> Any: ...

    async def execute(self, sql: str, *args: object) -> int:
        """Run a statement; return how many rows it changed."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...


class Database(Protocol):
    lock_clause: str  # " FOR UPDATE" or ""

    def write(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction; commits on success, rolls back on any exception."""

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Reads that see only committed data."""

    async def run_write(self, body: Body[T]) -> T:
        """``body`` in one write transaction, as ``write()``; for the paths that must be quick.

        On SQLite the whole body runs in the database's thread, one trip instead of one per
        statement (under load each trip waits its turn for the interpreter). So the body must
        await nothing but its own statements: no locks, no sleeps, no other I/O."""

    async def run_read(self, body: Body[T]) -> T:
        """``body``'s reads, as ``read()``; on SQLite in one trip, with the same rule."""

    async def close(self) -> None: ...


class Rollback(Exception):
    """Raised inside a write to undo it and hand ``result`` to the caller (e.g. a lost race)."""

    def __init__(self, result: object = None) -> None:
        super().__init__("rollback")
        self.result = result
