"""Storage benchmark: fill a database with many turns, then time appends and ``load_context``.

    python bench/storage.py [--turns 1000000 --channels 10000] [--backend sqlite|postgres|both]
                            [--pg-url postgresql://...] [--appends 5000] [--samples 2000]

The fill uses each driver's bulk path (executemany / COPY); the figures that matter are then
measured through the public store API: ``append_turns`` one turn at a time (sequentially and
from 20 concurrent tasks) and ``load_context`` with an 8,000-token budget on random channels.
PostgreSQL runs when ``--pg-url`` or ``TEST_DATABASE_URL`` is given, in a throw-away schema.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bot.ports import ConversationKey, Store, Turn
from storage.common import parse_database_url
from storage.postgres import open_postgres
from storage.postgres.database import PgDatabase
from storage.sqlite import open_sqlite
from storage.sqlite.database import SqliteDatabase
from storage.store import SqlStore

BATCH = 50_000


def channel_key(index: int) -> ConversationKey:
    return ConversationKey("bench", f"guild{index // 100}", f"chan{index}")


def fake_turn_rows(turns: int, channels: int, seed: int) -> Iterator[tuple[int, str, str, int]]:
    """(channel index, role, text, tokens), round-robin over channels so ids interleave as in life."""
    rng = random.Random(seed)
    per_channel = max(1, turns // channels)
    words = [f"w{i} " for i in range(1000)]
    for position in range(per_channel):
        role = "user" if position % 2 == 0 else "assistant"
        for channel in range(channels):
            tokens = rng.randint(20, 300)
            start = rng.randrange(0, 500)
            yield channel, role, "".join(words[start : start + tokens // 2]), tokens


# ---------------------------------------------------------------- bulk fill per backend


async def fill_sqlite(store: SqlStore, turns: int, channels: int) -> None:
    db = store.database
    assert isinstance(db, SqliteDatabase)
    conn = db.writer
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    await conn.execute("BEGIN IMMEDIATE")
    await conn.executemany(
        "INSERT INTO conversations (id, platform, scope, channel, owner) VALUES (?, ?, ?, ?, '')",
        [(i + 1, *_key_parts(i)) for i in range(channels)],
    )
    batch: list[tuple[Any, ...]] = []
    for channel, role, text, tokens in fake_turn_rows(turns, channels, seed=1):
        batch.append((channel + 1, role, text, tokens, now))
        if len(batch) >= BATCH:
            await _sqlite_turns(conn, batch)
            batch = []
    await _sqlite_turns(conn, batch)
    await conn.commit()
    await conn.execute("ANALYZE")


def _key_parts(index: int) -> tuple[str, str, str]:
    key = channel_key(index)
    return key.platform, key.scope, key.channel


async def _sqlite_turns(conn: Any, batch: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "INSERT INTO turns (conversation_id, role, text, tokens, created_at) VALUES (?, ?, ?, ?, ?)", batch
    )


async def fill_postgres(store: SqlStore, turns: int, channels: int) -> None:
    db = store.database
    assert isinstance(db, PgDatabase)
    now = datetime.now(UTC)
    async with db.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "conversations",
            records=[(i + 1, *_key_parts(i), "") for i in range(channels)],
            columns=["id", "platform", "scope", "channel", "owner"],
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('conversations', 'id'), (SELECT max(id) FROM conversations))"
        )
        batch: list[tuple[Any, ...]] = []
        for channel, role, text, tokens in fake_turn_rows(turns, channels, seed=1):
            batch.append((channel + 1, role, text, tokens, now))
            if len(batch) >= BATCH:
                await _pg_turns(conn, batch)
                batch = []
        await _pg_turns(conn, batch)
        await conn.execute("ANALYZE")


async def _pg_turns(conn: Any, batch: list[tuple[Any, ...]]) -> None:
    if batch:
        await conn.copy_records_to_table(
            "turns", records=batch, columns=["conversation_id", "role", "text", "tokens", "created_at"]
        )


# ---------------------------------------------------------------- measurements


async def measure_appends(store: Store, channels: int, count: int, workers: int) -> float:
    rng = random.Random(2)
    keys = [channel_key(rng.randrange(channels)) for _ in range(count)]
    pending = iter(keys)

    async def worker() -> None:
        for key in pending:
            await store.append_turns(key, [Turn("user", "a new question for the benchmark", 8)])

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    return count / (time.perf_counter() - started)


async def measure_context(store: Store, channels: int, samples: int, budget: int) -> dict[str, float]:
    rng = random.Random(3)
    timings: list[float] = []
    returned: list[int] = []
    for _ in range(samples):
        key = channel_key(rng.randrange(channels))
        started = time.perf_counter()
        context = await store.load_context(key, budget)
        timings.append((time.perf_counter() - started) * 1000)
        returned.append(len(context))
    timings.sort()
    return {
        "p50_ms": statistics.median(timings),
        "p99_ms": timings[min(len(timings) - 1, int(len(timings) * 0.99))],
        "turns_returned": statistics.mean(returned),
    }


async def open_bench_store(url: str, args: argparse.Namespace) -> SqlStore:
    target = parse_database_url(url)
    if target.backend == "sqlite":
        return await open_sqlite(target.sqlite_path, separate_reader=not args.single_connection)
    return await open_postgres(target.url, target.where)


async def run_backend(name: str, url: str, args: argparse.Namespace) -> None:
    store = await open_bench_store(url, args)
    try:
        started = time.perf_counter()
        if name == "sqlite":
            await fill_sqlite(store, args.turns, args.channels)
        else:
            await fill_postgres(store, args.turns, args.channels)
        fill_s = time.perf_counter() - started
        print(
            f"[{name}] filled {args.turns:,} turns over {args.channels:,} channels in {fill_s:.1f}s (bulk path)"
        )
        sequential = await measure_appends(store, args.channels, args.appends, workers=1)
        concurrent = await measure_appends(store, args.channels, args.appends, workers=20)
        print(f"[{name}] append_turns: {sequential:,.0f}/s sequential, {concurrent:,.0f}/s from 20 tasks")
        figures = await measure_context(store, args.channels, args.samples, args.budget)
        print(
            f"[{name}] load_context({args.budget} tokens) over {args.samples:,} random channels: "
            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
            f"{figures['turns_returned']:.1f} turns returned on average"
        )
    finally:
        await store.close()


def remove_database_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def run_sqlite(args: argparse.Namespace) -> None:
    folder = Path(args.sqlite_dir or tempfile.mkdtemp(prefix="minitoolai-bench-"))
    path = folder / "bench.sqlite3"
    await asyncio.to_thread(remove_database_files, path)
    await run_backend("sqlite", f"sqlite:///{path.resolve()}", args)
    size = (await asyncio.to_thread(path.stat)).st_size / 1e6
    print(f"[sqlite] file {path} is {size:,.0f} MB")
    if not args.keep:
        await asyncio.to_thread(remove_database_files, path)


async def run_postgres(args: argparse.Namespace, base_url: str) -> None:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            url = f"{base_url}{'&' if '?' in base_url else '?'}search_path={schema}"
            await run_backend("postgres", url, args)
        finally:
            if not args.keep:
                await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            else:
                print(f"[postgres] kept schema {schema}")
    finally:
        await admin.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    parser.add_argument("--appends", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--budget", type=int, default=8_000)
    parser.add_argument("--sqlite-dir", default="", help="folder for the SQLite file (default: a temp dir)")
    parser.add_argument(
        "--single-connection", action="store_true", help="SQLite: read on the writer connection too"
    )
    parser.add_argument("--keep", action="store_true", help="keep the filled database afterwards")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    if args.backend in ("sqlite", "both"):
        await run_sqlite(args)
    if args.backend in ("postgres", "both"):
        if args.pg_url:
            await run_postgres(args, args.pg_url)
        else:
            print("[postgres] skipped: give --pg-url or set TEST_DATABASE_URL")


if __name__ == "__main__":
    asyncio.run(main())
