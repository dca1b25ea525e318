"""What the core needs from the outside world, as small protocols and the values they carry.

``storage/`` implements the stores here; each adapter implements :class:`Adapter` and the
surfaces its services show things on, which live beside the code that drives them:
``bot.display.streaming.Surface`` (a streaming answer) and ``bot.images.service.ImageSurface`` /
``SurfaceFactory`` (an image job's progress and result). The core depends only on these
names, never on a database driver or a platform library.

Identity and places are plain strings so that every platform fits: a Discord guild id or
``"dm"``, a Telegram chat id; a Discord channel or thread id, a Telegram forum topic id or ``""``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

# ---------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class Account:
    """Who holds a balance: a user (``holder`` = user id) or a community pool (``pool:<scope>``)."""

    platform: str
    holder: str

    @classmethod
    def pool(cls, platform: str, scope: str) -> Account:
        return cls(platform, f"pool:{scope}")

    @property
    def is_pool(self) -> bool:
        return self.holder.startswith("pool:")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who runs an admin command; the adapter sets ``is_platform_admin`` for the community."""

    account: Account
    is_platform_admin: bool = False

    @property
    def id(self) -> str:
        return f"{self.account.platform}:{self.account.holder}"


@dataclass(frozen=True, slots=True)
class Place:
    """Where something happens. ``channel == ""`` means the whole community (guild / chat).

    A private chat's scope starts with ``"dm:"`` (``"dm:<user id>"``): it has no community pool
    and its one member administers it.
    """

    platform: str
    scope: str
    channel: str = ""
    # A thread's parent channel, whose settings the thread inherits. Not part of the identity:
    # a thread is the same place whether or not the adapter knew its parent.
    parent: str = field(default="", compare=False)

    @property
    def is_private(self) -> bool:
        return self.scope.startswith("dm:")

    @property
    def community(self) -> Place:
        return Place(self.platform, self.scope, "")

    @property
    def parent_place(self) -> Place | None:
        return Place(self.platform, self.scope, self.parent) if self.parent else None


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """One conversation: a place, and in per-user context mode also the user it belongs to."""

    platform: str
    scope: str
    channel: str
    owner: str = ""  # "" = shared by the whole channel

    @classmethod
    def of(cls, place: Place, owner: str = "") -> ConversationKey:
        return cls(place.platform, place.scope, place.channel, owner)


# ---------------------------------------------------------------- conversations

Role = Literal["user", "assistant"]
TurnStatus = Literal["complete", "stopped", "interrupted"]


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image a user attached, kept as bytes (never as a platform link).

    A picture prepared for the model (``bot.chat.attachments``) knows its size and content hash
    (the store keeps each picture once by it). One loaded without its bytes (``data == b""``) is a
    picture the conversation had, no longer sent: the prompt names it with a placeholder.
    """

    mime: str
    data: bytes
    width: int = 0
    height: int = 0
    digest: str = ""

    @property
    def prepared(self) -> bool:
        return self.width > 0 and self.height > 0 and bool(self.digest)


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str
    tokens: int
    author_id: str = ""
    images: tuple[StoredImage, ...] = ()
    message_ids: tuple[str, ...] = ()
    status: TurnStatus = "complete"
    id: int | None = None
    created_at: datetime | None = None  # the store fills it when None (UTC)


class ConversationStore(Protocol):
    async def append_turns(
        self, key: ConversationKey, turns: Sequence[Turn], *, keep_pictures: int | None = None
    ) -> list[int]:
        """Store turns in order, all or none (one transaction); return their ids.

        Each picture is stored once by its content hash. With ``keep_pictures`` the conversation
        keeps the bytes of only its newest that many pictures; older turns keep their picture count.
        """

    async def load_context(
        self,
        key: ConversationKey,
        budget_tokens: int,
        *,
        max_turns: int = 500,
        max_pictures: int | None = None,
    ) -> list[Turn]:
        """The newest turns whose token counts sum to at most ``budget_tokens``, oldest first.

        With ``max_pictures`` only the newest that many pictures come with their bytes; the others
        (and pictures no longer kept) come as ``StoredImage`` without data.
        """

    async def replace_last_assistant(self, key: ConversationKey, turn: Turn) -> int:
        """Replace the newest assistant turn (regenerate) atomically; append if there is none."""

    async def reset(self, key: ConversationKey) -> int:
        """Forget a conversation; return how many turns were deleted."""

    async def prune(self, *, older_than: datetime | None = None, keep_last: int | None = None) -> int:
        """Delete turns older than a moment and/or beyond the newest ``keep_last`` per conversation."""


# ---------------------------------------------------------------- settings

ContextMode = Literal["channel", "user"]


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Per-channel (or, with ``channel == ""``, per-community) choices. ``None`` = inherit."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    context_mode: ContextMode | None = None
    image_model: str | None = None
    allowed_image_models: tuple[str, ...] | None = None  # None = inherit; () = all allowed
    allowed_chat_models: tuple[str, ...] | None = None  # None = inherit; () = all allowed
    auto_thread: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # room for later issues, stored as JSON


class SettingsStore(Protocol):
    async def get_settings(self, place: Place) -> ChannelSettings | None: ...

    async def get_settings_many(self, places: Sequence[Place]) -> list[ChannelSettings | None]:
        """Several places' settings in one read, in the order asked (None: nothing stored)."""

    async def put_settings(self, place: Place, settings: ChannelSettings) -> None: ...

    async def get_meta(self, key: str) -> str | None:
        """Small bot-wide facts (e.g. the hash of the last synced command set)."""

    async def set_meta(self, key: str, value: str) -> None: ...

    async def get_meta_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Several meta facts in one read; keys with nothing stored are left out."""


# ---------------------------------------------------------------- credits

EntryKind = Literal["grant", "allowance", "reserve", "settle", "release", "refund", "adjust", "purchase"]
ReservationState = Literal["open", "settled", "released"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    account: Account
    kind: EntryKind
    amount: int  # signed micro-dollars; the sum of an account's entries is its balance
    balance_after: int
    reason: str
    idempotency_key: str
    reservation_id: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    account: Account
    amount: int
    purpose: str  # "chat" | "image"
    state: ReservationState = "open"
    spender: Account | None = None  # who spent from a pool
    charged: int | None = None  # set when settled
    meta: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Counter:
    """A bot-wide total the store keeps per period (``key``, e.g. ``spending:day:2026-12-02``),
    moved in the same transaction as the change it counts, never past ``limit`` (None = no limit)."""

    key: str
    limit: int | None = None


class LedgerStore(Protocol):
    async def open_account(
        self, account: Account, *, starting_grant: int, reason: str, grants: Counter | None = None
    ) -> int:
        """Create the account once (with its starting grant as a ledger entry); return the balance.

        With ``grants``, the grant is given only while that counter of grants is under its limit
        (it counts one more); past it the account opens at 0 with an entry whose meta says
        ``{"grant_withheld": true}``.
        """

    async def balance(self, account: Account) -> int | None:
        """The balance, or None for an account that was never opened."""

    async def apply(
        self,
        account: Account,
        amount: int,
        *,
        kind: EntryKind,
        reason: str,
        idempotency_key: str,
        meta: Mapping[str, Any] | None = None,
    ) -> LedgerEntry | None:
        """Add a signed amount atomically. Returns None if the key was already used (no change).

        Raises ``bot.errors.InsufficientCredits`` if the balance would go below zero.
        """

    async def top_up(
        self, account: Account, amount: int, *, up_to: int, reason: str, idempotency_key: str
    ) -> int:
        """Add ``min(amount, up_to - balance)`` if positive (allowances); return what was added.

        The key is spent even when nothing is added (a zero entry is recorded), so one period
        refills at most once.
        """

    async def reserve(
        self,
        reservation_id: str,
        account: Account,
        amount: int,
        *,
        purpose: str,
        reason: str,
        spender: Account | None = None,
        meta: Mapping[str, Any] | None = None,
        spending: Sequence[Counter] = (),
    ) -> bool:
        """Take ``amount`` from the balance if it fits, whatever runs concurrently.

        False when it does not fit (nothing changes). Re-using an id is a no-op returning True.
        Each ``spending`` counter grows by ``amount`` in the same transaction; one that would pass
        its limit raises ``bot.errors.SpendingLimitReached`` (nothing changes). Settling gives
        back what was not charged, releasing all of it, so a counter is "charged + still held".
        """

    async def settle(
        self, reservation_id: str, charged: int, *, reason: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        """Close an open reservation charging ``charged``: what is under the amount goes back; what is
        over it is taken from the account's balance as far as the balance goes (never below zero),
        in the same entry. The reservation's ``charged`` is what was really taken.

        False (and no change) if the reservation is already closed: settle is idempotent.
        """

    async def release(self, reservation_id: str, *, reason: str) -> bool:
        """Close an open reservation giving everything back; False if already closed."""

    async def annotate_reservation(self, reservation_id: str, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into a reservation's meta (top-level keys replace); an unknown id changes nothing.

        The chat service records the usage chunk here the moment it arrives, so a crash
        before settling can still settle exactly at the next start.
        """

    async def get_reservation(self, reservation_id: str) -> Reservation | None: ...

    async def counter(self, key: str) -> int:
        """The value of a counter (0 if it was never moved)."""

    async def claim_once(self, key: str) -> bool:
        """True for the first caller ever of ``key`` (across processes), False afterwards."""

    async def open_reservations(self) -> list[Reservation]: ...

    async def entries(
        self, account: Account, *, limit: int = 20, kinds: Sequence[EntryKind] | None = None
    ) -> list[LedgerEntry]:
        """Newest first."""

    async def held(self, account: Account, *, spender: Account | None = None) -> int:
        """Sum of ``account``'s open reservations (those made for ``spender`` only, if given)."""

    async def charged_between(
        self, account: Account, start: datetime, end: datetime, *, spender: Account | None = None
    ) -> int:
        """Sum of ``charged`` over reservations of ``account`` settled in [start, end)."""

    async def settled_reservations(
        self, account: Account, *, limit: int = 20, spender: Account | None = None
    ) -> list[Reservation]:
        """Newest settled reservations first (for /usage)."""

    async def spent_between(self, start: datetime, end: datetime) -> int:
        """Sum of ``charged`` over every reservation settled in [start, end) (the owner's spending)."""


# ---------------------------------------------------------------- image jobs

JobState = Literal["queued", "submitted", "done", "failed", "expired", "cancelled"]
UNFINISHED_JOB_STATES: tuple[JobState, ...] = ("queued", "submitted")


@dataclass(frozen=True, slots=True)
class ImageJob:
    id: str  # our id (uuid4 hex), made before anything is submitted
    requester: Account
    place: Place
    params: Mapping[str, Any]  # the validated request, JSON-serialisable
    state: JobState = "queued"
    reservation_id: str | None = None
    jobid: str | None = None
    signature: str | None = None
    attempts: int = 0
    cost: int = 0
    progress_message: str | None = None  # adapter-defined handle of the message showing progress
    result_message: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deadline_at: datetime | None = None


class ImageJobStore(Protocol):
    async def create_job(self, job: ImageJob) -> None: ...

    async def save_job(self, job: ImageJob) -> None:
        """Overwrite every field of an existing job (the core uses ``dataclasses.replace``)."""

    async def get_job(self, job_id: str) -> ImageJob | None: ...

    async def unfinished_jobs(self) -> list[ImageJob]:
        """Jobs in ``UNFINISHED_JOB_STATES``, oldest first, so a restarted bot resumes them."""

    async def claim_unfinished_jobs(self, platforms: Sequence[str]) -> list[ImageJob]:
        """Unfinished jobs of ``platforms`` that no live process owns, now owned by this one
        (with their holds), atomically: two processes never claim the same job. Oldest first."""

    async def holds_job(self, job_id: str) -> bool:
        """True while this process owns ``job_id`` and its lease has not lapsed (checked before
        submitting, posting or failing it)."""


# ---------------------------------------------------------------- processes (several on one database)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    id: str
    host: str
    pid: int


class LeaseStore(Protocol):
    """This process's identity and heartbeat lease; holds and jobs it made carry its id."""

    process_id: str

    async def register_process(self, *, ttl: float, host: str, pid: int) -> None: ...

    async def renew_lease(self, *, ttl: float) -> bool:
        """Push the lease ``ttl`` seconds ahead; False if it had already lapsed (others may have
        taken this process's work: it must stop)."""

    async def end_lease(self) -> None:
        """At a clean stop: what is left becomes others' to take over at once."""

    async def end_other_leases(self) -> None:
        """Only when no other process can use the database (SQLite, locked): the others are dead."""

    async def live_processes(self) -> list[ProcessInfo]: ...

    async def claim_reservations(self) -> list[Reservation]:
        """Open reservations that no live process owns, now owned by this one, atomically."""

    async def claim_role(self, name: str) -> bool:
        """Hold the role ``name`` (work one process does for all) unless a live process holds it;
        True if this process holds it now."""


class AnswerStore(Protocol):
    """Which process is writing an answer in which conversation (one at a time across processes)."""

    async def take_answer(self, key: ConversationKey) -> bool:
        """Become the one process answering in ``key``, unless a live process already is."""

    async def end_answer(self, key: ConversationKey) -> None: ...

    async def answering_processes(self, place: Place) -> list[str]:
        """Live processes writing an answer in ``place`` (any conversation of it)."""


class AnswerGate(Protocol):
    """How the chat service keeps one answer per conversation across processes and reaches
    the process writing an answer to stop it (``bot.coordination.answers``)."""

    async def acquire(self, key: ConversationKey) -> None:
        """Wait until no other process is answering in ``key``, then hold it."""

    async def release(self, key: ConversationKey) -> None: ...

    async def stop_elsewhere(self, place: Place, user: Account, *, is_admin: bool) -> bool:
        """Ask the process writing an answer in ``place`` to stop it; True if it stopped one."""

    async def answering_elsewhere(self, place: Place) -> bool: ...


class SharedLimits(Protocol):
    """Rate budgets several processes share (Redis, with ``REDIS_URL``; ``storage.redis``)."""

    async def reserve(self, budgets: Sequence[tuple[str, float]]) -> float:
        """Book the next slot in every ``(name, interval seconds)`` budget at once; the seconds to
        wait before going (0: go now). Without the shared server: 0, pacing stays per process."""

    async def hold(self, name: str, seconds: float) -> None:
        """The platform said wait: nothing of ``name`` goes for ``seconds``, in any process."""


class SharedSlots(Protocol):
    """Named sets of slots every process shares (Redis): a limit on things in progress."""

    async def take(self, name: str, member: str, limit: int | None, ttl: float) -> bool:
        """Add ``member`` to ``name`` unless it already holds ``limit`` members (None: no limit);
        True if it is in now. A member not given back leaves after ``ttl`` seconds."""

    async def give(self, name: str, member: str) -> None: ...


# A lock every process shares, by name (Redis, with ``REDIS_URL``): ``async with lock("name"):``.
SharedLock = Callable[[str], AbstractAsyncContextManager[None]]


# ---------------------------------------------------------------- access (who and where)

AccessKind = Literal["user", "chat", "role"]
AccessVerdict = Literal["allow", "block", "unblock"]  # "unblock" lifts a block named in the settings


@dataclass(frozen=True, slots=True)
class AccessRule:
    """A run-time override of the owner's lists: ``subject`` is ``platform:id`` (a user, a chat
    (Telegram chat, Discord server or channel) or a Discord role)."""

    kind: AccessKind
    subject: str
    verdict: AccessVerdict
    set_by: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChannelSwitches:
    """What community admins switched in one channel or group (all off = today's behaviour)."""

    chat_off: bool = False
    images_off: bool = False
    reply_all: bool = False


class AccessStore(Protocol):
    async def access_rules(self) -> list[AccessRule]:
        """Every stored override, oldest first."""

    async def put_access_rule(self, rule: AccessRule) -> None:
        """Store (or replace) the override of one subject."""

    async def delete_access_rule(self, kind: AccessKind, subject: str) -> bool:
        """Forget one override; False if there was none."""

    async def all_channel_switches(self) -> dict[Place, ChannelSwitches]:
        """Every place whose switches were changed (the bot keeps them in memory)."""

    async def put_channel_switches(self, place: Place, switches: ChannelSwitches) -> None: ...


class Store(
    ConversationStore,
    SettingsStore,
    LedgerStore,
    ImageJobStore,
    AccessStore,
    LeaseStore,
    AnswerStore,
    Protocol,
):
    """Everything the core persists, behind one object with one lifetime."""

    async def close(self) -> None: ...


# ---------------------------------------------------------------- adapters


class PrivateMessenger(Protocol):
    """Sends a private message to an account of one platform (owner alerts); the adapters implement it."""

    async def send_private(self, holder: str, text: str) -> bool:
        """Deliver ``text`` privately to user ``holder``; False if the platform will not let us."""


class Adapter(Protocol):
    """A platform front end. ``run`` serves until ``stop`` is set, then finishes in-flight work."""

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...
