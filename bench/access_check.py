"""Bench: what the access check costs per request, with nothing configured and with big lists.

    python bench/access_check.py [--requests 200000 --entries 10000]

The check runs on sets in memory (the stored overrides are read at start and after each change),
so it should cost a few microseconds whatever the lists hold, and no database round trip.
Printed: nanoseconds per check for each case. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import time

from bot.access.policy import AccessLists, Asker, decide
from bot.ports import AccessRule, Account, Place


def per_check(lists: AccessLists, askers: list[Asker], rounds: int) -> float:
    start = time.perf_counter_ns()
    for index in range(rounds):
        decide(lists, askers[index % len(askers)])
    return (time.perf_counter_ns() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    n = args.entries
    askers = [
        Asker(
            Account("discord", str(i)),
            Place("discord", str(1000 + i % 50), str(5000 + i % 400), parent="9"),
            ("1", "2"),
        )
        for i in range(1000)
    ] + [
        Asker(Account("telegram", str(i)), Place("telegram", f"dm:{i}"), by_channel=False)
        for i in range(1000)
    ]
    big = AccessLists(
        allowed_users=frozenset(f"telegram:{i}" for i in range(n)),
        blocked_users=frozenset(f"discord:{i}" for i in range(n, 2 * n)),
        allowed_chats=frozenset(f"discord:{1000 + i}" for i in range(n)),
        blocked_chats=frozenset(f"telegram:-{i}" for i in range(n)),
        allowed_roles=frozenset(f"discord:{i}" for i in range(3, n)),
        admins=frozenset({"telegram:1"}),
    )
    rules = [AccessRule("user", f"telegram:{i}", "block") for i in range(0, n, 10)]
    start = time.perf_counter_ns()
    applied = big.with_rules(rules)
    rebuild_ms = (time.perf_counter_ns() - start) / 1e6
    print(f"nothing configured: {per_check(AccessLists(), askers, args.requests):8.0f} ns per check")
    print(f"{n} entries per list: {per_check(big, askers, args.requests):8.0f} ns per check")
    print(f"with {len(rules)} stored rules: {per_check(applied, askers, args.requests):8.0f} ns per check")
    print(f"applying {len(rules)} stored rules to the lists (after a change): {rebuild_ms:.1f} ms")


if __name__ == "__main__":
    main()
