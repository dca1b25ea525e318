"""Bench: what choosing an update's languages costs (two settings reads), and rendering a sentence.

    python bench/languages.py [--updates 5000 --members 1000]

Every update an adapter handles first asks ``Languages.voice`` (the member's own choice and the
community's default, read from SQLite here), then renders sentences with ``_()``. Printed:
microseconds per voice and per rendered sentence. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.i18n import _, using
from bot.i18n.choice import Languages
from bot.ports import Account, Place
from storage import open_store


async def run(updates: int, members: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = await open_store(f"sqlite:///{folder}/bench.sqlite3")
        try:
            languages = Languages(store)
            for i in range(0, members, 3):  # a third chose a language; every tenth group has one
                await languages.set_member(Account("telegram", str(i)), ("tr", "nb")[i % 2])
            for g in range(0, 100, 10):
                await languages.set_community(Place("telegram", str(-g)), "tr")
            start = time.perf_counter()
            for u in range(updates):
                await languages.voice(
                    Account("telegram", str(u % members)), Place("telegram", str(-(u % 100))), "nb-NO"
                )
            per_voice = (time.perf_counter() - start) / updates * 1e6
        finally:
            await store.close()
    rounds = 100_000
    with using("tr"):
        start = time.perf_counter()
        for _round in range(rounds):
            _("Balance: {amount}", amount="$1,00")
        per_sentence = (time.perf_counter() - start) / rounds * 1e6
    print(f"voice (2 SQLite settings reads): {per_voice:.1f} µs per update over {updates} updates")
    print(f"a Turkish sentence with a placeholder: {per_sentence:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.updates, args.members))


if __name__ == "__main__":
    main()
