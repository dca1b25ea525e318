"""How much and how fast, end to end on Telegram: spending limits, owner alerts, MiniToolAI refusing
the owner, rate limits, the daily grant cap, allowed models and private balances."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.credits.texts import GRANT_WITHHELD
from bot.ports import Account
from storage import open_store
from tests.e2e.telegram_harness import CHAT_PATH, running_bot
from tests.fakes.minitoolai import ChatScript, ImageScript
from tests.fakes.telegram import RecordedRequest
from tests.integration.conftest import database_url  # noqa: F401  (SQLite and PostgreSQL)

OWNER_ID = 10_001  # the fake's first user of each run
UNREACHABLE_OWNER = 99_999_999  # never opened a private chat with the bot
ADMINS = f"telegram:{OWNER_ID},telegram:{UNREACHABLE_OWNER}"
MICRO = 1_000_000
LIMIT_SENTENCE = "reached the daily spending limit its owner set"
ALERT_SENTENCE = "reached its daily spending limit"
TOP_UP = "The bot's owner needs to top up"


def _sent_to(chat_id: int, needle: str) -> Callable[[RecordedRequest], bool]:
    return lambda r: (
        r.method == "sendMessage"
        and r.ok
        and r.params.get("chat_id") == chat_id
        and needle in r.params["text"]
    )


def _count(requests: list[RecordedRequest], needle: str, chat_id: int | None = None) -> int:
    return sum(
        1
        for r in requests
        if r.method == "sendMessage"
        and r.ok
        and needle in str(r.params.get("text"))
        and (chat_id is None or r.params.get("chat_id") == chat_id)
    )


def _dollars(micro: int) -> Decimal:
    return Decimal(micro) / MICRO


async def test_the_daily_limit_holds_under_100_concurrent_requests(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    """100 members ask at once under a limit that fits 7 more worst cases: exactly 7 reach MiniToolAI,
    93 read the limit sentence, nothing more is spent than the limit, and the owner is alerted once."""
    # A first run measures what one such request holds and costs.
    async with running_bot(tmp_path, database_url=database_url, bot_admin_ids=ADMINS) as h:
        probe = h.tg.user("Probe")
        assert OWNER_ID == probe["id"]
        h.tg.user_message(h.tg.private_chat(probe), probe, "hi")
        await h.answered(probe["id"])
    store = await open_store(database_url)
    try:
        (measured,) = await store.settled_reservations(Account("telegram", str(OWNER_ID)))
    finally:
        await store.close()
    worst, spent = measured.amount, measured.charged or 0
    limit = spent + 7 * worst + worst // 2

    async with running_bot(
        tmp_path, database_url=database_url, bot_admin_ids=ADMINS, spending_limit_daily_usd=_dollars(limit)
    ) as h:
        owner = h.tg.user("Owner")
        assert OWNER_ID == owner["id"]
        h.tg.private_chat(owner)
        gate = asyncio.Event()  # the 7 accepted answers wait upstream until every request is decided
        h.ai.chat_scripts.extend(ChatScript(tokens=["fine"], wait_event=gate) for _ in range(100))
        members = [h.tg.user(f"Member {i}") for i in range(100)]
        for member in members:
            h.tg.user_message(h.tg.private_chat(member), member, "hi")

        await h.tg.wait_for(lambda r: _count(h.tg.requests, LIMIT_SENTENCE) >= 93, 60)
        await asyncio.wait_for(h.ai.wait_requests(CHAT_PATH, 7), 30)
        refused, reached = _count(h.tg.requests, LIMIT_SENTENCE), len(h.chat_requests())
        gate.set()
        for member in members:
            if _count(h.tg.requests, LIMIT_SENTENCE, member["id"]) == 0:
                await h.answered(member["id"], within=30)
        alerts = _count(h.tg.requests, ALERT_SENTENCE, OWNER_ID)
        alert_text = next(t for t in h.bot_texts(OWNER_ID) if ALERT_SENTENCE in t)

    assert (93, 7) == (refused, reached)
    assert 1 == alerts
    assert "SPENDING_LIMIT_DAILY_USD" in alert_text
    store = await open_store(database_url)
    try:
        now = datetime.now(UTC)
        day = (now - timedelta(days=1), now + timedelta(days=1))
        charged = [await store.charged_between(Account("telegram", str(m["id"])), *day) for m in members]
        balances = [await store.balance(Account("telegram", str(m["id"]))) for m in members]
    finally:
        await store.close()
    assert spent + sum(charged) <= limit
    assert 7 == sum(1 for c in charged if c > 0)
    assert 93 == balances.count(5 * MICRO)  # the refused were charged nothing


async def test_minitoolai_refusing_the_owner_tells_members_to_wait_for_a_top_up(tmp_path: Path) -> None:
    """402 from MiniToolAI: each member reads that the owner needs to top up, nothing is charged,
    and the owner gets one private alert however many members asked."""
    async with running_bot(tmp_path, bot_admin_ids=ADMINS) as h:
        owner = h.tg.user("Owner")
        h.tg.private_chat(owner)
        h.ai.fail_next(402, {"error": {"message": "Insufficient balance"}}, times=3, path=CHAT_PATH)
        members = [h.tg.user(f"Member {i}") for i in range(3)]
        for member in members:
            h.tg.user_message(h.tg.private_chat(member), member, "hello?")
            await h.tg.wait_for(_sent_to(member["id"], TOP_UP))
        await h.tg.wait_for(_sent_to(OWNER_ID, "balance is empty"))
        alerts = _count(h.tg.requests, "balance is empty", OWNER_ID)

        # After the top-up the bot answers again and charges as usual.
        h.tg.user_message(h.tg.private_chat(members[0]), members[0], "and now?")
        await h.answered(members[0]["id"])

    assert 1 == alerts
    assert 4 == len(h.chat_requests())
    store = await open_store(h.settings.database_url)
    try:
        accounts = [Account("telegram", str(m["id"])) for m in members]
        settled = [len(await store.settled_reservations(a)) for a in accounts]
        balances = [await store.balance(a) for a in accounts]
    finally:
        await store.close()
    assert [1, 0, 0] == settled  # the answer after the top-up; the three refusals charged nothing
    assert [5 * MICRO, 5 * MICRO] == balances[1:]


async def test_messages_over_the_per_minute_limit_are_asked_to_wait(tmp_path: Path) -> None:
    """USER_MESSAGES_PER_MINUTE=2: the third message gets "please wait N seconds" and goes nowhere;
    another member is not affected."""
    async with running_bot(tmp_path, user_messages_per_minute=2) as h:
        alice, bob = h.tg.user("Alice"), h.tg.user("Bob")
        chat = h.tg.private_chat(alice)
        for text in ("one", "two"):
            start = len(h.tg.requests)
            h.tg.user_message(chat, alice, text)
            await h.answered(alice["id"], start=start)
        h.tg.user_message(chat, alice, "three")
        refusal = await h.tg.wait_for(_sent_to(alice["id"], "Please try again in "))
        h.tg.user_message(h.tg.private_chat(bob), bob, "hi")
        await h.answered(bob["id"])

    assert 3 == len(h.chat_requests())
    assert "2 messages a minute" in refusal.params["text"]


async def test_pictures_over_the_hourly_limit_are_asked_to_wait(tmp_path: Path) -> None:
    """USER_IMAGES_PER_HOUR=1: the second /imagine of the hour is refused before any job is sent."""
    async with running_bot(tmp_path, user_images_per_hour=1) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/imagine a red fox")
        await h.tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok, 10)
        h.tg.user_message(chat, alice, "/imagine a blue fox")
        refusal = await h.tg.wait_for(_sent_to(alice["id"], "Please try again in "))

    assert 1 == len(h.ai.image_jobs())
    assert "1 picture an hour" in refusal.params["text"]


async def test_newcomers_past_the_daily_grant_cap_start_at_zero_and_are_told(tmp_path: Path) -> None:
    """NEW_USER_GRANTS_PER_DAY=2: the third newcomer gets no grant, is told why, and nothing goes upstream."""
    async with running_bot(tmp_path, new_user_grants_per_day=2) as h:
        newcomers = [h.tg.user(f"New {i}") for i in range(3)]
        for person in newcomers[:2]:
            h.tg.user_message(h.tg.private_chat(person), person, "hi")
            await h.answered(person["id"])
        late = newcomers[2]
        h.tg.user_message(h.tg.private_chat(late), late, "hi")
        refusal = await h.tg.wait_for(_sent_to(late["id"], GRANT_WITHHELD))

    assert 2 == len(h.chat_requests())
    assert "your balance is $0.00" in refusal.params["text"]


async def test_a_group_restricts_its_chat_and_image_models(tmp_path: Path) -> None:
    """An admin's /chatmodels and /imagemodels hold: members answer with an allowed model and cannot
    ask /imagine --model for another one; members cannot change the lists."""
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Thrifty")
        admin, member = h.tg.user("Admin", "admin"), h.tg.user("Member", "member")
        h.tg.make_admin(group, admin)
        h.tg.user_message(group, member, "/chatmodels gpt-4o")
        await h.tg.wait_for(_sent_to(group["id"], "Only admins"))
        h.tg.user_message(group, admin, "/chatmodels gpt-4.1-nano, gpt-4.1-mini")
        await h.tg.wait_for(_sent_to(group["id"], "Chat models allowed here: gpt-4.1-nano, gpt-4.1-mini"))
        h.tg.user_message(group, admin, "/imagemodels dreamshaper")
        await h.tg.wait_for(_sent_to(group["id"], "Image models allowed here: dreamshaper"))

        h.tg.user_message(group, member, "@minitoolai_bot which model?")
        await h.answered(group["id"])
        h.tg.user_message(group, member, "/model gpt-4o")
        await h.tg.wait_for(_sent_to(group["id"], "not allowed here"))
        h.tg.user_message(group, member, "/imagine a fox --model juggernaut")
        refusal = await h.tg.wait_for(_sent_to(group["id"], "The image model juggernaut is not allowed"))

    assert ["gpt-4.1-nano"] == [body["model"] for body in h.chat_requests()]
    assert [] == h.ai.image_jobs()
    assert "dreamshaper" in refusal.params["text"]


async def test_a_refusal_for_credit_in_a_group_shows_no_balance(tmp_path: Path) -> None:
    """Out of credit in a group: the group reads one short sentence; the balance goes to the member's
    private chat when there is one, and nowhere public when there is none."""
    async with running_bot(tmp_path, grant="0") as h:
        group = h.tg.supergroup("Public")
        known, stranger = h.tg.user("Known", "known"), h.tg.user("Stranger", "stranger")
        h.tg.private_chat(known)  # opened a private chat with the bot once
        h.tg.user_message(group, known, "@minitoolai_bot hello")
        await h.tg.wait_for(_sent_to(group["id"], "I sent you the details in a private message"))
        await h.tg.wait_for(_sent_to(known["id"], "your balance is $0.00"))
        h.tg.user_message(group, stranger, "@minitoolai_bot hello")
        await h.tg.wait_for(_sent_to(group["id"], "Open a private chat with me"))

    public = h.bot_texts(group["id"])
    assert 2 == len(public)
    assert all("balance is" not in text and "$" not in text for text in public)
    assert [] == h.chat_requests()


async def test_a_picture_refused_by_the_limit_is_never_made_even_after_a_restart(tmp_path: Path) -> None:
    """/imagine past the daily limit: the member reads the limit sentence, and the refused job is
    cancelled, so the next start does not run it."""
    tiny = Decimal("0.000001")
    async with running_bot(tmp_path, spending_limit_daily_usd=tiny) as h:
        alice = h.tg.user("Alice")
        h.tg.user_message(h.tg.private_chat(alice), alice, "/imagine a red fox")
        await h.tg.wait_for(_sent_to(alice["id"], LIMIT_SENTENCE))
    async with running_bot(tmp_path) as h:
        bob = h.tg.user("Bob")
        h.tg.user_message(h.tg.private_chat(bob), bob, "/imagine a blue fox")
        await h.tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok, 10)

    assert ["a blue fox"] == [job.prompt for job in h.ai.image_jobs()]


async def test_minitoolai_refusing_a_picture_tells_the_member_and_alerts_the_owner(tmp_path: Path) -> None:
    """402 when submitting a picture: the member reads that the owner needs to top up; one owner alert."""
    async with running_bot(tmp_path, bot_admin_ids=ADMINS) as h:
        owner = h.tg.user("Owner")
        h.tg.private_chat(owner)
        alice = h.tg.user("Alice")
        h.ai.image_scripts.extend([ImageScript(http_status=402), ImageScript(http_status=402)])
        for prompt in ("a fox", "a cat"):
            start = len(h.tg.requests)
            h.tg.user_message(h.tg.private_chat(alice), alice, f"/imagine {prompt}")
            await h.tg.wait_for(
                lambda r: r.ok and "needs to top up" in str(r.params.get("text")), start=start
            )
        await h.tg.wait_for(_sent_to(OWNER_ID, "balance is empty"))
        alerts = _count(h.tg.requests, "balance is empty", OWNER_ID)

    assert 1 == alerts
    assert [] == h.ai.image_jobs()
