"""SQLite through aiosqlite: one writer connection, one reader connection, explicit transactions.

Every write takes an ``asyncio.Lock`` and runs in ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the
writer connection, rolled back on any exception, so half a turn or half a charge is never
stored. Each statement is a trip to aiosqlite's thread, so the ``BEGIN IMMEDIATE`` rides with
the transaction's first statement when that statement writes (the sqlite3 module's implicit
transactions, ``isolation_level="IMMEDIATE"``); a transaction that reads first begins explicitly
so that what it reads cannot change before it writes. WAL lets the reader connection see the last commit while a write is in progress
(with ``:memory:`` there is only one connection, so reads take the write lock too).
aiosqlite runs each connection in its own thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.errors import StorageError
from storage.common import Row, sqlite_time
from storage.database import Body, T

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
CACHE_KIB = 64 * 1024


def _arg(value: object) -> object:
    # Timestamps are stored as sortable UTC text.
    return sqlite_time(value) if isinstance(value, datetime) else value


def _args(values: Sequence[object]) -> tuple[object, ...]:
    return tuple(_arg(v) for v in values)


_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _Rows(abc.ABC):
    """``fetchrow`` and ``fetchval``, from a transaction's ``fetch``."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """Every row of one statement."""

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: object) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None


class SqliteTx(_Rows):
    """Statements on one aiosqlite connection (inside a transaction when writing)."""

    def __init__(self, conn: aiosqlite.Connection, *, begin: bool = False) -> None:
        self._conn = conn
        self._begin = begin  # a write transaction that has not begun yet

    async def _ready(self, sql: str) -> None:
        if not self._begin:
            return
        self._begin = False
        if not sql.lstrip()[:7].upper().startswith(_DML):
            # Reading first: begin now, or another process could change what we read.
            await self._conn.execute("BEGIN IMMEDIATE")
        # Otherwise sqlite3 issues BEGIN IMMEDIATE itself, in the same trip as the statement.

    # One thread hop per statement: execute_fetchall rather than a cursor's execute/fetch/close.
    async def fetch(self, sql: str, *args: object) -> list[Row]:
        await self._ready(sql)
        return list(await self._conn.execute_fetchall(sql, _args(args)))

    async def execute(self, sql: str, *args: object) -> int:
        await self._ready(sql)
        cursor = await self._conn.execute(sql, _args(args))
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._ready(sql)
        await self._conn.executemany(sql, [_args(row) for row in rows])


class DirectTx(_Rows):
    """Statements on the sqlite3 connection itself, inside aiosqlite's thread (``run_write``).

    Its methods are coroutines only to share the :class:`~storage.database.Tx` protocol: they
    never suspend, so a body awaiting nothing else completes in one step (:func:`_drive`).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(self._conn.execute(sql, _args(args)).fetchall())

    async def execute(self, sql: str, *args: object) -> int:
        return self._conn.execute(sql, _args(args)).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._conn.executemany(sql, [_args(row) for row in rows])


def _drive(body: Body[T], tx: DirectTx) -> T:
    """Run ``body(tx)`` to its end right here; it must never wait (see ``Database.run_write``)."""
    steps = body(tx).__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise RuntimeError("A run_write/run_read body awaited something other than its own statements.")


async def _in_thread(conn: aiosqlite.Connection, work: Callable[..., T], *args: object) -> T:
    """``work(sqlite3 connection, *args)`` in the connection's own thread, in turn with its statements.

    aiosqlite's ``_execute`` is how its public methods do this; it has no public name for it.
    """
    result: T = await conn._execute(work, conn._conn, *args)  # type: ignore[no-untyped-call]
    return result


def _read(conn: sqlite3.Connection, body: Body[T]) -> T:
    return _drive(body, DirectTx(conn))


def _transaction(conn: sqlite3.Connection, body: Body[T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = _drive(body, DirectTx(conn))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


class SqliteDatabase:
    """The :class:`storage.database.Database` for SQLite."""

    lock_clause = ""

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection | None) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqliteTx]:
        async with self._write_lock:
            try:
                yield SqliteTx(self._writer, begin=True)
                await self._writer.commit()
            except sqlite3.Error as exc:
                await self._rollback()
                raise StorageError(f"Could not write to the SQLite database {self.path}: {exc}.") from exc
            except BaseException:
                await self._rollback()
                raise

    async def run_write(self, body: Body[T]) -> T:
        async with self._write_lock:
            try:
                return await _in_thread(self._writer, _transaction, body)
            except sqlite3.Error as exc:
                raise StorageError(f"Could not write to the SQLite database {self.path}: {exc}.") from exc

    async def run_read(self, body: Body[T]) -> T:
        if self._reader is None:  # ``:memory:``: one connection, taken in turn with the writes
            async with self._write_lock, self._translated_read_errors():
                return await _in_thread(self._writer, _read, body)
        async with self._translated_read_errors():
            return await _in_thread(self._reader, _read, body)

    async def _rollback(self) -> None:
        # Whatever failed (a statement, the commit, a cancellation), the next BEGIN must find
        # no transaction open; rolling back when none is open is a no-op.
        try:
            await self._writer.rollback()
        except sqlite3.Error:
            logger.exception("rollback failed on SQLite database %s", self.path)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteTx]:
        if self._reader is not None:
            # The reader sees the last commit (WAL); aiosqlite queues its statements itself.
            async with self._translated_read_errors():
                yield SqliteTx(self._reader)
            return
        # One connection (``:memory:``): a read must not see a write transaction half done.
        async with self._write_lock, self._translated_read_errors():
            yield SqliteTx(self._writer)

    @asynccontextmanager
    async def _translated_read_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"Could not read the SQLite database {self.path}: {exc}.") from exc

    @property
    def writer(self) -> aiosqlite.Connection:
        """The writer connection, for maintenance (backups, bulk loading in benchmarks)."""
        return self._writer

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        await self._writer.close()


# ---------------------------------------------------------------- opening


async def connect(
    path: str,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    reader: bool = False,
    isolation_level: str | None = None,
) -> aiosqlite.Connection:
    """Open one configured connection; a corrupt, locked or unreachable file is a StorageError.

    ``isolation_level="IMMEDIATE"`` (the store's writer) lets sqlite3 begin a transaction
    implicitly before a writing statement; None (the default) is plain autocommit.
    """
    if path != ":memory:":
        await _make_folder(path)
    try:
        conn = await aiosqlite.connect(path, isolation_level=isolation_level)
    except sqlite3.Error as exc:
        raise StorageError(f"Could not open the SQLite database {path}: {exc}; check the path.") from exc
    try:
        await _configure(conn, path, busy_timeout_ms, reader=reader)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _make_folder(path: str) -> None:
    folder = Path(path).parent
    try:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Could not create the folder {folder} for the SQLite database: {exc.strerror or exc}."
        ) from exc


async def _configure(conn: aiosqlite.Connection, path: str, busy_timeout_ms: int, *, reader: bool) -> None:
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await conn.execute("PRAGMA foreign_keys = ON")
        # Recent turns of one channel sit on pages all over the file: keep more of them cached
        # (up to 64 MiB per connection, allocated only as the database grows; measured in
        # bench/storage.py: appends over a 1M-turn file went from ~1,500/s at 16 MiB to ~2,000/s).
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if reader:
            await conn.execute("PRAGMA query_only = ON")
        else:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
        # Touch the schema so a damaged file fails here, at open, rather than mid-conversation.
        await conn.execute_fetchall("SELECT count(*) FROM sqlite_master")
    except sqlite3.Error as exc:
        raise StorageError(describe_open_problem(path, exc)) from exc


def describe_open_problem(path: str, exc: sqlite3.Error) -> str:
    """One sentence saying why a SQLite file could not be opened or migrated, and what to do."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return (
            f"The SQLite file {path} is not a usable database ({text}); "
            "restore it from a backup or point DATABASE_URL at another file."
        )
    if "locked" in text or "busy" in text:
        return f"The SQLite database {path} is locked by another process; stop it or wait and retry."
    if "readonly" in text or "unable to open" in text:
        return f"The SQLite database {path} cannot be written ({text}); check the path and its permissions."
    return f"Could not open the SQLite database {path}: {text}."


async def stamp_owner(conn: aiosqlite.Connection, process_id: str) -> None:
    """Make ``conn`` stamp the reservations and image jobs it inserts with ``process_id``.

    Temporary triggers: they belong to this connection only and vanish with it, so another
    connection (the CLI, a backup) writes no owner, and the schema holds no process's name.
    """
    if not process_id.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"A process id must be letters, digits, '-' or '_', not {process_id!r}.")
    for table, key in (("reservations", "id"), ("image_jobs", "id")):
        await conn.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS stamp_{table}_owner AFTER INSERT ON {table}"
            f" FOR EACH ROW WHEN NEW.owner IS NULL"
            f" BEGIN UPDATE {table} SET owner = '{process_id}' WHERE {key} = NEW.{key}; END"
        )
    await conn.commit()
