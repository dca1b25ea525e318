"""How fairly and how fast the image queue serves many people at once.

    python bench/image_queue.py [--users 50] [--requests 10] [--communities 5] [--limit 4] [--scale 0.01]

Every user of ``--communities`` communities asks for ``--requests`` images, one user after the
other (the worst order for a first-come-first-served queue), against the fake MiniToolAI
server in-process with ``--limit`` jobs at MiniToolAI at once. Each fake job stays pending for
1 to 4 polls. Timings (poll back-off 1 s -> 3 s) are multiplied by ``--scale`` so the run takes
seconds; figures are printed in scaled-back seconds ("s*") and are approximate (HTTP round
trips are not scaled). Printed: time to first image per user (p50/p95/max), queue wait per
request, throughput, the most jobs ever at MiniToolAI at once, and, from a simulation of the
same jobs, what a plain FIFO queue would have given for the time to first image.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import aiohttp

from bot.credits import CreditPolicy, CreditService
from bot.image_options import ImageOptions
from bot.image_queue import FairQueue
from bot.images import ImageConfig, ImageService, poll_delays
from bot.minitoolai import MiniToolAIClient, PriceTable
from bot.ports import Account, Place
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.image_surfaces import FakeImagePlatform
from tests.fakes.memory_store import MemoryStore
from tests.fakes.minitoolai import FakeMiniToolAI, ImageScript

SUBMIT = "/api/texttoimage/"
JOBS = "/api/texttoimage/jobs/"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def people(args: argparse.Namespace) -> list[tuple[Place, Account]]:
    return [
        (Place("telegram", f"-100{u % args.communities}"), Account("telegram", str(1000 + u)))
        for u in range(args.users)
    ]


async def run(args: argparse.Namespace, pending: list[int]) -> None:
    scale = args.scale
    config = ImageConfig(
        per_user_limit=args.requests,
        global_concurrency=args.limit,
        poll_initial=1.0 * scale,
        poll_max=3.0 * scale,
        progress_interval=3.0 * scale,
    )
    store = MemoryStore()
    credits = CreditService(store, PriceTable(), CreditPolicy(starting_grant=10**9))
    prefs = Preferences(store, ChatDefaults("gpt-4o-mini", "", None, "dreamshaper"), frozenset())
    platform = FakeImagePlatform(time.monotonic)
    async with FakeMiniToolAI() as fake, aiohttp.ClientSession() as session:
        fake.image_scripts.extend(ImageScript(pending_polls=n) for n in pending)
        client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)
        async with ImageService(store, client, credits, prefs, config) as service:
            submitted: dict[str, float] = {}
            owner: dict[str, Account] = {}
            first_asked: dict[Account, float] = {}
            start = time.monotonic()
            for place, user in people(args):
                for n in range(args.requests):
                    prompt = f"{user.holder} picture {n}"
                    first_asked.setdefault(user, time.monotonic())
                    job = await service.submit(
                        user, place, ImageOptions(prompt=prompt), platform.surface(place)
                    )
                    submitted[prompt] = time.monotonic()
                    owner[job.id] = user
            asked_for = time.monotonic() - start
            await service.wait_idle()
            elapsed = time.monotonic() - start

    first_image: dict[Account, float] = {}
    for call in platform.calls:
        if call.kind == "post" and call.ok:
            post = next(p for p in platform.posts if p.handle == call.handle)
            first_image.setdefault(owner[post.job_id], call.at)
    ttfi = [(first_image[u] - first_asked[u]) / scale for u in first_asked]
    starts = fake.requests_to(SUBMIT)
    waits = [(r.at - submitted[r.json["prompt"]]) / scale for r in starts]
    total = args.users * args.requests
    print(
        f"{args.users} users x {args.requests} requests in {args.communities} communities, limit {args.limit}"
    )
    print(f"  images posted          {len(platform.posts)} of {total}")
    print(
        f"  all requests made in   {asked_for / scale:7.1f} s*  (user after user; times below count from each user's first request)"
    )
    print(
        f"  time to first image    p50 {percentile(ttfi, 50):7.1f} s*  p95 {percentile(ttfi, 95):7.1f} s*  max {max(ttfi):7.1f} s*"
    )
    print(
        f"  queue wait per request p50 {percentile(waits, 50):7.1f} s*  p95 {percentile(waits, 95):7.1f} s*  max {max(waits):7.1f} s*"
    )
    print(f"  throughput             {total / (elapsed / scale):7.2f} images/s*  ({elapsed:.2f} s real)")
    print(f"  most jobs at MiniToolAI at once: {max_overlap(fake)}")
    edits = [c for c in platform.calls if c.kind == "edit"]
    print(f"  progress edits         {len(edits)} ({len(edits) / total:.1f} per request)")


def max_overlap(fake: FakeMiniToolAI) -> int:
    """Jobs between their submit and their last poll, at the busiest moment."""
    first: dict[str, float] = {}
    for n, request in enumerate(fake.requests_to(SUBMIT)):
        first[str(12345678 + n)] = request.at  # the fake numbers jobs in submit order
    last: dict[str, float] = {}
    for request in fake.requests_to(JOBS):
        last[str(request.json["jobid"])] = request.at
    events = sorted([(t, 1) for t in first.values()] + [(t, -1) for t in last.values()])
    busy = peak = 0
    for _, change in events:
        busy += change
        peak = max(peak, busy)
    return peak


def simulate(args: argparse.Namespace, pending: list[int], *, fair: bool) -> list[float]:
    """Time to first image per user if each job took exactly its poll back-off (no network)."""
    delays = list(itertools.islice(poll_delays(ImageConfig()), 10))
    durations = [sum(delays[: n + 1]) for n in pending]  # scripts are used in start order
    if fair:
        queue: FairQueue[tuple[Account, int]] = FairQueue()
        for place, user in people(args):
            for n in range(args.requests):
                queue.push(place, user, (user, n))
        order = [user for user, _ in queue.order()]  # nothing arrives later: order() is exact
    else:
        order = [user for _, user in people(args) for _ in range(args.requests)]
    free_at = [0.0] * args.limit  # when each slot is next free
    first: dict[Account, float] = {}
    for user, duration in zip(order, durations, strict=True):
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + duration)
        first.setdefault(user, start + duration)
    return list(first.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--communities", type=int, default=5)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(7)
    pending = [rng.randint(1, 4) for _ in range(args.users * args.requests)]
    asyncio.run(run(args, pending))
    for name, fair in (("fair (simulated)", True), ("FIFO (simulated)", False)):
        ttfi = simulate(args, pending, fair=fair)
        print(
            f"  {name:<22} time to first image p50 {percentile(ttfi, 50):7.1f} s  "
            f"p95 {percentile(ttfi, 95):7.1f} s  max {max(ttfi):7.1f} s"
        )


if __name__ == "__main__":
    main()
