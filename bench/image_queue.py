"""Bench: the image queue under load, in real time, against the fake MiniToolAI server.

    python bench/image_queue.py [--jobs 500 --users 50 --communities 5 --min-time 2 --max-time 20]
                                [--global-limit 100] [--time-scale 1.0]
                                [--arrival user-by-user|together] [--store sqlite|memory] [--seed 7]

``--users`` people in ``--communities`` group chats ask for ``--jobs`` images between them
(``--jobs / --users`` each). By default they ask one person after the other, each sending all
of theirs at once (the worst order for a first-come-first-served queue); ``--arrival together``
has everyone ask at the same moment. Each job finishes at the fake a random ``--min-time`` to
``--max-time`` seconds after it was submitted upstream (``ImageScript.pending_for``, wall time).

The whole real path runs: ``ImageService`` with its real poll back-off (1 s growing by 1.5x to
3 s), ``MiniToolAIClient`` over aiohttp on 127.0.0.1, a real SQLite store (``--store memory``
for the in-memory fake), a ``CreditService`` with plenty of credit for everyone, and recording
image surfaces (``FakeImagePlatform``, no platform rate limits). The per-user limit is set to
each person's number of requests, so nobody is turned away.

``--time-scale S`` multiplies job times, poll intervals, the progress interval and the deadline
by S, so ``--global-limit 4`` (the bot's default) finishes in minutes; figures are then printed
scaled back ("s*") and are approximate, since HTTP, SQLite and the event loop are not scaled.
The headline run is ``--time-scale 1``: only then do "polls" and "completion to post" mean what
they say.

Printed, with the issue's targets beside them (no pass/fail):
  polls per job            polls the fake answered for the job; target <= job time / 2 s + 3
  completion to post       job ready at the fake -> its picture posted (``post_image``); split
                           into "noticed" (ready -> the poll that saw it) and "fetch + post"
                           (that poll -> posted); target: median < 2.5 s
  wait per user            each person's mean queue wait (their request -> the job submitted
                           upstream), over their jobs; target: worst user <= 1.5x the median user
  also: each person's time to their last picture, throughput, the most jobs at MiniToolAI at
  once, progress edits, event-loop lag, CPU and peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import aiohttp

import storage
from bot.credits import CreditPolicy, CreditService
from bot.images.options import ImageOptions
from bot.images.service import ImageConfig, ImageService
from bot.minitoolai import MiniToolAIClient, PriceTable
from bot.ports import Account, Place, Store
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.image_surfaces import FakeImagePlatform
from tests.fakes.memory_store import MemoryStore
from tests.fakes.minitoolai import FakeMiniToolAI, ImageJobRecord, ImageScript

JOBS = "/api/texttoimage/jobs/"


@dataclass(frozen=True, slots=True)
class Asked:
    """One request as the bench made it."""

    prompt: str
    user: Account
    at: float  # time.monotonic() just before ImageService.submit
    job_id: str


@dataclass(slots=True)
class Run:
    """Everything recorded in one run (times are time.monotonic)."""

    asked: list[Asked]
    jobs: list[ImageJobRecord]
    last_poll: dict[str, float]  # fake jobid -> its last poll
    posted: dict[str, float]  # service job id -> when its picture was posted
    edits: int
    loop_lags: list[float]
    wall: float
    cpu: float


# ------------------------------------------------------------------ the run


@asynccontextmanager
async def open_store(kind: str) -> AsyncIterator[Store]:
    if kind == "memory":
        yield MemoryStore()
        return
    with tempfile.TemporaryDirectory(prefix="bench-images-") as folder:
        store = await storage.open_store(f"sqlite:///{folder}/bench.db")
        try:
            yield store
        finally:
            await store.close()


def people(args: argparse.Namespace) -> list[tuple[Place, Account]]:
    return [
        (Place("telegram", f"-100{u % args.communities}"), Account("telegram", str(1000 + u)))
        for u in range(args.users)
    ]


def service_config(args: argparse.Namespace, per_user: int) -> ImageConfig:
    scale = args.time_scale
    defaults = ImageConfig()
    return ImageConfig(
        per_user_limit=per_user,
        global_concurrency=args.global_limit,
        deadline=defaults.deadline * scale,
        poll_initial=defaults.poll_initial * scale,
        poll_max=defaults.poll_max * scale,
        poll_factor=defaults.poll_factor,
        progress_interval=defaults.progress_interval * scale,
    )


async def watch_loop(lags: list[float], stop: asyncio.Event, every: float = 0.05) -> None:
    """How late the event loop wakes a sleeper: a busy loop delays every poll and post too."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(every)
        lags.append(time.monotonic() - before - every)


async def ask_all(
    args: argparse.Namespace, service: ImageService, platform: FakeImagePlatform, per_user: int
) -> list[Asked]:
    asked: list[Asked] = []

    async def one_person(place: Place, user: Account) -> None:
        surface = platform.surface(place)
        for n in range(per_user):
            prompt = f"{user.holder} picture {n}"
            at = time.monotonic()
            job = await service.submit(user, place, ImageOptions(prompt=prompt), surface)
            asked.append(Asked(prompt, user, at, job.id))

    if args.arrival == "together":
        async with asyncio.TaskGroup() as group:
            for place, user in people(args):
                group.create_task(one_person(place, user))
    else:
        for place, user in people(args):
            await one_person(place, user)
    return asked


async def run(args: argparse.Namespace) -> Run:
    per_user = args.jobs // args.users
    rng = random.Random(args.seed)
    durations = [rng.uniform(args.min_time, args.max_time) for _ in range(per_user * args.users)]
    async with (
        open_store(args.store) as store,
        FakeMiniToolAI() as fake,
        aiohttp.ClientSession() as session,  # as in bot/__main__.py: the default connector
    ):
        # Scripts are taken in the order jobs go upstream; the durations are random anyway.
        fake.image_scripts.extend(ImageScript(pending_for=d * args.time_scale) for d in durations)
        client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)
        credits = CreditService(store, PriceTable(), CreditPolicy(starting_grant=10**12))
        prefs = Preferences(store, ChatDefaults("gpt-4o-mini", "", None, "dreamshaper"), frozenset())
        platform = FakeImagePlatform(time.monotonic)
        lags: list[float] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_loop(lags, stop))
        wall0, cpu0 = time.monotonic(), time.process_time()
        async with ImageService(store, client, credits, prefs, service_config(args, per_user)) as service:
            service.register_platform("telegram", platform)
            asked = await ask_all(args, service, platform, per_user)
            await service.wait_idle()
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        stop.set()
        await watcher
    last_poll = {str(r.json["jobid"]): r.at for r in fake.requests_to(JOBS)}
    handles = {post.handle: post.job_id for post in platform.posts}
    posted = {handles[c.handle]: c.at for c in platform.calls if c.kind == "post" and c.ok}
    edits = sum(1 for c in platform.calls if c.kind == "edit" and c.ok)
    return Run(asked, fake.image_jobs(), last_poll, posted, edits, lags, wall, cpu)


# ------------------------------------------------------------------ figures


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    return (
        f"median {statistics.median(values):6.2f} {unit}  p95 {pct(values, 0.95):6.2f} {unit}"
        f"  max {max(values):6.2f} {unit}"
    )


def most_at_once(run: Run) -> int:
    """Jobs between their submission and their last poll, at the busiest moment."""
    events = [(job.submitted_at, 1) for job in run.jobs]
    events += [(at, -1) for at in run.last_poll.values()]
    busy = peak = 0
    for _, change in sorted(events):
        busy += change
        peak = max(peak, busy)
    return peak


def report(args: argparse.Namespace, run: Run) -> None:
    scale = args.time_scale
    unit = "s" if scale == 1 else "s*"
    by_prompt = {a.prompt: a for a in run.asked}
    job_time: list[float] = []
    polls: list[int] = []
    over = 0
    to_post: list[float] = []
    noticed: list[float] = []
    fetched: list[float] = []
    waits: dict[Account, list[float]] = defaultdict(list)
    last_picture: dict[Account, float] = {}
    first_asked: dict[Account, float] = {}
    for job in run.jobs:
        asked = by_prompt[job.prompt]
        duration = (job.ready_at - job.submitted_at) / scale
        job_time.append(duration)
        polls.append(job.polls)
        over += job.polls > duration / 2 + 3
        waits[asked.user].append((job.submitted_at - asked.at) / scale)
        first_asked[asked.user] = min(first_asked.get(asked.user, asked.at), asked.at)
        posted = run.posted.get(asked.job_id)
        if posted is None:
            continue
        to_post.append((posted - job.ready_at) / scale)
        noticed.append((run.last_poll[job.jobid] - job.ready_at) / scale)
        fetched.append((posted - run.last_poll[job.jobid]) / scale)
        last_picture[asked.user] = max(last_picture.get(asked.user, posted), posted)
    user_wait = sorted(statistics.mean(w) for w in waits.values())
    to_last = [(last_picture[u] - first_asked[u]) / scale for u in last_picture]
    median_user = statistics.median(user_wait)
    polls_per_s = [p / t for p, t in zip(polls, job_time, strict=True)]

    print(
        f"jobs                  {len(run.asked)} from {args.users} users in {args.communities} communities,"
        f" {args.min_time:g}-{args.max_time:g} {unit} each, arrival {args.arrival}"
    )
    print(
        f"service               global limit {args.global_limit}, per-user limit"
        f" {len(run.asked) // args.users}, time scale {scale:g}, store {args.store}"
    )
    print(f"posted                {len(run.posted)} of {len(run.asked)}")
    print(f"wall time             {run.wall:.1f} s real ({run.wall / scale:.1f} {unit})")
    print(f"throughput            {len(run.posted) / (run.wall / scale):.2f} images/{unit}")
    print(f"most at MiniToolAI    {most_at_once(run)} jobs at once")
    print(f"job time              {spread(job_time, unit)}")
    print(
        f"polls per job         median {statistics.median(polls):.0f}  mean {statistics.mean(polls):.2f}"
        f"  max {max(polls)}  ({statistics.mean(polls_per_s):.2f} per job-{unit})"
    )
    print(f"  over time/2 + 3     {over} of {len(polls)} jobs   (target 0)")
    print(f"completion to post    {spread(to_post, unit)}   (target median < 2.5 s)")
    print(f"  noticed             {spread(noticed, unit)}")
    print(f"  fetch + post        {spread(fetched, unit)}")
    print(
        f"wait per user (mean)  best {user_wait[0]:6.2f} {unit}  median {median_user:6.2f} {unit}"
        f"  worst {user_wait[-1]:6.2f} {unit}"
    )
    ratio = user_wait[-1] / median_user if median_user > 0 else float("inf")
    print(f"  worst / median      {ratio:.2f}   (target <= 1.5)")
    print(f"to last picture       {spread(to_last, unit)}   (per user, from their first request)")
    print(f"progress edits        {run.edits} ({run.edits / len(run.asked):.1f} per job)")
    print(f"event-loop lag        {spread(run.loop_lags)}")
    print(f"CPU                   {run.cpu:.1f} s ({run.cpu / run.wall:.0%} of the wall time)")
    print(f"peak RSS              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--communities", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=2.0, help="shortest job at the fake (s)")
    parser.add_argument("--max-time", type=float, default=20.0, help="longest job at the fake (s)")
    parser.add_argument("--global-limit", type=int, default=100, help="jobs at MiniToolAI at once")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every duration")
    parser.add_argument("--arrival", choices=["user-by-user", "together"], default="user-by-user")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.users < 1 or args.jobs < args.users or args.time_scale <= 0:
        parser.error("need at least one job per user and a positive time scale")
    report(args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
