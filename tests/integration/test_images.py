"""The image service end to end against the fake MiniToolAI server, through the real client.

Time is a ``SteppingTime``: back-off, deadlines and pacing pass instantly and exactly.
Tests wait on the fake platform's condition or ``ImageService.wait_idle``, never on sleeps.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.access.policy import AccessLists
from bot.access.service import AccessService
from bot.credits import CreditPolicy, CreditService
from bot.errors import InsufficientCredits, NotAllowed, QueueFull, ValidationError
from bot.images.options import ImageOptions
from bot.images.service import ImageConfig, ImageService
from bot.minitoolai import MiniToolAIClient, PriceTable
from bot.ports import Account, Actor, ImageJob, Place, Store
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.image_surfaces import FakeImagePlatform
from tests.fakes.memory_store import MemoryStore
from tests.fakes.minitoolai import FakeMiniToolAI, ImageScript
from tests.fakes.stepping_time import SteppingTime

SUBMIT = "/api/texttoimage/"
JOBS = "/api/texttoimage/jobs/"
PRICE = 1_500
GRANT = 100_000
ALICE = Account("telegram", "1001")
BOB = Account("telegram", "1002")
CAROL = Account("telegram", "1003")
GROUP = Place("telegram", "-100200300")
OTHER_GROUP = Place("telegram", "-100999")
FAST = ImageConfig(progress_interval=1.0, progress_burst=2)


@dataclasses.dataclass
class Rig:
    fake: FakeMiniToolAI
    store: Store
    client: MiniToolAIClient
    credits: CreditService
    prefs: Preferences
    time: SteppingTime
    platform: FakeImagePlatform

    def service(self, config: ImageConfig = FAST, access: AccessService | None = None) -> ImageService:
        service = ImageService(
            self.store,
            self.client,
            self.credits,
            self.prefs,
            config,
            clock=self.time.clock,
            sleep=self.time.sleep,
            access=access,
        )
        service.register_platform("telegram", self.platform)
        return service

    def rebuild(self, store: Store) -> None:
        """The same outside world over a new store object (a restarted bot)."""
        self.store = store
        self.credits = make_credits(store)
        self.prefs = make_prefs(store)

    async def balance(self, user: Account) -> int | None:
        return await self.store.balance(user)


def make_credits(store: Store, grant: int = GRANT) -> CreditService:
    return CreditService(store, PriceTable(), CreditPolicy(starting_grant=grant))


def make_prefs(store: Store) -> Preferences:
    defaults = ChatDefaults(
        model="gpt-4o-mini", system_prompt="", temperature=None, image_model="dreamshaper"
    )
    return Preferences(store, defaults, frozenset())


@pytest.fixture
async def fake() -> AsyncIterator[FakeMiniToolAI]:
    async with FakeMiniToolAI(huge_bytes=4 * 1024 * 1024) as server:
        yield server


@pytest.fixture
async def rig(fake: FakeMiniToolAI) -> AsyncIterator[Rig]:
    store = MemoryStore()
    time = SteppingTime()
    async with aiohttp.ClientSession() as session:
        client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)
        yield Rig(
            fake,
            store,
            client,
            make_credits(store),
            make_prefs(store),
            time,
            FakeImagePlatform(time.monotonic),
        )


def fox(**changes: object) -> ImageOptions:
    return dataclasses.replace(ImageOptions(prompt="a red fox in the snow"), **changes)  # type: ignore[arg-type]


async def stored(rig: Rig, job: ImageJob) -> ImageJob:
    found = await rig.store.get_job(job.id)
    assert found is not None
    return found


# ---------------------------------------------------------------- the happy path


async def test_pictures_switched_off_here_are_refused_before_anything_is_stored(rig: Rig) -> None:
    """/disable images holds whichever adapter asks: no job, no hold, nothing upstream."""
    access = AccessService(rig.store, AccessLists())
    await access.switch(Actor(ALICE, is_platform_admin=True), GROUP, "images", on=False)
    service = rig.service(access=access)

    with pytest.raises(NotAllowed):
        await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))

    assert [] == await rig.store.unfinished_jobs()
    assert [] == rig.fake.requests_to(SUBMIT)
    assert await rig.balance(ALICE) is None


async def test_image_is_posted_after_pending_polls_and_charged_once(rig: Rig) -> None:
    """A job pending for three polls is posted once with its caption, charged once, progress removed."""
    rig.fake.image_scripts.append(ImageScript(pending_polls=3))
    async with rig.service() as service:
        job = await service.submit(ALICE, GROUP, fox(steps=6), rig.platform.surface(GROUP))
        await service.wait_idle()

    [post] = rig.platform.posts
    assert job.id == post.job_id
    assert "image/png" == post.mime
    assert "a red fox in the snow\ndreamshaper · 1024×1024 · 6 steps · $0.0015" == post.caption
    assert 4 == len(rig.fake.requests_to(JOBS))
    assert GRANT - PRICE == await rig.balance(ALICE)
    done = await stored(rig, job)
    assert ("done", post.handle) == (done.state, done.result_message)
    assert done.jobid is not None and done.signature is not None
    assert job.progress_message in rig.platform.deleted
    assert [] == await rig.store.open_reservations()


async def test_progress_goes_from_starting_to_generating_with_seconds(rig: Rig) -> None:
    """The requester sees "Starting…" at once, then "Generating… N s" with N growing."""
    rig.fake.image_scripts.append(ImageScript(pending_polls=6))
    async with rig.service() as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    assert job.progress_message is not None
    texts = rig.platform.texts_of(job.progress_message)
    assert "Starting…" == texts[0]
    seconds = [int(t.split()[1]) for t in texts if t.startswith("Generating… ")]
    assert len(seconds) >= 2
    assert seconds == sorted(seconds) and seconds[-1] > seconds[0]


async def test_polling_backs_off_from_one_to_three_seconds(rig: Rig) -> None:
    """Poll waits grow 1 s, 1.5 s, 2.25 s, then stay at 3 s."""
    rig.fake.image_scripts.append(ImageScript(pending_polls=5))
    config = dataclasses.replace(FAST, progress_interval=0.0)  # no pacing sleeps among the poll sleeps
    async with rig.service(config) as service:
        await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    assert [1.0, 1.5, 2.25, 3.0, 3.0, 3.0] == [s for s in rig.time.sleeps if s > 0]


# ---------------------------------------------------------------- failures


async def test_failed_job_says_so_and_releases_the_hold(rig: Rig) -> None:
    """A job MiniToolAI reports as failed ends "failed", with a clear sentence and no charge."""
    rig.fake.image_scripts.append(ImageScript(pending_polls=1, outcome="failed"))
    async with rig.service() as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    assert [] == rig.platform.posts
    assert job.progress_message is not None
    final = rig.platform.messages[job.progress_message]
    assert final.startswith("The image could not be generated: MiniToolAI reported")
    assert final.endswith("You were not charged.")
    assert "failed" == (await stored(rig, job)).state
    assert GRANT == await rig.balance(ALICE)
    assert [] == await rig.store.open_reservations()


async def test_job_that_never_finishes_expires_at_the_deadline(rig: Rig) -> None:
    """A job still pending at the deadline ends "expired", polled until then, not charged."""
    rig.fake.image_scripts.append(ImageScript(outcome="never"))
    config = dataclasses.replace(FAST, deadline=20.0)
    async with rig.service(config) as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    expired = await stored(rig, job)
    assert "expired" == expired.state
    assert expired.deadline_at is not None and rig.time.now >= expired.deadline_at
    assert len(rig.fake.requests_to(JOBS)) >= 7  # 1 + 1.5 + 2.25 + 3 + 3 + 3 + 3 + ... ≥ 20 s
    assert job.progress_message is not None
    assert "not ready after 20 seconds" in rig.platform.messages[job.progress_message]
    assert GRANT == await rig.balance(ALICE)


@pytest.mark.parametrize("image", ["not_image", "huge"])
async def test_finished_file_that_is_not_a_usable_image_is_not_posted(rig: Rig, image: str) -> None:
    """An image_url serving a non-image or an oversized file fails the job uncharged."""
    rig.fake.image_scripts.append(ImageScript(image=image))  # type: ignore[arg-type]
    config = dataclasses.replace(FAST, max_download_bytes=256 * 1024)
    async with rig.service(config) as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    assert [] == rig.platform.posts
    assert "failed" == (await stored(rig, job)).state
    assert job.progress_message is not None
    assert "not a usable image" in rig.platform.messages[job.progress_message]
    assert GRANT == await rig.balance(ALICE)
    assert rig.fake.huge_bytes_sent < rig.fake.huge_bytes  # a huge download is cut off early


async def test_submit_refused_upstream_fails_without_charge(rig: Rig) -> None:
    """When MiniToolAI answers the submit with status error, the job fails and nothing is charged."""
    rig.fake.image_scripts.append(ImageScript(submit_status="error"))
    async with rig.service() as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    assert ("failed", None) == ((await stored(rig, job)).state, (await stored(rig, job)).jobid)
    assert 1 == len(rig.fake.requests_to(SUBMIT))
    assert [] == rig.fake.requests_to(JOBS)
    assert GRANT == await rig.balance(ALICE)


# ---------------------------------------------------------------- before anything is charged


async def test_invalid_options_are_refused_before_anything_is_stored_or_charged(rig: Rig) -> None:
    """Out-of-range steps raise ValidationError: no job, no hold, no request upstream."""
    async with rig.service() as service:
        with pytest.raises(ValidationError, match="Steps must be a whole number from 1 to 8"):
            await service.submit(ALICE, GROUP, fox(steps=99), rig.platform.surface(GROUP))

    assert [] == rig.fake.requests
    assert [] == await rig.store.unfinished_jobs()
    assert [] == await rig.store.open_reservations()
    assert await rig.balance(ALICE) in (None, GRANT)
    assert [] == rig.platform.calls


async def test_model_the_community_restricts_is_refused_with_the_allowed_ones(rig: Rig) -> None:
    """A member asking for a model outside the community's list gets NotAllowed naming the allowed ones."""
    admin = Actor(CAROL, is_platform_admin=True)
    await rig.prefs.set_image_models(admin, GROUP, allowed=("juggernaut", "realvision"))
    async with rig.service() as service:
        with pytest.raises(NotAllowed, match="Choose one of: juggernaut, realvision"):
            await service.submit(ALICE, GROUP, fox(model="dreamshaper"), rig.platform.surface(GROUP))

    assert [] == rig.fake.requests
    assert [] == await rig.store.open_reservations()


async def test_community_default_model_is_used_when_none_is_given(rig: Rig) -> None:
    """Without --model the community's default image model goes upstream."""
    admin = Actor(CAROL, is_platform_admin=True)
    await rig.prefs.set_image_models(admin, GROUP, default="juggernaut")
    async with rig.service() as service:
        await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    [request] = rig.fake.requests_to(SUBMIT)
    assert "juggernaut" == request.json["model"]


async def test_insufficient_credits_cancels_the_job_and_sends_nothing(rig: Rig) -> None:
    """A person without credits gets InsufficientCredits; the stored job is cancelled, nothing goes upstream."""
    rig.rebuild(rig.store)
    rig.credits = make_credits(rig.store, grant=0)
    async with rig.service() as service:
        with pytest.raises(InsufficientCredits):
            await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))

    assert [] == rig.fake.requests
    assert [] == await rig.store.unfinished_jobs()
    assert [] == rig.platform.calls


async def test_per_user_limit_refuses_the_request_over_it(rig: Rig) -> None:
    """With a limit of one, a second request while the first is in flight gets QueueFull."""
    rig.fake.image_scripts.append(ImageScript(outcome="never"))
    config = dataclasses.replace(FAST, per_user_limit=1, deadline=10_000.0)
    async with rig.service(config) as service:
        await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        with pytest.raises(QueueFull, match="You already have 1 image request waiting"):
            await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.submit(BOB, GROUP, fox(), rig.platform.surface(GROUP))  # others are not affected

    assert 2 == len(await rig.store.unfinished_jobs())
    assert GRANT - PRICE == await rig.balance(ALICE)


async def test_per_user_limit_holds_across_processes_with_redis(rig: Rig) -> None:
    """Two processes (two services) sharing Redis slots: the limit of one counts both; the slot
    frees when the job ends, whichever process ran it."""
    from storage.redis import open_limits

    prefix = f"test:{uuid.uuid4().hex}:"
    shared = [await open_limits("redis://127.0.0.1:6379/3", prefix) for _ in range(2)]
    rig.fake.image_scripts.extend([ImageScript(pending_polls=1), ImageScript()])
    config = dataclasses.replace(FAST, per_user_limit=1)
    try:
        first, second = (
            ImageService(
                rig.store,
                rig.client,
                rig.credits,
                rig.prefs,
                config,
                clock=rig.time.clock,
                sleep=rig.time.sleep,
                shared_slots=slots,
            )
            for slots in shared
        )
        for service in (first, second):
            service.register_platform("telegram", rig.platform)
        async with first, second:
            await first.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
            with pytest.raises(QueueFull, match="You already have 1 image request waiting"):
                await second.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
            await second.submit(BOB, GROUP, fox(), rig.platform.surface(GROUP))  # others are not affected
            await first.wait_idle()
            await second.wait_idle()
            await second.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))  # the slot is free again
    finally:
        keys = [key async for key in shared[0]._client.scan_iter(f"{prefix}*")]
        if keys:
            await shared[0]._client.delete(*keys)
        for each in shared:
            await each.close()


# ---------------------------------------------------------------- the queue


async def test_one_members_ten_requests_do_not_starve_another(rig: Rig) -> None:
    """Alice queues ten, then Bob one: with one slot, Bob's request is among the first two to start."""
    config = dataclasses.replace(FAST, global_concurrency=1, per_user_limit=10)
    rig.fake.image_scripts.append(ImageScript(pending_polls=20))  # Alice's first runs while the rest arrive
    async with rig.service(config) as service:
        for n in range(10):
            await service.submit(ALICE, GROUP, ImageOptions(prompt=f"alice {n}"), rig.platform.surface(GROUP))
        await service.submit(BOB, GROUP, ImageOptions(prompt="bob 0"), rig.platform.surface(GROUP))
        await service.wait_idle()

    started = [r.json["prompt"] for r in rig.fake.requests_to(SUBMIT)]
    assert 11 == len(started)
    assert "bob 0" in started[:2]
    assert [f"alice {n}" for n in range(10)] == [p for p in started if p.startswith("alice")]
    assert 11 == len(rig.platform.posts)


async def test_communities_take_turns_too(rig: Rig) -> None:
    """Two communities with three requests each alternate when one slot is free."""
    config = dataclasses.replace(FAST, global_concurrency=1, per_user_limit=3)
    rig.fake.image_scripts.append(ImageScript(pending_polls=20))  # runs while the others arrive
    async with rig.service(config) as service:
        for place, user in ((GROUP, ALICE), (OTHER_GROUP, BOB)):
            for n in range(3):
                await service.submit(
                    user, place, ImageOptions(prompt=f"{user.holder} {n}"), rig.platform.surface(place)
                )
        await service.wait_idle()

    started = [r.json["prompt"].split()[0] for r in rig.fake.requests_to(SUBMIT)]
    assert ["1001", "1002", "1001", "1002", "1001", "1002"] == started


async def test_queue_positions_are_shown_and_edits_stay_paced(rig: Rig) -> None:
    """With one slot, the third request shows "Queued, 2nd in line"; edits in a place respect the bucket."""
    config = dataclasses.replace(FAST, global_concurrency=1)
    async with rig.service(config) as service:
        jobs = [
            await service.submit(user, GROUP, fox(), rig.platform.surface(GROUP))
            for user in (ALICE, BOB, CAROL)
        ]
        await service.wait_idle()

    third = jobs[2].progress_message
    assert third is not None
    texts = rig.platform.texts_of(third)
    assert "Queued, 2nd in line." == texts[0]
    assert "Queued, next in line." in texts
    # Token bucket: burst 2, then one per second, over every edit attempt in the place (new
    # progress messages answer the command at once; they only use up tokens).
    times = [c.at for c in rig.platform.calls if c.place == GROUP and c.kind == "edit"]
    assert len(times) >= 4
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert j - i + 1 <= 2 + (times[j] - times[i]) / 1.0 + 1e-6


async def test_rate_limited_progress_edit_is_waited_out(rig: Rig) -> None:
    """A progress edit refused with retry_after is retried no sooner than that, and the job still ends."""
    rig.fake.image_scripts.append(ImageScript(pending_polls=4, outcome="failed"))
    rig.platform.rate_limit_next_edits = [5.0]
    async with rig.service() as service:
        job = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()

    edits = [c for c in rig.platform.calls if c.kind == "edit"]
    refused = next(c for c in edits if not c.ok)
    after = [c for c in edits if c.at > refused.at]
    assert after and after[0].at >= refused.at + 5.0
    assert job.progress_message is not None
    assert rig.platform.messages[job.progress_message].startswith("The image could not be generated")


# ---------------------------------------------------------------- buttons


async def test_delete_is_refused_to_others_and_allowed_to_requester_and_admin(rig: Rig) -> None:
    """Bob may not delete Alice's image; Alice may delete hers; an admin may delete anyone's."""
    async with rig.service() as service:
        first = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        second = await service.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
        await service.wait_idle()
        with pytest.raises(NotAllowed):
            await service.delete(first.id, BOB)
        assert [] == [p for p in rig.platform.posts if p.handle in rig.platform.deleted]

        await service.delete(first.id, ALICE)
        await service.delete(second.id, BOB, is_admin=True)
        with pytest.raises(ValidationError, match="already gone"):
            await service.delete(first.id, ALICE)

    assert sorted(p.handle for p in rig.platform.posts) == sorted(
        h for h in rig.platform.deleted if any(p.handle == h for p in rig.platform.posts)
    )
    assert (await stored(rig, first)).result_message is None


async def test_regenerate_makes_a_new_job_with_the_same_options(rig: Rig) -> None:
    """Regenerate queues a new job with identical parameters, charged to whoever pressed it."""
    async with rig.service() as service:
        job = await service.submit(
            ALICE, GROUP, fox(steps=7, width=1152, height=896), rig.platform.surface(GROUP)
        )
        await service.wait_idle()
        again = await service.regenerate(job.id, BOB, rig.platform.surface(GROUP))
        await service.wait_idle()

    assert job.id != again.id
    assert dict(job.params) == dict(again.params)
    assert 2 == len(rig.platform.posts)
    assert rig.platform.posts[0].caption == rig.platform.posts[1].caption
    assert (GRANT - PRICE, GRANT - PRICE) == (await rig.balance(ALICE), await rig.balance(BOB))


# ---------------------------------------------------------------- restarts


async def test_restart_mid_job_posts_once_and_charges_once(rig: Rig, tmp_path: Path) -> None:
    """A new service over the same SQLite file polls the submitted job (no re-submit), runs the
    queued one, posts each result exactly once and charges each exactly once."""
    from storage import open_store

    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    rig.rebuild(await open_store(url))
    rig.fake.image_scripts.extend([ImageScript(pending_polls=3), ImageScript(pending_polls=1)])
    config = dataclasses.replace(FAST, global_concurrency=1)
    # The first service "crashes" at its first sleep after the first poll of the first job.
    rig.time.stall_when = lambda: len(rig.fake.requests_to(JOBS)) >= 1
    first = rig.service(config)
    running = await first.submit(ALICE, GROUP, fox(), rig.platform.surface(GROUP))
    waiting = await first.submit(BOB, GROUP, fox(prompt="a blue owl"), rig.platform.surface(GROUP))
    await rig.time.stalled.wait()
    await first.close()
    await rig.store.close()
    assert ("submitted", "queued") == (
        (await _job_in(url, running)).state,
        (await _job_in(url, waiting)).state,
    )

    rig.rebuild(await open_store(url))
    rig.time.stall_when = None
    try:
        second = rig.service(config)
        report = await rig.credits.recover(second.recovery_resolver())
        assert (2, 0, 0) == (report.kept, report.settled, report.released)
        async with second:
            assert 2 == await second.resume()
            await second.wait_idle()

        assert 2 == len(rig.fake.requests_to(SUBMIT))  # the running job was never submitted again
        assert [1, 1] == [len(rig.platform.posts_for(j.id)) for j in (running, waiting)]
        assert ("done", "done") == ((await stored(rig, running)).state, (await stored(rig, waiting)).state)
        assert (GRANT - PRICE, GRANT - PRICE) == (await rig.balance(ALICE), await rig.balance(BOB))
        settles = [e for e in await rig.store.entries(ALICE, kinds=["settle"])]
        assert 1 == len(settles)
        assert running.progress_message is not None
        assert any(t.startswith("Generating…") for t in rig.platform.texts_of(running.progress_message)[1:])
    finally:
        await rig.store.close()


async def _job_in(url: str, job: ImageJob) -> ImageJob:
    from storage import open_store

    store = await open_store(url)
    try:
        found = await store.get_job(job.id)
    finally:
        await store.close()
    assert found is not None
    return found


async def test_recovery_resolver_settles_done_keeps_unfinished_releases_the_rest(rig: Rig) -> None:
    """Open image holds after a crash: done -> settled, queued -> kept, failed or missing -> released."""
    service = rig.service()
    holds = {}
    for state in ("done", "queued", "failed", "missing"):
        job = ImageJob(
            id=f"job-{state}", requester=ALICE, place=GROUP, params={}, reservation_id=f"image:job-{state}"
        )
        if state != "missing":
            await rig.store.create_job(dataclasses.replace(job, state=state))  # type: ignore[arg-type]
        holds[state] = await rig.credits.reserve_image(
            ALICE, GROUP, model="dreamshaper", reservation_id=job.reservation_id
        )

    report = await rig.credits.recover(service.recovery_resolver())

    assert (1, 1, 2, PRICE) == (report.settled, report.kept, report.released, report.charged)
    assert GRANT - 2 * PRICE == await rig.balance(ALICE)  # one charged, one still held
    [still_open] = await rig.store.open_reservations()
    assert "image:job-queued" == still_open.id


async def test_resume_leaves_jobs_of_a_platform_that_is_not_running_alone(rig: Rig) -> None:
    """Without a surface factory for its platform, an unfinished job stays queued and keeps its hold."""
    job = ImageJob(
        id="discord-job",
        requester=Account("discord", "42"),
        place=Place("discord", "777", "888"),
        params={"prompt": "owl", "model": "dreamshaper"},
        reservation_id="image:discord-job",
    )
    await rig.store.create_job(job)
    await rig.credits.reserve_image(
        job.requester, None, model="dreamshaper", reservation_id="image:discord-job"
    )
    async with rig.service() as service:  # registers only "telegram"
        assert 0 == await service.resume()
        report = await rig.credits.recover(service.recovery_resolver())

    assert "queued" == (await stored(rig, job)).state
    assert (1, 0, 0) == (report.kept, report.settled, report.released)
    assert [] == rig.fake.requests
