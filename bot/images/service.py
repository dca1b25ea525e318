"""/imagine for communities: the fair queue, the life of a job, and resuming it after a restart.

    submit()  validate -> per-user limit -> store the job (queued) -> reserve its credits
              -> show "Queued, 3rd in line" -> fair queue
    a slot    submit upstream (jobid + signature stored at once: "submitted")
              -> poll with back-off until done / failed / deadline, progress edited on the way
              -> download (size cap, type check) -> post the image -> "done" -> settle
    failure   "failed" / "expired", a clear sentence on the progress message, hold released

The job row is written before anything is charged or sent, and every step that must not
happen twice is recorded before the next one starts, so :meth:`ImageService.resume` can pick
up any unfinished job: a ``submitted`` job is polled again (never re-submitted), a ``queued``
one waits in line again. Adapters implement :class:`ImageSurface` and register a
:class:`SurfaceFactory` per platform, so a resumed job finds its chat again.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Protocol

from bot.access.rates import RateLimits
from bot.access.service import AccessService
from bot.credits import CreditService, Hold, RecoveryDecision, Resolver
from bot.display.streaming import PacingPolicy, TokenBucket
from bot.display.text import truncate
from bot.errors import (
    AuthenticationError,
    BadImage,
    ConfigError,
    InsufficientCredits,
    InvalidRequest,
    MiniToolAIError,
    NotAllowed,
    PaymentRequired,
    PlatformRateLimited,
    QueueFull,
    RateLimited,
    ServiceUnavailable,
    SpendingLimitReached,
    ValidationError,
)
from bot.i18n import N_, Voice, _, n_, ordinal
from bot.i18n.catalog import current_voice, default_voice, set_voice, speaking
from bot.images.options import ImageOptions, to_params
from bot.images.progress import ProgressBoard
from bot.images.queue import FairQueue
from bot.minitoolai.types import (
    DownloadedImage,
    ImageJobRef,
    ImageParams,
    JobDone,
    JobFailedStatus,
    JobStatus,
)
from bot.ops import context, metrics
from bot.ports import (
    UNFINISHED_JOB_STATES,
    Account,
    ImageJob,
    ImageJobStore,
    JobState,
    Place,
    Reservation,
    SharedSlots,
)
from bot.preferences import Preferences

__all__ = [
    "ImageClient",
    "ImageConfig",
    "ImageService",
    "ImageSurface",
    "SurfaceFactory",
    "caption_for",
    "poll_delays",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

RESERVATION_PREFIX = "image:"
POST_RATE_LIMITED_ATTEMPTS = 10
POST_ERROR_ATTEMPTS = 3
DOWNLOAD_ATTEMPTS = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- what adapters implement


class ImageSurface(Protocol):
    """Where one job's progress and result are shown; each adapter implements one.

    Handles are opaque strings the adapter makes (e.g. ``"<chat id>:<message id>"``); they are
    stored with the job, so a surface rebuilt after a restart must understand old ones.
    """

    caption_limit: int  # characters a caption may have on this platform (Telegram: 1024)

    async def show_progress(self, text: str) -> str:
        """Post a new progress message; return its handle. May raise PlatformRateLimited."""

    async def edit_progress(self, handle: str, text: str) -> None:
        """Replace a progress message's text. May raise PlatformRateLimited."""

    async def post_image(
        self, image: DownloadedImage, caption: str, job_id: str, *, reply_to: str | None
    ) -> str:
        """Upload the image with ``caption`` (the adapter picks photo or document by size and
        adds Regenerate / Delete buttons keyed by ``job_id``); return the posted message's handle.
        ``reply_to`` is a message to reply to, or None. May raise PlatformRateLimited."""

    async def delete(self, handle: str) -> None:
        """Delete a message this bot posted (a progress message or an image)."""


class SurfaceFactory(Protocol):
    """Rebuilds a job's surface from ``job.place`` (and its stored handles) after a restart."""

    def for_job(self, job: ImageJob) -> ImageSurface: ...


class ImageClient(Protocol):
    """The part of ``MiniToolAIClient`` the image service uses."""

    async def submit_image(self, params: ImageParams) -> ImageJobRef: ...

    async def poll_job(self, job: ImageJobRef) -> JobStatus: ...

    async def download_image(
        self,
        url: str,
        *,
        max_bytes: int = ...,
        timeout: float = ...,  # noqa: ASYNC109 - mirrors the client's signature
    ) -> DownloadedImage: ...


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """Queue limits and timings (seconds)."""

    per_user_limit: int = 3  # requests of one person queued or running at once
    global_concurrency: int = 4  # jobs running at MiniToolAI at once, bot-wide
    deadline: float = 300.0  # from submission upstream to giving up
    poll_initial: float = 1.0
    poll_max: float = 3.0
    poll_factor: float = 1.5
    max_download_bytes: int = 20 * 1024 * 1024
    download_timeout: float = 60.0
    progress_interval: float = 3.0  # between progress edits in one place (after the burst)
    progress_burst: int = 2

    def __post_init__(self) -> None:
        if self.per_user_limit < 1 or self.global_concurrency < 1:
            raise ConfigError("The image per-user limit and global concurrency must be at least 1.")
        if self.deadline <= 0 or self.poll_initial <= 0 or self.poll_max < self.poll_initial:
            raise ConfigError("Image deadline and poll intervals must be positive, poll_max >= poll_initial.")
        if self.poll_factor < 1 or self.max_download_bytes < 1 or self.download_timeout <= 0:
            raise ConfigError("Image poll factor must be >= 1, download size and timeout positive.")
        if self.progress_interval < 0 or self.progress_burst < 1:
            raise ConfigError("The progress interval must be >= 0 and the burst at least 1.")


def poll_delays(config: ImageConfig) -> collections.abc.Iterator[float]:
    """Seconds before each poll: ``poll_initial`` growing by ``poll_factor`` up to ``poll_max``."""
    delay = config.poll_initial
    while True:
        yield delay
        delay = min(config.poll_max, delay * config.poll_factor)


def caption_for(params: ImageParams, cost: str, limit: int) -> str:
    """Prompt (cut to fit) on the first line, then model, size, steps and cost."""
    details = _(
        "{model} · {width}×{height} · {steps} steps · {cost}",
        model=params.model,
        width=params.width,
        height=params.height,
        steps=params.steps,
        cost=cost,
    )
    room = limit - len(details) - 1
    if room < 10:  # a platform with almost no caption room: details only
        return truncate(details, limit)
    return f"{truncate(params.prompt, room)}\n{details}"


class _Failure(Exception):
    """Internal: the job ends unsuccessfully with this state and reason for the person."""

    def __init__(self, state: JobState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class _Abandoned(Exception):
    """Internal: another process owns the job now (this one's lease lapsed); touch nothing."""


# ---------------------------------------------------------------- the service


class ImageService:
    """The image queue and job runner for every adapter. Use ``async with`` (or ``close()``)."""

    def __init__(
        self,
        store: ImageJobStore,
        client: ImageClient,
        credits: CreditService,
        prefs: Preferences,
        config: ImageConfig | None = None,
        *,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        rates: RateLimits | None = None,
        shared_slots: SharedSlots | None = None,
        access: AccessService | None = None,
    ) -> None:
        self._access = access  # the community admins' /disable images, enforced here for every path
        self._rates = rates or RateLimits()
        self._shared_slots = shared_slots  # REDIS_URL: the per-user limit across processes
        self._store = store
        self._client = client
        self._credits = credits
        self._prefs = prefs
        self.config = config or ImageConfig()
        self._clock = clock
        self._sleep = sleep
        self._factories: dict[str, SurfaceFactory] = {}
        self._surfaces: dict[str, ImageSurface] = {}  # job id -> surface, while we know the job
        self._voices: dict[str, Voice] = {}  # job id -> the languages it was asked in (this run)
        self._queue: FairQueue[str] = FairQueue()
        self._waiting: dict[str, ImageJob] = {}  # queued job id -> job
        self._running: dict[str, asyncio.Task[None]] = {}
        self._delivering: set[str] = set()  # jobs between posting their image and storing "done"
        self._per_user: collections.Counter[Account] = collections.Counter()
        self._boards: dict[Place, ProgressBoard] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._resume_lock = asyncio.Lock()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ImageService:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every background task; unfinished jobs stay in the store and resume next start."""
        self._closed = True
        tasks = list(self._running.items())
        for job_id, task in tasks:
            if job_id not in self._delivering:  # a job posting its image finishes that first
                task.cancel()
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)
        await asyncio.gather(*(board.close() for board in self._boards.values()))
        self._waiting.clear()
        self._running.clear()

    def register_platform(self, platform: str, factory: SurfaceFactory) -> None:
        """Let jobs of ``platform`` be resumed (and their images deleted) through ``factory``."""
        self._factories[platform] = factory

    async def wait_idle(self) -> None:
        """Wait until no job is queued or running in this process (for tests and benchmarks)."""
        await self._idle.wait()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._running)

    # ------------------------------------------------------------ requests

    async def submit(
        self,
        user: Account,
        place: Place,
        options: ImageOptions,
        surface: ImageSurface,
        *,
        is_admin: bool = False,
    ) -> ImageJob:
        """Queue an image request; returns at once with the stored job (state ``queued``).

        Raises ``ValidationError`` / ``NotAllowed`` before anything is stored or charged,
        ``QueueFull`` when the person has too many requests waiting, ``InsufficientCredits``
        (the job is stored as cancelled; nothing goes upstream).
        """
        self._check_open()
        if self._access is not None:
            self._access.require_images(place)
        params = await self._resolve(place, options, is_admin=is_admin)
        await self._rates.check_image(user)  # a valid request counts; nothing is reserved if too fast
        self._take_slot(user)
        job_id = uuid.uuid4().hex
        try:
            await self._take_shared_slot(user, job_id)
            return await self._create(user, place, params, surface, job_id)
        except BaseException:
            self._give_slot(user)
            await self._give_shared_slot(user, job_id)
            raise

    async def regenerate(
        self, job_id: str, user: Account, surface: ImageSurface, *, is_admin: bool = False
    ) -> ImageJob:
        """A new job with the same options as ``job_id`` (in the same place), charged to ``user``."""
        job = await self._store.get_job(job_id)
        if job is None:
            raise ValidationError(_("I no longer know that image, so I can't make it again."))
        return await self.submit(
            user, job.place, ImageOptions.from_params(job.params), surface, is_admin=is_admin
        )

    async def delete(self, job_id: str, user: Account, *, is_admin: bool = False) -> None:
        """Delete a posted image; only the person who asked for it or an admin may."""
        job = await self._store.get_job(job_id)
        if job is None or job.result_message is None:
            raise ValidationError(_("That image is already gone."))
        if job.requester != user and not is_admin:
            raise NotAllowed(_("Only the person who asked for this image, or an admin, can delete it."))
        factory = self._factories.get(job.place.platform)
        if factory is None:
            raise ValidationError(_("I can't reach that chat right now; please try again later."))
        await factory.for_job(job).delete(job.result_message)
        await self._store.save_job(dataclasses.replace(job, result_message=None))
        logger.info("image job %s: result deleted by %s", job.id, user)

    async def _resolve(self, place: Place, options: ImageOptions, *, is_admin: bool) -> ImageParams:
        """The validated parameters, with the community's default model and restrictions applied."""
        effective = await self._prefs.effective(place)
        allowed = effective.allowed_image_models
        model = options.model
        if model is None:
            model = effective.image_model
            if allowed and model not in allowed:
                model = allowed[0]  # the default was restricted away; the first allowed one stands in
        params = to_params(options, model)
        if allowed and params.model not in allowed and not is_admin:
            raise NotAllowed(
                _(
                    "The image model {model} is not allowed here. Choose one of: {allowed}.",
                    model=params.model,
                    allowed=", ".join(allowed),
                )
            )
        return params

    def _take_slot(self, user: Account) -> None:
        # Checked and taken with no await in between, so concurrent submits cannot both slip in.
        limit = self.config.per_user_limit
        if self._per_user[user] >= limit:
            raise QueueFull(
                n_(
                    "You already have {n} image request waiting. Please wait for it to finish before asking for another.",
                    "You already have {n} image requests waiting. Please wait for one to finish before asking for another.",
                    limit,
                )
            )
        self._per_user[user] += 1
        self._idle.clear()

    async def _take_shared_slot(self, user: Account, job_id: str) -> None:
        """With several processes (REDIS_URL): the same limit counted across all of them."""
        if self._shared_slots is None:
            return
        key = f"images:{user.platform}:{user.holder}"
        if not await self._shared_slots.take(key, job_id, self.config.per_user_limit, self._slot_ttl()):
            limit = self.config.per_user_limit
            raise QueueFull(
                n_(
                    "You already have {n} image request waiting. Please wait for it to finish before asking for another.",
                    "You already have {n} image requests waiting. Please wait for one to finish before asking for another.",
                    limit,
                )
            )

    async def _give_shared_slot(self, user: Account, job_id: str) -> None:
        if self._shared_slots is not None:
            await self._shared_slots.give(f"images:{user.platform}:{user.holder}", job_id)

    def _slot_ttl(self) -> float:
        # A slot of a process that died frees itself: well after any job could have ended.
        return 2 * self.config.deadline + 600

    def _give_slot(self, user: Account) -> None:
        self._per_user[user] -= 1
        if self._per_user[user] <= 0:
            del self._per_user[user]
        if not self._per_user:
            self._idle.set()

    async def _create(
        self, user: Account, place: Place, params: ImageParams, surface: ImageSurface, job_id: str
    ) -> ImageJob:
        job = ImageJob(
            id=job_id,
            requester=user,
            place=place,
            params=dataclasses.asdict(params),
            reservation_id=RESERVATION_PREFIX + job_id,
        )
        await self._store.create_job(job)  # first: from here on a restart knows about it
        try:
            hold = await self._reserve(job)
        except (InsufficientCredits, SpendingLimitReached) as exc:
            # Cancelled, so that a restart never runs a request that was refused.
            await self._store.save_job(dataclasses.replace(job, state="cancelled", error=str(exc)))
            raise
        try:
            job = dataclasses.replace(job, cost=hold.amount)
            await self._store.save_job(job)
            handle = await self._try_show(job, surface, self._queued_text(self._position_if_added(job)))
            job = dataclasses.replace(job, progress_message=handle)
            await self._store.save_job(job)
        except Exception:
            await self._credits.release(hold, "image request could not be queued")
            await self._store.save_job(dataclasses.replace(job, state="cancelled", error="not queued"))
            raise
        logger.info("image job %s queued for %s in %s (model %s)", job.id, user, place, params.model)
        self._surfaces[job.id] = surface
        self._voices[job.id] = dataclasses.replace(current_voice(), in_private=False)  # progress is public
        self._enqueue(job)
        return job

    async def _reserve(self, job: ImageJob) -> Hold:
        """The job's hold; idempotent (keyed by the job), so a resumed job finds its own."""
        community = None if job.place.is_private else job.place.community
        return await self._credits.reserve_image(
            job.requester, community, model=str(job.params["model"]), reservation_id=job.reservation_id
        )

    # ------------------------------------------------------------ resuming

    async def resume(self, platform: str | None = None) -> int:
        """Pick up the unfinished jobs a previous run left (of one platform, or all); return how many.

        Each adapter calls this once it is connected. Jobs of a platform without a registered
        factory are left alone (logged) for a later call or start. Calls are serialised, so two
        adapters resuming at the same moment never queue a job twice.
        """
        self._check_open()
        async with self._resume_lock:
            return await self._resume(platform)

    async def _resume(self, platform: str | None) -> int:
        resumed = 0
        # Only jobs no live process owns, claimed atomically: with several processes on one
        # database, each job is run by exactly one of them, and taken over only once its owner's
        # lease has expired (the periodic takeover calls this again).
        platforms = list(self._factories) if platform is None else [platform]
        for job in await self._store.claim_unfinished_jobs(platforms):
            if job.id in self._waiting or job.id in self._running:
                continue
            factory = self._factories.get(job.place.platform)
            if factory is None:
                logger.warning(
                    "image job %s left alone: no %s adapter is running", job.id, job.place.platform
                )
                continue
            surface = factory.for_job(job)
            self._surfaces[job.id] = surface
            self._per_user[job.requester] += 1
            if self._shared_slots is not None:  # taken over: its slot (keyed by the job) stays counted
                key = f"images:{job.requester.platform}:{job.requester.holder}"
                await self._shared_slots.take(key, job.id, None, self._slot_ttl())
            self._idle.clear()
            if job.progress_message is None:
                text = self._queued_text(self._position_if_added(job))
                job = dataclasses.replace(job, progress_message=await self._try_show(job, surface, text))
                await self._store.save_job(job)
            resumed += 1
            logger.info("image job %s resumed (%s)", job.id, job.state)
            if job.state == "submitted":
                # Already running at MiniToolAI: it takes a slot at once, whatever the limit.
                self._start(job)
            else:
                self._enqueue(job)
        return resumed

    def recovery_resolver(self) -> Resolver:
        """For ``CreditService.recover``: keep holds of unfinished jobs, settle done ones, release the rest."""

        async def resolve(reservation: Reservation) -> RecoveryDecision | None:
            if reservation.purpose != "image" or not reservation.id.startswith(RESERVATION_PREFIX):
                return None
            job = await self._store.get_job(reservation.id.removeprefix(RESERVATION_PREFIX))
            if job is None:
                return RecoveryDecision("release", reason="recovered: image job missing")
            if job.state in UNFINISHED_JOB_STATES:
                return RecoveryDecision("keep")
            if job.state == "done":
                return RecoveryDecision(
                    "settle",
                    charged=reservation.amount,
                    reason="image (recovered)",
                    meta={"exact": True, "model": job.params.get("model", "")},
                )
            return RecoveryDecision("release", reason=f"recovered: image job {job.state}")

        return resolve

    # ------------------------------------------------------------ the queue

    def _enqueue(self, job: ImageJob) -> None:
        metrics.image_job(job.place.platform, "queued", job.id)
        self._waiting[job.id] = job
        self._queue.push(job.place.community, job.requester, job.id)
        self._pump()

    def _position_if_added(self, job: ImageJob) -> int:
        """Where a job would stand if it joined the line now (1 = next)."""
        self._queue.push(job.place.community, job.requester, job.id)
        try:
            return self._queue.order().index(job.id) + 1
        finally:
            self._queue.remove(job.id)

    def _pump(self) -> None:
        """Start waiting jobs while slots are free, then refresh everyone's place in line."""
        if self._closed:
            return
        while len(self._running) < self.config.global_concurrency:
            job_id = self._queue.pop()
            if job_id is None:
                break
            self._start(self._waiting.pop(job_id))
        for position, job_id in enumerate(self._queue.order(), start=1):
            with speaking(self._voices.get(job_id) or default_voice()):
                self._progress(self._waiting[job_id], self._queued_text(position))

    def _start(self, job: ImageJob) -> None:
        metrics.image_job(job.place.platform, "started", job.id)
        self._running[job.id] = asyncio.create_task(self._run(job), name=f"image-job-{job.id}")

    def _queued_text(self, position: int) -> str:
        if position == 1 and len(self._running) < self.config.global_concurrency:
            return _("Starting…")
        if position == 1:
            return _("Queued, next in line.")
        return _("Queued, {position} in line.", position=ordinal(position))

    async def _run(self, job: ImageJob) -> None:
        context.begin(job.place.platform, request_id=f"image-{job.id[:8]}")  # the job's log lines
        set_voice(
            self._voices.get(job.id) or default_voice()
        )  # its texts in the language of the place it was asked in
        try:
            await self._process(job)
        except asyncio.CancelledError:
            logger.info("image job %s stopped by shutdown; it resumes at the next start", job.id)
            raise
        except _Abandoned:
            logger.warning(
                "image job %s: this process's lease lapsed; it is left to the process that took it", job.id
            )
        except Exception:
            logger.exception("image job %s crashed", job.id)
            try:
                await self._settle_failure(
                    job, None, _Failure("failed", N_("something went wrong on my side"))
                )
            except Exception:
                logger.exception("image job %s: could not record its failure", job.id)
        finally:
            self._running.pop(job.id, None)
            self._delivering.discard(job.id)
            if not self._closed:
                self._surfaces.pop(job.id, None)
                self._voices.pop(job.id, None)
                self._give_slot(job.requester)
                self._pump()
                await self._give_shared_slot(job.requester, job.id)

    # ------------------------------------------------------------ one job

    async def _process(self, job: ImageJob) -> None:
        hold: Hold | None = None
        try:
            hold = await self._reserve(job)
            if job.jobid is None or job.signature is None:
                job = await self._submit_upstream(job, hold)
            done = await self._poll(job)
            image = await self._download(job, done.image_url)
            await self._deliver(job, hold, image)
        except _Failure as failure:
            await self._settle_failure(job, hold, failure)
        except (InsufficientCredits, SpendingLimitReached) as exc:
            # Only a job resumed after a crash between storing and reserving can get here.
            await self._settle_failure(job, None, _Failure("cancelled", str(exc).rstrip(".")))

    async def _submit_upstream(self, job: ImageJob, hold: Hold) -> ImageJob:
        await self._check_owner(job)
        if job.attempts > 0:
            # A previous run sent it and died before storing the answer: it may be running
            # upstream already, and a job is never submitted twice.
            raise _Failure("failed", N_("the bot restarted while sending it to MiniToolAI"))
        job = dataclasses.replace(job, attempts=job.attempts + 1)
        await self._store.save_job(job)
        self._progress(job, _("Generating…"))
        try:
            ref = await self._client.submit_image(ImageParams(**job.params))
        except MiniToolAIError as exc:
            logger.warning("image job %s: submit failed: %s", job.id, exc)
            await self._credits.alerts.upstream_refused(exc)  # 401/402/403: tell the owners once
            raise _Failure("failed", _submit_reason(exc)) from exc
        deadline = self._clock() + timedelta(seconds=self.config.deadline)
        job = dataclasses.replace(
            job, state="submitted", jobid=ref.jobid, signature=ref.signature, deadline_at=deadline
        )
        await self._store.save_job(job)  # at once: from now on a restart polls, never re-submits
        metrics.image_job(job.place.platform, "submitted", job.id)
        return job

    async def _poll(self, job: ImageJob) -> JobDone:
        assert job.jobid is not None and job.signature is not None and job.deadline_at is not None
        ref = ImageJobRef(job.jobid, job.signature)
        started = job.deadline_at - timedelta(seconds=self.config.deadline)
        for delay in poll_delays(self.config):
            remaining = (job.deadline_at - self._clock()).total_seconds()
            self._progress(job, _("Generating… {seconds} s", seconds=self._elapsed(started)))
            # Polled at least once even past the deadline: a job resumed after a long stop
            # may have finished meanwhile.
            await self._sleep(max(0.0, min(delay, remaining)))
            status = await self._poll_once(job, ref)
            if isinstance(status, JobDone):
                return status
            if isinstance(status, JobFailedStatus):
                logger.warning("image job %s failed upstream: %s", job.id, status.message)
                raise _Failure("failed", N_("MiniToolAI reported that generating it failed"))
            if self._clock() >= job.deadline_at:
                raise _Failure(
                    "expired",
                    _("it was not ready after {duration}", duration=_duration(self.config.deadline)),
                )
        raise AssertionError("poll_delays never ends")

    async def _poll_once(self, job: ImageJob, ref: ImageJobRef) -> JobStatus | None:
        """The job's status; None when MiniToolAI could not be asked this time."""
        try:
            return await self._client.poll_job(ref)
        except (ServiceUnavailable, RateLimited) as exc:
            logger.warning("image job %s: poll failed, will retry: %s", job.id, exc)
            return None
        except MiniToolAIError as exc:
            logger.warning("image job %s: poll refused: %s", job.id, exc)
            raise _Failure("failed", N_("MiniToolAI would not say how it was going")) from exc

    def _elapsed(self, started: datetime) -> int:
        return max(0, round((self._clock() - started).total_seconds()))

    async def _download(self, job: ImageJob, url: str) -> DownloadedImage:
        self._progress(job, _("Downloading the image…"))
        delays = poll_delays(self.config)
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                return await self._client.download_image(
                    url, max_bytes=self.config.max_download_bytes, timeout=self.config.download_timeout
                )
            except BadImage as exc:
                logger.warning("image job %s: bad image: %s", job.id, exc)
                raise _Failure(
                    "failed", N_("the finished file was not a usable image (or was too large)")
                ) from exc
            except MiniToolAIError as exc:
                logger.warning("image job %s: download try %d failed: %s", job.id, attempt, exc)
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise _Failure("failed", N_("the finished image could not be downloaded")) from exc
                await self._sleep(next(delays))
        raise AssertionError("unreachable")

    async def _deliver(self, job: ImageJob, hold: Hold, image: DownloadedImage) -> None:
        surface = self._surface(job)
        params = ImageParams(**job.params)
        caption = caption_for(
            params, self._credits.format_amount(job.cost or hold.amount), surface.caption_limit
        )
        # From posting to storing "done", a shutdown waits for this job instead of cancelling it:
        # stopped in between, a restart would post the image a second time.
        self._delivering.add(job.id)
        await self._check_owner(job)
        handle = await self._post(job, surface, image, caption)
        # Stored before settling: a crash in between is settled by the recovery resolver.
        job = dataclasses.replace(job, state="done", result_message=handle, error=None)
        await self._store.save_job(job)
        metrics.image_job(job.place.platform, "done", job.id)
        charged = await self._credits.settle_image(hold)
        self._delivering.discard(job.id)
        logger.info("image job %s done: posted %s, charged %d", job.id, handle, charged)
        await self._remove_progress(job, surface)

    async def _post(self, job: ImageJob, surface: ImageSurface, image: DownloadedImage, caption: str) -> str:
        rate_limited = errors = 0
        while True:
            try:
                return await surface.post_image(image, caption, job.id, reply_to=None)
            except PlatformRateLimited as exc:
                rate_limited += 1
                if rate_limited >= POST_RATE_LIMITED_ATTEMPTS:
                    raise _Failure(
                        "failed", N_("it could not be posted here (the chat is too busy)")
                    ) from exc
                self._board(job.place).bucket.hold(exc.retry_after)
                await self._sleep(exc.retry_after)
            except Exception as exc:
                errors += 1
                logger.warning("image job %s: posting failed (try %d)", job.id, errors, exc_info=True)
                if errors >= POST_ERROR_ATTEMPTS:
                    raise _Failure("failed", N_("it could not be posted here")) from exc
                await self._sleep(self.config.poll_initial)

    async def _remove_progress(self, job: ImageJob, surface: ImageSurface) -> None:
        handle = job.progress_message
        if handle is None:
            return
        board = self._board(job.place)
        board.forget(handle)
        try:
            await surface.delete(handle)
        except Exception:
            logger.warning("image job %s: could not delete the progress message", job.id, exc_info=True)
            await board.finish(surface, handle, _("Done."))

    async def _settle_failure(self, job: ImageJob, hold: Hold | None, failure: _Failure) -> None:
        """Store the end, give the credits back, and tell the person in one clear sentence."""
        await self._check_owner(job)
        job = dataclasses.replace(job, state=failure.state, error=failure.reason)
        await self._store.save_job(job)
        metrics.image_job(job.place.platform, failure.state, job.id)
        if hold is not None:
            await self._credits.release(hold, f"image {failure.state}: {failure.reason}")
        elif job.reservation_id is not None:
            reservation = await self._credits.store.get_reservation(job.reservation_id)
            if reservation is not None:
                await self._credits.release(Hold.of(reservation), f"image {failure.state}")
        logger.info("image job %s %s: %s", job.id, failure.state, failure.reason)
        text = _(
            "The image could not be generated: {reason}. You were not charged.", reason=_(failure.reason)
        )
        try:
            surface = self._surface(job)
            if job.progress_message is None or not await self._board(job.place).finish(
                surface, job.progress_message, text
            ):
                await self._show(job, surface, text)
        except Exception:
            logger.warning("image job %s: could not tell the person", job.id, exc_info=True)

    async def _check_owner(self, job: ImageJob) -> None:
        """Before a step that must happen once (submit, post, fail): is the job still ours?

        Only a process whose lease lapsed (stalled, cut off from the database) can lose a job; it
        then leaves the job, its hold and its messages to the process that took it over.
        """
        if not await self._store.holds_job(job.id):
            raise _Abandoned(job.id)

    # ------------------------------------------------------------ progress

    def _surface(self, job: ImageJob) -> ImageSurface:
        surface = self._surfaces.get(job.id)
        if surface is None:
            surface = self._surfaces[job.id] = self._factories[job.place.platform].for_job(job)
        return surface

    def _board(self, place: Place) -> ProgressBoard:
        board = self._boards.get(place)
        if board is None:
            policy = PacingPolicy(
                min_interval=self.config.progress_interval, max_length=4096, burst=self.config.progress_burst
            )
            bucket = TokenBucket(policy, clock=lambda: self._clock().timestamp())
            board = self._boards[place] = ProgressBoard(bucket, sleep=self._sleep, name=str(place))
        return board

    def _progress(self, job: ImageJob, text: str) -> None:
        if job.progress_message is not None and not self._closed:
            self._board(job.place).update(self._surface(job), job.progress_message, text)

    async def _show(self, job: ImageJob, surface: ImageSurface, text: str) -> str:
        """A new progress message, sent at once (it answers the command: a Discord interaction
        must be answered within 3 s) but counted in the place's budget so later edits are paced.
        Retried after ``retry_after`` while the platform refuses."""
        board = self._board(job.place)
        for _attempt in range(POST_RATE_LIMITED_ATTEMPTS):
            board.bucket.take()
            try:
                handle = await surface.show_progress(text)
            except PlatformRateLimited as exc:
                board.bucket.hold(exc.retry_after)
                await self._sleep(exc.retry_after)
                continue
            board.shown(handle, text)
            return handle
        raise PlatformRateLimited(0.0, "the chat stayed rate limited while showing progress")

    async def _try_show(self, job: ImageJob, surface: ImageSurface, text: str) -> str | None:
        """Like ``_show``, but a job goes on without a progress message if the chat refuses one."""
        try:
            return await self._show(job, surface, text)
        except Exception:
            logger.warning("image job %s: could not show progress", job.id, exc_info=True)
            return None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the image service is closed")


# ---------------------------------------------------------------- helpers


def _submit_reason(exc: MiniToolAIError) -> str:
    if isinstance(exc, RateLimited):
        return N_("MiniToolAI is busy right now, please try again in a minute")
    if isinstance(exc, PaymentRequired):
        return N_("the bot's owner needs to top up their MiniToolAI balance")
    if isinstance(exc, AuthenticationError):
        return N_("the bot's owner needs to top up or check their MiniToolAI account")
    if isinstance(exc, InvalidRequest):
        return N_("MiniToolAI refused these options")
    if isinstance(exc, ServiceUnavailable):
        return N_("MiniToolAI could not be reached")
    return N_("MiniToolAI did not accept the job")


def _duration(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return n_("{n} minute", "{n} minutes", int(seconds // 60))
    return n_("{n} second", "{n} seconds", int(seconds)) if seconds == int(seconds) else f"{seconds:g} s"
