"""One contract for every ``bot.ports.Store`` backend: each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import aiosqlite
import asyncpg
import pytest

from bot.errors import InsufficientCredits, SpendingLimitReached, StorageError
from bot.ports import (
    AccessRule,
    Account,
    ChannelSettings,
    ChannelSwitches,
    ConversationKey,
    Counter,
    ImageJob,
    Place,
    Store,
    StoredImage,
    Turn,
)
from storage import open_store
from storage.common import parse_database_url

KEY = ConversationKey("telegram", "100", "7")
OTHER = ConversationKey("telegram", "100", "7", owner="u2")
ALICE = Account("telegram", "alice")
POOL = Account.pool("telegram", "100")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def turn(text: str, tokens: int, role: str = "user", **kw: object) -> Turn:
    return Turn(role=role, text=text, tokens=tokens, **kw)  # type: ignore[arg-type]


def pic(mime: str, data: bytes, width: int = 0, height: int = 0) -> StoredImage:
    """A picture as the store returns it: with its content hash."""
    return StoredImage(mime, data, width, height, hashlib.sha256(data).hexdigest())


async def stored_pictures(database_url: str) -> int:
    """How many pictures the database holds (behind the store's back: the protocol does not say)."""
    target = parse_database_url(database_url)
    if target.backend == "sqlite":
        async with aiosqlite.connect(target.sqlite_path) as conn:
            rows = await conn.execute_fetchall("SELECT COUNT(*) FROM pictures")
            return int(next(iter(rows))[0])
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM pictures"))
    finally:
        await conn.close()


async def ledger_sum(store: Store, account: Account) -> int:
    return sum(e.amount for e in await store.entries(account, limit=10_000))


# ---------------------------------------------------------------- conversations


async def test_append_then_load_returns_turns_oldest_first_with_images(store: Store) -> None:
    """Appended turns come back in order with their images, message ids, status and UTC time."""
    picture = pic("image/png", b"\x89PNG-bytes")
    ids = await store.append_turns(
        KEY,
        [
            turn("look", 5, author_id="u1", images=(picture,), message_ids=("m1", "m2")),
            turn("nice", 4, role="assistant", status="stopped"),
        ],
    )

    context = await store.load_context(KEY, 1000)

    assert [t.id for t in context] == ids
    assert ids[0] < ids[1]
    assert [(t.role, t.text, t.tokens, t.status) for t in context] == [
        ("user", "look", 5, "complete"),
        ("assistant", "nice", 4, "stopped"),
    ]
    assert context[0].images == (picture,)
    assert context[0].message_ids == ("m1", "m2")
    assert context[0].author_id == "u1"
    assert context[0].created_at is not None
    assert context[0].created_at.tzinfo is not None
    assert context[0].created_at.utcoffset() == timedelta(0)


async def test_append_is_all_or_none(store: Store) -> None:
    """A turn whose image cannot be stored makes the whole append fail and store nothing."""
    broken = StoredImage(None, b"x")  # type: ignore[arg-type]  # NOT NULL mime fails in the database
    with pytest.raises(StorageError):
        await store.append_turns(KEY, [turn("first", 1), turn("second", 1, images=(broken,))])

    assert await store.load_context(KEY, 1000) == []
    # Nothing is left half open: the next write goes through.
    await store.append_turns(KEY, [turn("third", 1)])
    assert [t.text for t in await store.load_context(KEY, 1000)] == ["third"]


async def test_context_keeps_newest_turns_within_budget(store: Store) -> None:
    """The newest turns that fit the budget are returned oldest first; older ones are dropped."""
    await store.append_turns(KEY, [turn(f"t{i}", 10) for i in range(10)])

    context = await store.load_context(KEY, 35)

    assert [t.text for t in context] == ["t7", "t8", "t9"]


async def test_context_stops_at_the_first_turn_that_does_not_fit(store: Store) -> None:
    """A large older turn ends the context even if smaller turns before it would fit."""
    await store.append_turns(KEY, [turn("small-old", 1), turn("huge", 100), turn("new", 5)])

    assert [t.text for t in await store.load_context(KEY, 50)] == ["new"]
    assert await store.load_context(KEY, 4) == []


async def test_context_respects_max_turns_and_conversation_boundaries(store: Store) -> None:
    """max_turns caps the count, and another owner's conversation in the same channel is separate."""
    await store.append_turns(KEY, [turn(f"k{i}", 1) for i in range(5)])
    await store.append_turns(OTHER, [turn("other", 1)])

    assert [t.text for t in await store.load_context(KEY, 100, max_turns=2)] == ["k3", "k4"]
    assert [t.text for t in await store.load_context(OTHER, 100)] == ["other"]
    assert await store.load_context(ConversationKey("discord", "1", "2"), 100) == []


async def test_replace_last_assistant_overwrites_in_place(store: Store) -> None:
    """Regenerating replaces the newest assistant turn (text and images) and keeps its position."""
    ids = await store.append_turns(
        KEY,
        [turn("q", 1), turn("a1", 2, role="assistant", images=(pic("image/png", b"old"),))],
    )
    new_image = pic("image/jpeg", b"new")

    replaced = await store.replace_last_assistant(KEY, turn("a2", 3, role="assistant", images=(new_image,)))

    context = await store.load_context(KEY, 100)
    assert replaced == ids[1]
    assert [(t.text, t.tokens, t.images) for t in context] == [("q", 1, ()), ("a2", 3, (new_image,))]


async def test_replace_last_assistant_appends_when_there_is_none(store: Store) -> None:
    """With no assistant turn yet, replace_last_assistant appends the turn."""
    await store.append_turns(KEY, [turn("q", 1)])

    new_id = await store.replace_last_assistant(KEY, turn("a", 1, role="assistant"))

    assert [(t.id, t.text) for t in await store.load_context(KEY, 100)][-1] == (new_id, "a")


async def test_reset_forgets_only_that_conversation(store: Store) -> None:
    """reset deletes a conversation's turns, returns the count, and leaves other conversations."""
    await store.append_turns(KEY, [turn("a", 1), turn("b", 1, images=(pic("image/png", b"p"),))])
    await store.append_turns(OTHER, [turn("c", 1)])

    assert await store.reset(KEY) == 2
    assert await store.load_context(KEY, 100) == []
    assert [t.text for t in await store.load_context(OTHER, 100)] == ["c"]
    assert await store.reset(KEY) == 0
    await store.append_turns(KEY, [turn("again", 1)])
    assert [t.text for t in await store.load_context(KEY, 100)] == ["again"]


async def test_prune_by_age(store: Store) -> None:
    """prune(older_than=) deletes turns created before the moment, in every conversation."""
    await store.append_turns(KEY, [turn("old", 1, created_at=EPOCH), turn("new", 1)])
    await store.append_turns(OTHER, [turn("old2", 1, created_at=EPOCH + timedelta(hours=1))])

    deleted = await store.prune(older_than=EPOCH + timedelta(days=1))

    assert deleted == 2
    assert [t.text for t in await store.load_context(KEY, 100)] == ["new"]
    assert await store.load_context(OTHER, 100) == []


async def test_prune_keeps_the_newest_per_conversation(store: Store) -> None:
    """prune(keep_last=n) keeps the newest n turns of each conversation."""
    await store.append_turns(KEY, [turn(f"k{i}", 1) for i in range(5)])
    await store.append_turns(OTHER, [turn(f"o{i}", 1) for i in range(2)])

    deleted = await store.prune(keep_last=2)

    assert deleted == 3
    assert [t.text for t in await store.load_context(KEY, 100)] == ["k3", "k4"]
    assert [t.text for t in await store.load_context(OTHER, 100)] == ["o0", "o1"]
    assert await store.prune() == 0


# ---------------------------------------------------------------- settings and meta


async def test_settings_round_trip_with_extra_and_inheritance(store: Store) -> None:
    """Settings come back equal, including None (inherit), () and nested extra JSON."""
    place = Place("discord", "guild", "chan")
    chosen = ChannelSettings(
        model="m-1",
        temperature=0.5,
        context_mode="user",
        allowed_image_models=(),
        auto_thread=False,
        extra={"limits": {"per_day": 3}, "tags": ["a", "b"]},
    )
    assert await store.get_settings(place) is None

    await store.put_settings(place, chosen)
    community = ChannelSettings(allowed_image_models=("x", "y"), allowed_chat_models=("c",))
    await store.put_settings(place.community, community)

    assert await store.get_settings(place) == chosen
    assert await store.get_settings(place.community) == community
    await store.put_settings(place, ChannelSettings(model="m-2"))
    assert await store.get_settings(place) == ChannelSettings(model="m-2")


async def test_settings_accept_any_mapping_as_extra(store: Store) -> None:
    """extra may be any Mapping (here a read-only proxy); it comes back as an equal dict."""
    place = Place("discord", "guild", "")
    await store.put_settings(place, ChannelSettings(extra=MappingProxyType({"k": 1})))

    stored = await store.get_settings(place)

    assert stored is not None
    assert dict(stored.extra) == {"k": 1}


async def test_meta_round_trip(store: Store) -> None:
    """Meta values are stored, overwritten and read back; unknown keys are None."""
    assert await store.get_meta("commands") is None
    await store.set_meta("commands", "hash-1")
    await store.set_meta("commands", "hash-2")
    assert await store.get_meta("commands") == "hash-2"


async def test_several_settings_come_back_in_the_order_asked_with_none_for_the_unset(store: Store) -> None:
    """get_settings_many: one answer per place asked, as get_settings would give it."""
    channel, other = Place("discord", "guild", "chan"), Place("discord", "guild", "other")
    await store.put_settings(channel, ChannelSettings(model="m-1"))
    await store.put_settings(channel.community, ChannelSettings(extra={"language": "tr"}))

    found = await store.get_settings_many([other, channel.community, channel, Place("telegram", "guild")])

    assert found == [None, ChannelSettings(extra={"language": "tr"}), ChannelSettings(model="m-1"), None]
    assert await store.get_settings_many([]) == []


async def test_several_meta_facts_in_one_read_leave_out_the_unset(store: Store) -> None:
    await store.set_meta("a", "1")
    await store.set_meta("b", "two")

    assert await store.get_meta_many(["b", "missing", "a"]) == {"a": "1", "b": "two"}
    assert await store.get_meta_many([]) == {}


# ---------------------------------------------------------------- credits


async def test_open_account_grants_once(store: Store) -> None:
    """The starting grant is given once and recorded as a ledger entry."""
    assert await store.balance(ALICE) is None

    assert await store.open_account(ALICE, starting_grant=500, reason="welcome") == 500
    assert await store.open_account(ALICE, starting_grant=500, reason="welcome") == 500

    entries = await store.entries(ALICE)
    assert [(e.kind, e.amount, e.balance_after, e.idempotency_key) for e in entries] == [
        ("grant", 500, 500, "open:telegram:alice")
    ]


async def test_open_account_with_zero_grant_creates_the_account(store: Store) -> None:
    """A grant of 0 still creates the account with balance 0."""
    assert await store.open_account(POOL, starting_grant=0, reason="pool") == 0
    assert await store.balance(POOL) == 0


async def test_apply_is_idempotent_and_reports_the_entry(store: Store) -> None:
    """apply adds a signed amount once per idempotency key and returns the entry it wrote."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")

    entry = await store.apply(
        ALICE, -30, kind="adjust", reason="fix", idempotency_key="adj-1", meta={"by": "admin"}
    )

    assert entry is not None
    assert (entry.kind, entry.amount, entry.balance_after, entry.meta) == ("adjust", -30, 70, {"by": "admin"})
    assert await store.apply(ALICE, -30, kind="adjust", reason="fix", idempotency_key="adj-1") is None
    assert await store.balance(ALICE) == 70
    assert await ledger_sum(store, ALICE) == 70


async def test_apply_below_zero_raises_and_changes_nothing(store: Store) -> None:
    """A debit larger than the balance raises InsufficientCredits with the figures; nothing changes."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")

    with pytest.raises(InsufficientCredits) as raised:
        await store.apply(ALICE, -101, kind="adjust", reason="too much", idempotency_key="k")

    assert (raised.value.balance, raised.value.needed) == (100, 101)
    assert await store.balance(ALICE) == 100
    assert len(await store.entries(ALICE)) == 1
    # The key was not used up by the failed attempt.
    assert await store.apply(ALICE, -100, kind="adjust", reason="ok", idempotency_key="k") is not None


async def test_entries_filter_by_kind_and_limit_newest_first(store: Store) -> None:
    """entries returns the newest first, limited, optionally of some kinds only."""
    await store.open_account(ALICE, starting_grant=10, reason="welcome")
    for i in range(3):
        await store.apply(ALICE, 1, kind="refund", reason=f"r{i}", idempotency_key=f"r{i}")

    assert [e.reason for e in await store.entries(ALICE, limit=2)] == ["r2", "r1"]
    assert [e.kind for e in await store.entries(ALICE, kinds=["grant"])] == ["grant"]
    assert await store.entries(ALICE, kinds=[]) == []


async def test_top_up_fills_to_the_cap_once_per_key(store: Store) -> None:
    """top_up adds at most up to the cap, and a key is one allowance even when nothing was added."""
    await store.open_account(ALICE, starting_grant=70, reason="welcome")

    assert await store.top_up(ALICE, 50, up_to=100, reason="daily", idempotency_key="day-1") == 30
    assert await store.top_up(ALICE, 50, up_to=100, reason="daily", idempotency_key="day-1") == 0
    assert await store.top_up(ALICE, 50, up_to=100, reason="daily", idempotency_key="day-2") == 0
    await store.apply(ALICE, -90, kind="adjust", reason="spend", idempotency_key="spend")
    assert await store.top_up(ALICE, 50, up_to=100, reason="daily", idempotency_key="day-3") == 50
    assert await store.balance(ALICE) == 60
    assert await ledger_sum(store, ALICE) == 60


async def test_held_sums_the_open_holds_of_an_account_and_of_one_spender(store: Store) -> None:
    pool, alice, bob = Account("discord", "pool:g"), Account("discord", "a"), Account("discord", "b")
    await store.open_account(pool, starting_grant=1000, reason="funded")
    assert await store.reserve("r1", pool, 100, purpose="chat", reason="x", spender=alice)
    assert await store.reserve("r2", pool, 200, purpose="chat", reason="x", spender=bob)
    assert await store.reserve("r3", pool, 40, purpose="chat", reason="x", spender=alice)
    await store.settle("r3", 10, reason="done")

    assert await store.held(pool) == 300
    assert await store.held(pool, spender=alice) == 100
    assert await store.held(alice) == 0


async def test_reserve_settle_keeps_the_charge_and_returns_the_rest(store: Store) -> None:
    """Settling keeps min(charged, amount), refunds the rest, and closes the reservation once."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")

    assert await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask", meta={"model": "m"})
    assert await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask")  # same id: no-op
    assert await store.balance(ALICE) == 60

    assert await store.settle("r1", 15, reason="answered", meta={"tokens": 9})
    assert not await store.settle("r1", 15, reason="again")
    assert not await store.release("r1", reason="late")

    reservation = await store.get_reservation("r1")
    assert reservation is not None
    assert (reservation.state, reservation.charged, reservation.amount) == ("settled", 15, 40)
    assert reservation.meta == {"model": "m", "tokens": 9}
    assert reservation.closed_at is not None
    assert await store.balance(ALICE) == 85
    entries = await store.entries(ALICE)
    assert [(e.kind, e.amount, e.idempotency_key) for e in entries[:2]] == [
        ("settle", 25, "settle:r1"),
        ("reserve", -40, "reserve:r1"),
    ]
    assert entries[0].meta == {"charged": 15, "tokens": 9}
    assert entries[0].reservation_id == "r1"
    assert await ledger_sum(store, ALICE) == 85


async def test_a_picture_is_stored_once_however_often_it_is_sent(store: Store, database_url: str) -> None:
    """The same picture in two turns of two conversations is one stored picture, loaded by both."""
    picture = pic("image/jpeg", b"\xff\xd8\xff-same", 640, 480)
    await store.append_turns(KEY, [turn("a", 1, images=(picture,)), turn("b", 1, images=(picture,))])
    await store.append_turns(OTHER, [turn("c", 1, images=(picture,))])

    assert await stored_pictures(database_url) == 1
    assert [t.images for t in await store.load_context(KEY, 100)] == [(picture,), (picture,)]
    assert [t.images for t in await store.load_context(OTHER, 100)] == [(picture,)]


async def test_keep_pictures_forgets_older_pictures_but_not_their_places(
    store: Store, database_url: str
) -> None:
    """With keep_pictures=2 only the newest two pictures keep their bytes; an older turn still
    says it had one (an empty StoredImage), and the forgotten bytes leave the database."""
    first, second, third = (pic("image/png", f"png-{n}".encode(), 10, 10) for n in range(3))
    await store.append_turns(KEY, [turn("one", 1, images=(first,))], keep_pictures=2)
    await store.append_turns(KEY, [turn("two", 1, images=(second,))], keep_pictures=2)
    await store.append_turns(KEY, [turn("three", 1, images=(third,))], keep_pictures=2)

    images = [t.images for t in await store.load_context(KEY, 100)]
    assert images == [(StoredImage("", b""),), (second,), (third,)]
    assert await stored_pictures(database_url) == 2


async def test_load_context_sends_bytes_of_the_newest_pictures_only(store: Store) -> None:
    """max_pictures=1: the newest picture comes with its bytes, older ones with size and hash only."""
    older, newer = pic("image/png", b"older", 30, 20), pic("image/jpeg", b"newer", 40, 50)
    await store.append_turns(KEY, [turn("old", 1, images=(older,)), turn("new", 1, images=(newer,))])

    context = await store.load_context(KEY, 100, max_pictures=1)

    assert [t.images for t in context] == [(dataclasses.replace(older, data=b""),), (newer,)]


async def test_reset_and_prune_delete_pictures_no_turn_uses(store: Store, database_url: str) -> None:
    """Forgetting turns forgets their pictures, except one another conversation still uses."""
    shared, own = pic("image/png", b"shared", 1, 1), pic("image/png", b"own", 1, 1)
    await store.append_turns(KEY, [turn("a", 1, images=(shared, own))])
    await store.append_turns(OTHER, [turn("b", 1, images=(shared,))])

    await store.reset(KEY)
    assert await stored_pictures(database_url) == 1
    await store.prune(keep_last=0)
    assert await stored_pictures(database_url) == 0


async def test_settle_above_the_reservation_takes_the_rest_from_the_balance(store: Store) -> None:
    """Charging more than reserved charges it all: the difference comes from the balance in the entry."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask")

    assert await store.settle("r1", 70, reason="long answer")

    reservation = await store.get_reservation("r1")
    assert reservation is not None
    assert reservation.charged == 70
    assert await store.balance(ALICE) == 30
    assert [(e.kind, e.amount) for e in await store.entries(ALICE, limit=1)] == [("settle", -30)]
    assert await ledger_sum(store, ALICE) == 30


async def test_settle_above_the_reservation_never_takes_the_balance_below_zero(store: Store) -> None:
    """An overrun larger than the balance takes the whole balance and no more."""
    await store.open_account(ALICE, starting_grant=50, reason="welcome")
    await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask")

    assert await store.settle("r1", 100, reason="long answer")

    reservation = await store.get_reservation("r1")
    assert reservation is not None
    assert reservation.charged == 50
    assert await store.balance(ALICE) == 0
    assert await ledger_sum(store, ALICE) == 0


async def test_release_returns_everything_once(store: Store) -> None:
    """release gives the whole amount back and closes the reservation; a later settle is refused."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 40, purpose="image", reason="draw")

    assert await store.release("r1", reason="failed")
    assert not await store.release("r1", reason="again")
    assert not await store.settle("r1", 10, reason="late")

    reservation = await store.get_reservation("r1")
    assert reservation is not None
    assert reservation.state == "released"
    assert await store.balance(ALICE) == 100
    assert await ledger_sum(store, ALICE) == 100


async def test_reserve_that_does_not_fit_changes_nothing(store: Store) -> None:
    """A reservation larger than the balance (or on a missing account) is refused without a trace."""
    await store.open_account(ALICE, starting_grant=10, reason="welcome")

    assert not await store.reserve("r1", ALICE, 11, purpose="chat", reason="ask")
    assert not await store.reserve("r2", Account("telegram", "nobody"), 1, purpose="chat", reason="ask")

    assert await store.get_reservation("r1") is None
    assert await store.balance(ALICE) == 10
    assert not await store.settle("missing", 1, reason="x")
    assert not await store.release("missing", reason="x")


async def test_annotate_reservation_merges_meta_while_open(store: Store) -> None:
    """annotate_reservation merges keys into an open reservation; closed or unknown ones are left alone."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 10, purpose="chat", reason="ask", meta={"model": "m"})

    await store.annotate_reservation("r1", {"usage": {"prompt_tokens": 3}})
    await store.annotate_reservation("missing", {"x": 1})
    await store.settle("r1", 4, reason="done")
    await store.annotate_reservation("r1", {"late": True})

    reservation = await store.get_reservation("r1")
    assert reservation is not None
    assert reservation.meta == {"model": "m", "usage": {"prompt_tokens": 3}}
    assert await store.get_reservation("missing") is None


async def test_negative_amounts_are_programming_errors(store: Store) -> None:
    """A negative starting grant, reservation or settled charge raises ValueError and changes nothing."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 10, purpose="chat", reason="ask")

    with pytest.raises(ValueError, match="negative"):
        await store.open_account(POOL, starting_grant=-1, reason="x")
    with pytest.raises(ValueError, match="negative"):
        await store.reserve("r2", ALICE, -5, purpose="chat", reason="ask")
    with pytest.raises(ValueError, match="negative"):
        await store.settle("r1", -1, reason="x")

    assert await store.balance(POOL) is None
    assert await store.balance(ALICE) == 90


async def test_open_reservations_lists_only_open_ones_oldest_first(store: Store) -> None:
    """open_reservations returns unsettled reservations (with their spender) oldest first."""
    await store.open_account(POOL, starting_grant=100, reason="pool")
    for rid in ("a", "b", "c"):
        await store.reserve(rid, POOL, 10, purpose="chat", reason="ask", spender=ALICE)
    await store.settle("b", 5, reason="done")

    found = await store.open_reservations()

    assert [r.id for r in found] == ["a", "c"]
    assert found[0].spender == ALICE
    assert found[0].account == POOL


async def test_charged_between_and_settled_reservations_with_spender(store: Store) -> None:
    """Charges sum over settled reservations in [start, end), per pool and optionally per spender."""
    bob = Account("telegram", "bob")
    await store.open_account(POOL, starting_grant=1000, reason="pool")
    await store.reserve("a1", POOL, 100, purpose="chat", reason="ask", spender=ALICE)
    await store.reserve("b1", POOL, 100, purpose="chat", reason="ask", spender=bob)
    await store.reserve("a2", POOL, 100, purpose="chat", reason="ask", spender=ALICE)
    await store.settle("a1", 30, reason="done")
    await store.settle("b1", 20, reason="done")
    await store.release("a2", reason="failed")
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)

    assert await store.charged_between(POOL, start, end) == 50
    assert await store.charged_between(POOL, start, end, spender=ALICE) == 30
    assert await store.charged_between(POOL, end, end + timedelta(hours=1)) == 0
    settled = await store.settled_reservations(POOL)
    assert [r.id for r in settled] == ["b1", "a1"]
    assert [r.id for r in await store.settled_reservations(POOL, spender=bob)] == ["b1"]
    assert [r.id for r in await store.settled_reservations(POOL, limit=1)] == ["b1"]


async def test_spent_between_sums_every_account_settled_in_the_window(store: Store) -> None:
    """The owner's spending: charges settled in [start, end) over every account; releases count nothing."""
    bob = Account("discord", "bob")
    await store.open_account(ALICE, starting_grant=1000, reason="welcome")
    await store.open_account(bob, starting_grant=1000, reason="welcome")
    await store.reserve("a1", ALICE, 100, purpose="chat", reason="ask")
    await store.reserve("b1", bob, 100, purpose="image", reason="draw")
    await store.reserve("a2", ALICE, 100, purpose="chat", reason="ask")
    await store.reserve("a3", ALICE, 100, purpose="chat", reason="ask")
    await store.settle("a1", 30, reason="done")
    await store.settle("b1", 100, reason="done")
    await store.release("a2", reason="failed")
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)

    assert 130 == await store.spent_between(start, end)
    assert 0 == await store.spent_between(end, end + timedelta(hours=1))


async def test_concurrent_reservations_never_overdraw(store: Store) -> None:
    """100 concurrent reservations against a balance covering 7 succeed exactly 7 times."""
    await store.open_account(ALICE, starting_grant=70, reason="welcome")

    results = await asyncio.gather(
        *(store.reserve(f"r{i}", ALICE, 10, purpose="chat", reason="ask") for i in range(100))
    )

    assert sum(results) == 7
    assert await store.balance(ALICE) == 0
    assert await ledger_sum(store, ALICE) == 0
    assert len(await store.open_reservations()) == 7


async def test_concurrent_settle_and_release_close_once(store: Store) -> None:
    """Racing settle and release on one reservation: exactly one wins and the ledger stays whole."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask")

    results = await asyncio.gather(
        *(store.settle("r1", 10, reason="s") for _ in range(5)),
        *(store.release("r1", reason="r") for _ in range(5)),
    )

    assert sum(results) == 1
    assert await ledger_sum(store, ALICE) == await store.balance(ALICE)


# ---------------------------------------------------------------- bot-wide limits

DAY = Counter("spending:day:2026-12-02", 70)
MONTH = Counter("spending:month:2026-12", 1000)


async def test_concurrent_reservations_never_pass_a_spending_limit(store: Store) -> None:
    """100 members reserving at once against a daily limit covering 7 holds: exactly 7 succeed."""
    members = [Account("telegram", f"m{i}") for i in range(100)]
    for member in members:
        await store.open_account(member, starting_grant=100, reason="welcome")

    async def reserve(i: int) -> bool:
        try:
            return await store.reserve(
                f"r{i}", members[i], 10, purpose="chat", reason="ask", spending=(DAY, MONTH)
            )
        except SpendingLimitReached:
            return False

    results = await asyncio.gather(*(reserve(i) for i in range(100)))

    assert sum(results) == 7
    assert await store.counter(DAY.key) == 70
    assert await store.counter(MONTH.key) == 70
    assert len(await store.open_reservations()) == 7
    # A refused member was not charged: the refusal changed nothing.
    assert sum([await store.balance(m) or 0 for m in members]) == 100 * 100 - 70


async def test_a_refused_spending_limit_names_its_counter_and_changes_nothing(store: Store) -> None:
    """The counter that would pass its limit is named; balance, counters and reservations stay."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 60, purpose="chat", reason="ask", spending=(MONTH, DAY))

    with pytest.raises(SpendingLimitReached) as refused:
        await store.reserve("r2", ALICE, 20, purpose="chat", reason="ask", spending=(MONTH, DAY))

    assert DAY.key == refused.value.key
    assert 70 == refused.value.limit
    assert await store.balance(ALICE) == 40
    assert await store.counter(MONTH.key) == 60
    assert await store.get_reservation("r2") is None


async def test_settling_gives_back_to_the_spending_counters_what_was_not_charged(store: Store) -> None:
    """A counter holds charged + still held: settle returns the unused rest, release all of it."""
    await store.open_account(ALICE, starting_grant=100, reason="welcome")
    await store.reserve("r1", ALICE, 40, purpose="chat", reason="ask", spending=(DAY,))
    await store.reserve("r2", ALICE, 30, purpose="chat", reason="ask", spending=(DAY,))

    await store.settle("r1", 15, reason="done")
    await store.release("r2", reason="failed")
    await store.settle("r1", 15, reason="again")  # closed already: nothing moves twice

    assert await store.counter(DAY.key) == 15
    assert await store.reserve("r3", ALICE, 55, purpose="chat", reason="ask", spending=(DAY,))
    assert await store.counter("never-moved") == 0


async def test_concurrent_new_accounts_get_at_most_the_daily_number_of_grants(store: Store) -> None:
    """20 newcomers at once under a cap of 3 grants: 3 get the grant, the rest open at 0, marked."""
    grants = Counter("grants:day:2026-12-02", 3)
    members = [Account("telegram", f"new{i}") for i in range(20)]

    balances = await asyncio.gather(
        *(store.open_account(m, starting_grant=25, reason="starting grant", grants=grants) for m in members)
    )

    assert sorted(balances) == [0] * 17 + [25] * 3
    assert await store.counter(grants.key) == 3
    withheld = [m for m, b in zip(members, balances, strict=True) if b == 0]
    entries = await store.entries(withheld[0])
    assert [(e.kind, e.amount, e.meta.get("grant_withheld")) for e in entries] == [("grant", 0, True)]
    # Opening again changes nothing and counts nothing.
    assert await store.open_account(members[0], starting_grant=25, reason="again", grants=grants) in (0, 25)
    assert await store.counter(grants.key) == 3


async def test_claim_once_is_true_for_exactly_one_caller(store: Store) -> None:
    """Many concurrent claims of one key: one True; another key is claimed independently."""
    results = await asyncio.gather(*(store.claim_once("alert:day:2026-12-02") for _ in range(20)))

    assert sum(results) == 1
    assert await store.claim_once("alert:month:2026-12")
    assert not await store.claim_once("alert:day:2026-12-02")


# ---------------------------------------------------------------- image jobs


def make_job(job_id: str, **kw: object) -> ImageJob:
    return ImageJob(
        id=job_id,
        requester=ALICE,
        place=Place("telegram", "100", "7"),
        params={"prompt": "a cat", "size": [512, 512]},
        **kw,  # type: ignore[arg-type]
    )


async def test_image_jobs_create_save_get(store: Store) -> None:
    """A job is stored, every field is overwritten by save_job, and get_job reads it back."""
    job = make_job("j1", reservation_id="r1", deadline_at=EPOCH + timedelta(hours=1))
    await store.create_job(job)

    stored = await store.get_job("j1")
    assert stored is not None
    assert dataclasses.replace(stored, created_at=None, updated_at=None) == job
    assert stored.created_at is not None

    updated = dataclasses.replace(
        stored,
        state="submitted",
        jobid="up-1",
        signature="sig",
        attempts=2,
        cost=1234,
        progress_message="msg:1",
        result_message="msg:2",
        error="slow",
        params={"prompt": "a dog"},
        deadline_at=None,
    )
    await store.save_job(updated)

    again = await store.get_job("j1")
    assert again is not None
    assert dataclasses.replace(again, updated_at=None) == dataclasses.replace(updated, updated_at=None)
    assert await store.get_job("nope") is None


async def test_save_job_of_unknown_job_is_an_error(store: Store) -> None:
    """Saving a job that was never created raises StorageError."""
    with pytest.raises(StorageError):
        await store.save_job(make_job("ghost"))


async def test_unfinished_jobs_oldest_first(store: Store) -> None:
    """unfinished_jobs returns queued and submitted jobs, oldest first."""
    await store.create_job(make_job("new", created_at=EPOCH + timedelta(minutes=2)))
    await store.create_job(make_job("old", created_at=EPOCH, state="submitted"))
    await store.create_job(make_job("done", created_at=EPOCH + timedelta(minutes=1), state="done"))

    assert [j.id for j in await store.unfinished_jobs()] == ["old", "new"]


# ---------------------------------------------------------------- restart


async def test_reopening_keeps_everything(database_url: str) -> None:
    """Closing and reopening the same database keeps turns, settings, meta, credits and jobs."""
    first = await open_store(database_url)
    try:
        await first.append_turns(KEY, [turn("remember me", 3, images=(pic("image/png", b"p"),))])
        await first.put_settings(Place("telegram", "100"), ChannelSettings(model="m"))
        await first.set_meta("k", "v")
        await first.open_account(ALICE, starting_grant=50, reason="welcome")
        await first.reserve("r1", ALICE, 20, purpose="chat", reason="ask")
        await first.create_job(make_job("j1"))
    finally:
        await first.close()

    second = await open_store(database_url)
    try:
        context = await second.load_context(KEY, 100)
        assert [(t.text, t.images) for t in context] == [("remember me", (pic("image/png", b"p"),))]
        assert await second.get_settings(Place("telegram", "100")) == ChannelSettings(model="m")
        assert await second.get_meta("k") == "v"
        assert await second.balance(ALICE) == 30
        assert [r.id for r in await second.open_reservations()] == ["r1"]
        assert [j.id for j in await second.unfinished_jobs()] == ["j1"]
        # New turns continue after the old ones.
        await second.append_turns(KEY, [turn("and me", 1)])
        assert [t.text for t in await second.load_context(KEY, 100)] == ["remember me", "and me"]
    finally:
        await second.close()


async def test_two_stores_on_one_database_share_credits_safely(database_url: str) -> None:
    """Two stores (as two bot processes would) racing for one balance overdraw nothing."""
    first, second = await open_store(database_url), await open_store(database_url)
    try:
        await first.open_account(ALICE, starting_grant=70, reason="welcome")
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).reserve(f"r{i}", ALICE, 10, purpose="chat", reason="ask")
                for i in range(100)
            )
        )
        assert sum(results) == 7
        assert await second.balance(ALICE) == 0
        assert await ledger_sum(first, ALICE) == 0
    finally:
        await first.close()
        await second.close()


# ---------------------------------------------------------------- access rules and channel switches


async def test_access_rules_are_stored_replaced_and_deleted(store: Store) -> None:
    """An override per (kind, subject): a new verdict replaces the old, delete forgets it."""
    await store.put_access_rule(AccessRule("user", "telegram:1", "allow", set_by="telegram:9"))
    await store.put_access_rule(AccessRule("chat", "discord:55", "block"))
    await store.put_access_rule(AccessRule("user", "telegram:1", "block", set_by="cli:owner"))

    rules = {(r.kind, r.subject): r for r in await store.access_rules()}
    assert {("user", "telegram:1"), ("chat", "discord:55")} == set(rules)
    assert "block" == rules[("user", "telegram:1")].verdict
    assert "cli:owner" == rules[("user", "telegram:1")].set_by
    updated = rules[("chat", "discord:55")].updated_at
    assert updated is not None and updated.utcoffset() == timedelta(0)

    assert await store.delete_access_rule("user", "telegram:1")
    assert not await store.delete_access_rule("user", "telegram:1")
    assert [("chat", "discord:55")] == [(r.kind, r.subject) for r in await store.access_rules()]


async def test_access_rule_kinds_are_checked_by_the_database(store: Store) -> None:
    """A rule of an unknown kind or verdict never reaches the table."""
    with pytest.raises(StorageError):
        await store.put_access_rule(AccessRule("guild", "discord:1", "allow"))  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        await store.put_access_rule(AccessRule("user", "discord:1", "maybe"))  # type: ignore[arg-type]
    assert [] == await store.access_rules()


async def test_channel_switches_round_trip_and_all_off_forgets_the_row(store: Store) -> None:
    """Switches come back per place; setting them all off removes the place."""
    here, there = Place("discord", "1", "2"), Place("telegram", "-100")
    await store.put_channel_switches(here, ChannelSwitches(chat_off=True, reply_all=True))
    await store.put_channel_switches(there, ChannelSwitches(images_off=True))
    assert {
        here: ChannelSwitches(chat_off=True, reply_all=True),
        there: ChannelSwitches(images_off=True),
    } == await store.all_channel_switches()

    await store.put_channel_switches(here, ChannelSwitches())
    assert {there: ChannelSwitches(images_off=True)} == await store.all_channel_switches()
