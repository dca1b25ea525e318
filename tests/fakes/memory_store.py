"""An in-memory implementation of the whole ``bot.ports.Store`` protocol, for unit tests.

It follows the protocol docstrings as closely as the SQL backends do:

* every method yields to the event loop once before touching state (like a database
  round trip), then runs without awaiting, so each call is atomic and concurrent
  callers interleave between calls exactly as they could with a real backend;
* meta, settings ``extra`` and job ``params`` go through JSON on the way in and out,
  so a value a real backend could not store fails here too, and callers never share
  mutable state with the store;
* timestamps come from ``clock`` (timezone-aware UTC), and naive datetimes are refused;
* idempotency keys are unique across the whole ledger, as a unique index would make them.

Choices the protocol leaves open (the SQL backends should agree; see the contract tests):

* ``apply``/``top_up``/``reserve`` on an account that was never opened create it at 0.
* ``top_up`` records an entry (possibly of 0) under its key even when it adds nothing,
  so a key is spent once: an allowance period can never refill twice.
* ``settle``/``release`` of an unknown reservation return False and change nothing.
* ``replace_last_assistant`` updates the newest assistant turn in place (same id, same
  position, new ``created_at``).
* ``save_job`` stamps ``updated_at`` with the store's clock and keeps ``created_at``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.errors import InsufficientCredits, SpendingLimitReached, StorageError
from bot.ports import (
    UNFINISHED_JOB_STATES,
    AccessKind,
    AccessRule,
    Account,
    ChannelSettings,
    ChannelSwitches,
    ConversationKey,
    Counter,
    EntryKind,
    ImageJob,
    LedgerEntry,
    Place,
    ProcessInfo,
    Reservation,
    StoredImage,
    Turn,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json_copy(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy through JSON: fails like a JSON column would on non-serialisable values."""
    if value is None:
        return {}
    copied = json.loads(json.dumps(dict(value)))
    assert isinstance(copied, dict)
    return copied


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got a naive one.")
    return moment.astimezone(UTC)


@dataclasses.dataclass(slots=True)
class _AccountRow:
    balance: int = 0
    entries: list[LedgerEntry] = dataclasses.field(default_factory=list)


class MemoryStore:
    """Everything ``bot.ports.Store`` promises, kept in dictionaries."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._closed = False
        self._ids = itertools.count(1)
        # conversations
        self._turns: dict[ConversationKey, list[Turn]] = {}
        # settings
        self._settings: dict[Place, ChannelSettings] = {}
        self._meta: dict[str, str] = {}
        # ledger
        self._accounts: dict[Account, _AccountRow] = {}
        self._keys: set[str] = set()
        self._reservations: dict[str, Reservation] = {}
        self._counters: dict[str, int] = {}
        self._claims: set[str] = set()
        # image jobs
        self._jobs: dict[str, ImageJob] = {}
        self._job_order: list[str] = []
        # access
        self._access: dict[tuple[str, str], AccessRule] = {}
        self._switches: dict[Place, ChannelSwitches] = {}

    # ------------------------------------------------------------ plumbing

    async def _checkpoint(self) -> None:
        # One yield per call stands for the database round trip, so concurrent callers
        # really interleave; after it, the call runs to the end without awaiting (atomic).
        await asyncio.sleep(0)
        if self._closed:
            raise StorageError("The store is closed.")

    def _now(self) -> datetime:
        return _require_aware(self._clock(), "The store clock")

    async def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------ conversations

    async def append_turns(
        self, key: ConversationKey, turns: Sequence[Turn], *, keep_pictures: int | None = None
    ) -> list[int]:
        await self._checkpoint()
        stored = [self._stamp_turn(turn, next(self._ids)) for turn in turns]
        conversation = self._turns.setdefault(key, [])
        conversation.extend(stored)
        if keep_pictures is not None:
            self._keep_newest_pictures(conversation, keep_pictures)
        return [turn.id for turn in stored if turn.id is not None]

    @staticmethod
    def _keep_newest_pictures(turns: list[Turn], keep: int) -> None:
        """Pictures beyond the newest ``keep`` lose their bytes and all but their place (as in SQL)."""
        seen = 0
        for index in range(len(turns) - 1, -1, -1):
            images = list(turns[index].images)
            for position in range(len(images) - 1, -1, -1):
                if not images[position].data:
                    continue
                seen += 1
                if seen > keep:
                    images[position] = StoredImage("", b"")
            turns[index] = dataclasses.replace(turns[index], images=tuple(images))

    def _stamp_turn(self, turn: Turn, turn_id: int) -> Turn:
        if turn.tokens < 0:
            raise ValueError("A turn's token count must not be negative.")
        created = self._now() if turn.created_at is None else _require_aware(turn.created_at, "created_at")
        images = tuple(
            dataclasses.replace(i, digest=i.digest or hashlib.sha256(i.data).hexdigest()) if i.data else i
            for i in turn.images
        )
        return dataclasses.replace(turn, id=turn_id, created_at=created, images=images)

    async def load_context(
        self,
        key: ConversationKey,
        budget_tokens: int,
        *,
        max_turns: int = 500,
        max_pictures: int | None = None,
    ) -> list[Turn]:
        await self._checkpoint()
        chosen: list[Turn] = []
        used = 0
        for turn in reversed(self._turns.get(key, [])):
            if len(chosen) >= max_turns or used + turn.tokens > budget_tokens:
                break
            chosen.append(turn)
            used += turn.tokens
        if max_pictures is not None:
            seen = 0
            for index, turn in enumerate(chosen):  # newest first
                images = list(turn.images)
                for position in range(len(images) - 1, -1, -1):
                    if images[position].data:
                        seen += 1
                        if seen > max_pictures:
                            images[position] = dataclasses.replace(images[position], data=b"")
                chosen[index] = dataclasses.replace(turn, images=tuple(images))
        chosen.reverse()
        return chosen

    async def replace_last_assistant(self, key: ConversationKey, turn: Turn) -> int:
        await self._checkpoint()
        turns = self._turns.setdefault(key, [])
        for index in range(len(turns) - 1, -1, -1):
            old = turns[index]
            if old.role == "assistant" and old.id is not None:
                turns[index] = self._stamp_turn(dataclasses.replace(turn, created_at=None), old.id)
                return old.id
        stored = self._stamp_turn(turn, next(self._ids))
        turns.append(stored)
        assert stored.id is not None
        return stored.id

    async def reset(self, key: ConversationKey) -> int:
        await self._checkpoint()
        return len(self._turns.pop(key, []))

    async def prune(self, *, older_than: datetime | None = None, keep_last: int | None = None) -> int:
        await self._checkpoint()
        cutoff = None if older_than is None else _require_aware(older_than, "older_than")
        deleted = 0
        for key, turns in list(self._turns.items()):
            kept = [
                t for t in turns if cutoff is None or (t.created_at is not None and t.created_at >= cutoff)
            ]
            if keep_last is not None:
                kept = kept[-keep_last:] if keep_last > 0 else []
            deleted += len(turns) - len(kept)
            if kept:
                self._turns[key] = kept
            else:
                del self._turns[key]
        return deleted

    # ------------------------------------------------------------ settings

    async def get_settings(self, place: Place) -> ChannelSettings | None:
        await self._checkpoint()
        stored = self._settings.get(place)
        return None if stored is None else dataclasses.replace(stored, extra=_json_copy(stored.extra))

    async def get_settings_many(self, places: Sequence[Place]) -> list[ChannelSettings | None]:
        await self._checkpoint()
        found = [self._settings.get(place) for place in places]
        return [None if s is None else dataclasses.replace(s, extra=_json_copy(s.extra)) for s in found]

    async def put_settings(self, place: Place, settings: ChannelSettings) -> None:
        await self._checkpoint()
        self._settings[place] = dataclasses.replace(settings, extra=_json_copy(settings.extra))

    async def get_meta(self, key: str) -> str | None:
        await self._checkpoint()
        return self._meta.get(key)

    async def get_meta_many(self, keys: Sequence[str]) -> dict[str, str]:
        await self._checkpoint()
        return {key: self._meta[key] for key in keys if key in self._meta}

    async def set_meta(self, key: str, value: str) -> None:
        await self._checkpoint()
        self._meta[key] = value

    # ------------------------------------------------------------ access

    async def access_rules(self) -> list[AccessRule]:
        await self._checkpoint()
        return list(self._access.values())

    async def put_access_rule(self, rule: AccessRule) -> None:
        await self._checkpoint()
        self._access.pop((rule.kind, rule.subject), None)  # a replaced rule becomes the newest
        self._access[(rule.kind, rule.subject)] = dataclasses.replace(rule, updated_at=self._now())

    async def delete_access_rule(self, kind: AccessKind, subject: str) -> bool:
        await self._checkpoint()
        return self._access.pop((kind, subject), None) is not None

    async def all_channel_switches(self) -> dict[Place, ChannelSwitches]:
        await self._checkpoint()
        return dict(self._switches)

    async def put_channel_switches(self, place: Place, switches: ChannelSwitches) -> None:
        await self._checkpoint()
        if switches == ChannelSwitches():
            self._switches.pop(place, None)
        else:
            self._switches[place] = switches

    # ------------------------------------------------------------ ledger

    def _write(
        self,
        account: Account,
        amount: int,
        *,
        kind: EntryKind,
        reason: str,
        idempotency_key: str,
        reservation_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Append one entry; the caller has checked the key and the balance."""
        row = self._accounts.setdefault(account, _AccountRow())
        balance_after = row.balance + amount
        if balance_after < 0:  # the CHECK (balance >= 0) of the SQL backends
            raise AssertionError("memory store bug: balance below zero")
        entry = LedgerEntry(
            account=account,
            kind=kind,
            amount=amount,
            balance_after=balance_after,
            reason=reason,
            idempotency_key=idempotency_key,
            reservation_id=reservation_id,
            meta=_json_copy(meta),
            id=next(self._ids),
            created_at=self._now(),
        )
        row.balance = balance_after
        row.entries.append(entry)
        self._keys.add(idempotency_key)
        return entry

    async def open_account(
        self, account: Account, *, starting_grant: int, reason: str, grants: Counter | None = None
    ) -> int:
        await self._checkpoint()
        if starting_grant < 0:
            raise ValueError("A starting grant must not be negative.")
        row = self._accounts.get(account)
        if row is not None:
            return row.balance
        self._accounts[account] = _AccountRow()
        key = f"open:{account.platform}:{account.holder}"
        if starting_grant > 0 and grants is not None and not self._fits(grants, 1):
            self._write(
                account, 0, kind="grant", reason=reason, idempotency_key=key, meta={"grant_withheld": True}
            )
        elif starting_grant > 0:
            if grants is not None:
                self._counters[grants.key] = self._counters.get(grants.key, 0) + 1
            self._write(account, starting_grant, kind="grant", reason=reason, idempotency_key=key)
        return self._accounts[account].balance

    def _fits(self, counter: Counter, amount: int) -> bool:
        return counter.limit is None or self._counters.get(counter.key, 0) + amount <= counter.limit

    async def counter(self, key: str) -> int:
        await self._checkpoint()
        return self._counters.get(key, 0)

    async def claim_once(self, key: str) -> bool:
        await self._checkpoint()
        if key in self._claims:
            return False
        self._claims.add(key)
        return True

    async def balance(self, account: Account) -> int | None:
        await self._checkpoint()
        row = self._accounts.get(account)
        return None if row is None else row.balance

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
        await self._checkpoint()
        if idempotency_key in self._keys:
            return None
        balance = self._accounts.get(account, _AccountRow()).balance
        if balance + amount < 0:
            raise InsufficientCredits(
                "The balance is too low for this change.", balance=balance, needed=-amount
            )
        return self._write(
            account, amount, kind=kind, reason=reason, idempotency_key=idempotency_key, meta=meta
        )

    async def top_up(
        self, account: Account, amount: int, *, up_to: int, reason: str, idempotency_key: str
    ) -> int:
        await self._checkpoint()
        if idempotency_key in self._keys:
            return 0
        balance = self._accounts.get(account, _AccountRow()).balance
        added = max(0, min(amount, up_to - balance))
        self._write(account, added, kind="allowance", reason=reason, idempotency_key=idempotency_key)
        return added

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
        await self._checkpoint()
        if amount < 0:
            raise ValueError("A reservation must not be negative.")
        if reservation_id in self._reservations:
            return True
        if self._accounts.get(account, _AccountRow()).balance < amount:
            return False
        for counter in spending:
            if not self._fits(counter, amount):
                raise SpendingLimitReached(key=counter.key, limit=counter.limit or 0)
        for counter in spending:
            self._counters[counter.key] = self._counters.get(counter.key, 0) + amount
        stored_meta = _json_copy(meta)
        if spending:
            stored_meta["spending_counters"] = [c.key for c in spending]
        self._write(
            account,
            -amount,
            kind="reserve",
            reason=reason,
            idempotency_key=f"reserve:{reservation_id}",
            reservation_id=reservation_id,
            meta=stored_meta,
        )
        self._reservations[reservation_id] = Reservation(
            id=reservation_id,
            account=account,
            amount=amount,
            purpose=purpose,
            spender=spender,
            meta=stored_meta,
            created_at=self._now(),
        )
        return True

    def _close(
        self,
        reservation_id: str,
        kept: int,
        *,
        settled: bool,
        reason: str,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        """Close an open reservation keeping ``kept``; give back the rest in one entry."""
        held = self._reservations.get(reservation_id)
        if held is None or held.state != "open":
            return False
        merged = {**_json_copy(held.meta), **_json_copy(meta)}
        for key in held.meta.get("spending_counters", []):
            self._counters[key] -= held.amount - kept
        self._write(
            held.account,
            held.amount - kept,
            kind="settle" if settled else "release",
            reason=reason,
            idempotency_key=f"{'settle' if settled else 'release'}:{reservation_id}",
            reservation_id=reservation_id,
            meta={"charged": kept, **_json_copy(meta)},
        )
        self._reservations[reservation_id] = dataclasses.replace(
            held,
            state="settled" if settled else "released",
            charged=kept if settled else None,
            meta=merged,
            closed_at=self._now(),
        )
        return True

    async def settle(
        self, reservation_id: str, charged: int, *, reason: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        await self._checkpoint()
        if charged < 0:
            raise ValueError("A settled charge must not be negative.")
        held = self._reservations.get(reservation_id)
        kept = 0 if held is None else min(charged, held.amount)
        if held is not None and held.state == "open" and charged > held.amount:
            # Over the hold: the rest from the balance, as far as it goes (as the SQL stores do).
            kept += min(charged - held.amount, self._accounts.get(held.account, _AccountRow()).balance)
        return self._close(reservation_id, kept, settled=True, reason=reason, meta=meta)

    async def release(self, reservation_id: str, *, reason: str) -> bool:
        await self._checkpoint()
        return self._close(reservation_id, 0, settled=False, reason=reason)

    async def annotate_reservation(self, reservation_id: str, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into a reservation's meta (e.g. the usage chunk, before settling).

        Not yet in ``bot.ports.LedgerStore``; an unknown id changes nothing.
        """
        await self._checkpoint()
        held = self._reservations.get(reservation_id)
        if held is not None:
            merged = {**_json_copy(held.meta), **_json_copy(meta)}
            self._reservations[reservation_id] = dataclasses.replace(held, meta=merged)

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        await self._checkpoint()
        held = self._reservations.get(reservation_id)
        return None if held is None else dataclasses.replace(held, meta=_json_copy(held.meta))

    async def open_reservations(self) -> list[Reservation]:
        await self._checkpoint()
        return [
            dataclasses.replace(r, meta=_json_copy(r.meta))
            for r in self._reservations.values()
            if r.state == "open"
        ]

    async def entries(
        self, account: Account, *, limit: int = 20, kinds: Sequence[EntryKind] | None = None
    ) -> list[LedgerEntry]:
        await self._checkpoint()
        rows = self._accounts.get(account, _AccountRow()).entries
        chosen = [e for e in reversed(rows) if kinds is None or e.kind in kinds][: max(limit, 0)]
        return [dataclasses.replace(e, meta=_json_copy(e.meta)) for e in chosen]

    def _settled(self, account: Account, spender: Account | None) -> list[Reservation]:
        """Settled reservations of an account, newest close first."""
        found = [
            r
            for r in self._reservations.values()
            if r.account == account and r.state == "settled" and (spender is None or r.spender == spender)
        ]
        # dicts keep insertion order; sorted() is stable, so ties keep reservation order.
        found.sort(key=lambda r: r.closed_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return found

    async def charged_between(
        self, account: Account, start: datetime, end: datetime, *, spender: Account | None = None
    ) -> int:
        await self._checkpoint()
        start = _require_aware(start, "start")
        end = _require_aware(end, "end")
        return sum(
            r.charged or 0
            for r in self._settled(account, spender)
            if r.closed_at is not None and start <= r.closed_at < end
        )

    async def held(self, account: Account, *, spender: Account | None = None) -> int:
        await self._checkpoint()
        return sum(
            r.amount
            for r in self._reservations.values()
            if r.state == "open" and r.account == account and (spender is None or r.spender == spender)
        )

    async def spent_between(self, start: datetime, end: datetime) -> int:
        await self._checkpoint()
        start = _require_aware(start, "start")
        end = _require_aware(end, "end")
        return sum(
            r.charged or 0
            for r in self._reservations.values()
            if r.state == "settled" and r.closed_at is not None and start <= r.closed_at < end
        )

    async def settled_reservations(
        self, account: Account, *, limit: int = 20, spender: Account | None = None
    ) -> list[Reservation]:
        await self._checkpoint()
        chosen = self._settled(account, spender)[: max(limit, 0)]
        return [dataclasses.replace(r, meta=_json_copy(r.meta)) for r in chosen]

    # ------------------------------------------------------------ image jobs

    def _copy_job(self, job: ImageJob) -> ImageJob:
        return dataclasses.replace(job, params=_json_copy(job.params))

    async def create_job(self, job: ImageJob) -> None:
        await self._checkpoint()
        if job.id in self._jobs:
            raise StorageError(f"An image job with id {job.id!r} already exists.")
        now = self._now()
        self._jobs[job.id] = dataclasses.replace(
            self._copy_job(job),
            created_at=job.created_at or now,
            updated_at=job.updated_at or now,
        )
        self._job_order.append(job.id)

    async def save_job(self, job: ImageJob) -> None:
        await self._checkpoint()
        old = self._jobs.get(job.id)
        if old is None:
            raise StorageError(f"There is no image job with id {job.id!r} to save.")
        self._jobs[job.id] = dataclasses.replace(
            self._copy_job(job), created_at=old.created_at, updated_at=self._now()
        )

    async def get_job(self, job_id: str) -> ImageJob | None:
        await self._checkpoint()
        job = self._jobs.get(job_id)
        return None if job is None else self._copy_job(job)

    async def unfinished_jobs(self) -> list[ImageJob]:
        await self._checkpoint()
        found = [self._jobs[i] for i in self._job_order if self._jobs[i].state in UNFINISHED_JOB_STATES]
        found.sort(key=lambda j: j.created_at or datetime.min.replace(tzinfo=UTC))
        return [self._copy_job(j) for j in found]

    async def claim_unfinished_jobs(self, platforms: Sequence[str]) -> list[ImageJob]:
        # One process and no leases: every unfinished job is this process's to resume.
        return [job for job in await self.unfinished_jobs() if job.place.platform in platforms]

    async def holds_job(self, job_id: str) -> bool:
        await self._checkpoint()
        return job_id in self._jobs

    # ------------------------------------------------------------ process lease (one process)

    process_id = "memory"

    async def register_process(self, *, ttl: float, host: str, pid: int) -> None:
        await self._checkpoint()

    async def renew_lease(self, *, ttl: float) -> bool:
        await self._checkpoint()
        return True

    async def end_lease(self) -> None:
        await self._checkpoint()

    async def end_other_leases(self) -> None:
        await self._checkpoint()

    async def live_processes(self) -> list[ProcessInfo]:
        await self._checkpoint()
        return [ProcessInfo(self.process_id, "", 0)]

    async def take_answer(self, key: ConversationKey) -> bool:
        await self._checkpoint()
        return True

    async def end_answer(self, key: ConversationKey) -> None:
        await self._checkpoint()

    async def answering_processes(self, place: Place) -> list[str]:
        await self._checkpoint()
        return []

    async def claim_role(self, name: str) -> bool:
        await self._checkpoint()
        return True

    async def claim_reservations(self) -> list[Reservation]:
        # One process: what is open when this is called was left by a previous run.
        return await self.open_reservations()

    # ------------------------------------------------------------ test helpers (not in the protocol)

    def ledger_sum(self, account: Account) -> int:
        """The sum of every entry of an account, to check it against the balance."""
        return sum(e.amount for e in self._accounts.get(account, _AccountRow()).entries)

    def accounts(self) -> list[Account]:
        return list(self._accounts)
