"""Spending-limit benchmark: reserve + settle cycles from concurrent tasks, with and without the
bot-wide spending counters moved in the same transaction (the cost of SPENDING_LIMIT_*_USD).

    python bench/spending_limits.py [--cycles 2000] [--tasks 50] [--pg-url postgresql://...]

PostgreSQL runs when ``--pg-url`` or ``TEST_DATABASE_URL`` is given, in a throw-away schema.
Every reservation moves the same two counter rows, so on PostgreSQL they serialise the holds;
the figures show what that costs. Noisy on a shared machine: compare the two lines of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bot.ports import Account, Counter, Store
from storage import open_store

COUNTERS = (Counter("spending:day:bench", 10**15), Counter("spending:month:bench", 10**15))


async def cycles(store: Store, count: int, tasks: int, spending: tuple[Counter, ...]) -> float:
    """Reserve-then-settle ``count`` times from ``tasks`` concurrent members; return cycles per second."""
    members = [Account("bench", f"m{i}-{uuid.uuid4().hex[:6]}") for i in range(tasks)]
    for member in members:
        await store.open_account(member, starting_grant=10**12, reason="bench")

    async def member_loop(member: Account, share: int) -> None:
        for _ in range(share):
            rid = uuid.uuid4().hex
            await store.reserve(rid, member, 750, purpose="chat", reason="bench", spending=spending)
            await store.settle(rid, 100, reason="bench")

    started = time.perf_counter()
    await asyncio.gather(*(member_loop(m, count // tasks) for m in members))
    return (count // tasks * tasks) / (time.perf_counter() - started)


async def run(url: str, label: str, count: int, tasks: int) -> None:
    store = await open_store(url)
    try:
        without = await cycles(store, count, tasks, ())
        with_counters = await cycles(store, count, tasks, COUNTERS)
    finally:
        await store.close()
    print(f"{label:10} without counters: {without:8.0f} reserve+settle/s")
    print(
        f"{label:10} with counters:    {with_counters:8.0f} reserve+settle/s ({with_counters / without:.0%})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await run(f"sqlite:///{folder}/bench.sqlite3", "sqlite", args.cycles, args.tasks)
    if args.pg_url:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(args.pg_url)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in args.pg_url else "?"
            await run(f"{args.pg_url}{sep}search_path={schema}", "postgres", args.cycles, args.tasks)
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
