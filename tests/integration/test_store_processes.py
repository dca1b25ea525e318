"""Credits stay exact when separate OS processes share one PostgreSQL database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bot.ports import Account, Store

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

ALICE = Account("telegram", "alice")
REPO = Path(__file__).resolve().parents[2]

# Each child opens the store itself, waits until both children are ready (a line on stdin),
# fires 50 concurrent reservations and prints how many succeeded.
CHILD = """
import asyncio, sys
from bot.ports import Account
from storage import open_store

async def main(url, name):
    store = await open_store(url)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        results = await asyncio.gather(*(
            store.reserve(f"{name}-{i}", Account("telegram", "alice"), 10, purpose="chat", reason="ask")
            for i in range(50)
        ))
        print(sum(results), flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def start_child(database_url: str, name: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        database_url,
        name,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_two_processes_reserve_exactly_what_the_balance_covers(database_url: str, store: Store) -> None:
    """Two processes with 50 concurrent reservations each, balance for 7: exactly 7 succeed."""
    await store.open_account(ALICE, starting_grant=70, reason="welcome")
    children = [await start_child(database_url, name) for name in ("a", "b")]
    for child in children:
        assert child.stdout is not None
        assert (await child.stdout.readline()).strip() == b"ready"

    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outputs = [await child.communicate() for child in children]

    assert [child.returncode for child in children] == [0, 0]
    assert sum(int(out.strip()) for out, _ in outputs) == 7
    assert await store.balance(ALICE) == 0
    entries = await store.entries(ALICE, limit=1000)
    assert sum(e.amount for e in entries) == 0
    assert len(await store.open_reservations()) == 7


# Each child reserves for 50 different members, all under one bot-wide daily spending limit.
LIMITED_CHILD = """
import asyncio, sys
from bot.errors import SpendingLimitReached
from bot.ports import Account, Counter
from storage import open_store

DAY = Counter("spending:day:2026-12-02", 70)

async def main(url, name):
    store = await open_store(url)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def one(i):
            try:
                return await store.reserve(
                    f"{name}-{i}", Account("telegram", f"m{i}"), 10, purpose="chat", reason="ask", spending=(DAY,)
                )
            except SpendingLimitReached:
                return False

        print(sum(await asyncio.gather(*(one(i) for i in range(50)))), flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_never_pass_the_spending_limit_together(database_url: str, store: Store) -> None:
    """Two processes, 50 concurrent reservations each for different members, a limit for 7: 7 succeed."""
    for i in range(50):
        await store.open_account(Account("telegram", f"m{i}"), starting_grant=100, reason="welcome")
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LIMITED_CHILD,
            database_url,
            name,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for child in children:
        assert child.stdout is not None
        assert (await child.stdout.readline()).strip() == b"ready"

    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outputs = [await child.communicate() for child in children]

    assert [child.returncode for child in children] == [0, 0]
    assert sum(int(out.strip()) for out, _ in outputs) == 7
    assert await store.counter("spending:day:2026-12-02") == 70
    assert len(await store.open_reservations()) == 7
