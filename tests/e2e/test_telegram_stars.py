"""Members top up their credit with Telegram Stars, end to end through python-telegram-bot.

The real bot (its composition root, or for a blocking owner hook the same parts assembled here)
against the fake Bot API: /topup, the invoice, the pre-checkout answer, the successful_payment,
refunds by the owner. After every step the member's ledger sums to their balance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

import storage
from adapters.telegram import TelegramAdapter, TelegramConfig
from bot.__main__ import build_core, serve
from bot.chat.tokens import TokenCounter
from bot.minitoolai.client import MiniToolAIClient
from bot.payments import texts
from bot.payments.service import Allowed
from bot.ports import Account
from bot.settings import Settings
from tests.e2e.telegram_harness import SCALE, TOKEN, _started, free_port, running_bot
from tests.e2e.test_console import bot_env, run_bot, start_bot
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI
from tests.fakes.telegram import FakeTelegram, RecordedRequest
from tests.fakes.telegram_payments import FakeInvoice, PaymentResult
from tests.integration.conftest import database_url  # noqa: F401  (the SQLite / PostgreSQL fixture)

JSON = dict[str, Any]
STARS: dict[str, Any] = {"stars_packs": "50,100", "stars_usd_per_star": "0.013"}
GRANT = 250_000  # the harness's starting grant below, in micro-dollars
CREDIT_50 = 650_000  # 50 Stars at $0.013
OWNER_ID = 10_001  # the fake numbers users from 10001: the first one made is the owner


def sent_to(chat_id: int, needle: str, method: str = "sendMessage") -> Callable[[RecordedRequest], bool]:
    return lambda r: (
        r.ok and r.method == method and r.params.get("chat_id") == chat_id and needle in str(r.params)
    )


async def invoice_for(tg: FakeTelegram, user: JSON, stars: int = 50) -> FakeInvoice:
    """/topup in the member's private chat, then the pack's button: the invoice the bot sent."""
    chat_id = int(user["id"])
    mark = len(tg.requests)
    tg.user_message(tg.private_chat(user), user, "/topup")
    menu = await tg.wait_for(sent_to(chat_id, "topup:"), start=mark)
    tg.callback_query(user, (chat_id, menu.result["message_id"]), f"topup:{stars}")
    await tg.wait_for(sent_to(chat_id, "XTR", "sendInvoice"), start=mark)
    return tg.invoices_in(chat_id)[-1]


async def buy(tg: FakeTelegram, user: JSON, stars: int = 50) -> PaymentResult:
    """The whole purchase, up to the member's confirmation."""
    invoice = await invoice_for(tg, user, stars)
    mark = len(tg.requests)
    paid = await tg.pay(user, invoice)
    assert paid.ok, paid.error_message
    await tg.wait_for(sent_to(int(user["id"]), "Thank you"), start=mark)
    return paid


async def ledger(url: str, user: JSON) -> tuple[int, int, list[str]]:
    """The member's balance, the sum of their ledger entries, and the entries' kinds (oldest first)."""
    store = await storage.open_store(url)
    try:
        account = Account("telegram", str(user["id"]))
        entries = await store.entries(account, limit=10_000)
        return (
            await store.balance(account) or 0,
            sum(e.amount for e in entries),
            [e.kind for e in entries][::-1],
        )
    finally:
        await store.close()


async def assert_exact(url: str, user: JSON, balance: int) -> None:
    stored, summed, _ = await ledger(url, user)
    assert (balance, balance) == (stored, summed)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


# ---------------------------------------------------------------- offering


async def test_topup_offers_the_packs_and_sends_a_star_invoice_made_for_the_member(tmp_path: Path) -> None:
    """Private chat: the packs as buttons, then an XTR invoice with an empty provider token and a signed payload."""
    async with running_bot(tmp_path, grant="0.25", **STARS) as h:
        alice = h.tg.user("Alice", "alice")
        invoice = await invoice_for(h.tg, alice)
        menu = h.tg.messages(alice["id"])[1]
        sent = h.tg.calls("sendInvoice")[-1]

    buttons = [b["text"] for row in (menu.reply_markup or {})["inline_keyboard"] for b in row]
    assert ["50 ⭐ → $0.6500", "100 ⭐ → $1.30"] == buttons
    assert "Your balance: $0.25" in (menu.text or "")
    assert ("XTR", 50) == (invoice.currency, invoice.total)
    assert "Credit: $0.6500" == invoice.title
    assert [{"label": "Credit: $0.6500", "amount": 50}] == sent.params["prices"]
    assert not sent.params.get("provider_token")
    assert f".telegram.{alice['id']}." in invoice.payload
    assert TOKEN.split(":")[1] not in invoice.payload


async def test_with_credits_per_dollar_the_packs_are_shown_in_credits(tmp_path: Path) -> None:
    """CREDITS_PER_DOLLAR=1000: buttons, invoice and confirmation speak credits, as everywhere else."""
    async with running_bot(tmp_path, grant="0", credits_per_dollar=1000, **STARS) as h:
        alice = h.tg.user("Alice")
        invoice = await invoice_for(h.tg, alice)
        await buy(h.tg, alice)
        menu = h.tg.messages(alice["id"])[1]

    buttons = [b["text"] for row in (menu.reply_markup or {})["inline_keyboard"] for b in row]
    assert ["50 ⭐ → 650 credits", "100 ⭐ → 1,300 credits"] == buttons
    assert "Credit: 650 credits" == invoice.title
    assert any("650 credits added for 50 ⭐" in text for text in h.bot_texts(alice["id"]))


async def test_topup_in_a_group_points_to_the_private_chat(tmp_path: Path) -> None:
    """In a group no invoice is sent: a reply with a button opening the private chat at /start topup."""
    async with running_bot(tmp_path, **STARS) as h:
        alice = h.tg.user("Alice")
        group = h.tg.supergroup("Friends")
        h.tg.user_message(group, alice, "/topup")
        hint = await h.tg.wait_for(sent_to(group["id"], "private chat"))
        h.tg.user_message(h.tg.private_chat(alice), alice, "/start topup")
        await h.tg.wait_for(sent_to(alice["id"], "topup:50"))

    assert "https://t.me/minitoolai_bot?start=topup" in str(hint.params["reply_markup"])
    assert [] == h.tg.calls("sendInvoice")


async def test_topup_without_packs_says_it_is_not_offered(tmp_path: Path) -> None:
    """STARS_PACKS empty: /topup answers that buying is not offered, and the menu has no /topup."""
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice")
        h.tg.user_message(h.tg.private_chat(alice), alice, "/topup")
        await h.tg.wait_for(sent_to(alice["id"], texts.CLOSED))
        menu = [c["command"] for commands in h.tg.commands.values() for c in commands]

    assert "topup" not in menu


# ---------------------------------------------------------------- paying


async def test_a_purchase_credits_once_even_when_successful_payment_is_delivered_twice(
    tmp_path: Path,
    database_url: str,  # noqa: F811
) -> None:
    """Paid once, delivered twice: one credit, one confirmation; /usage lists it; the ledger sums to the balance."""
    async with running_bot(tmp_path, grant="0.25", database_url=database_url, **STARS) as h:
        alice = h.tg.user("Alice")
        paid = await buy(h.tg, alice)
        await assert_exact(database_url, alice, GRANT + CREDIT_50)
        assert paid.update is not None
        again = h.tg.repeat_update(paid.update)
        mark = len(h.tg.requests)
        h.tg.user_message(h.tg.private_chat(alice), alice, "/usage")
        usage = await h.tg.wait_for(sent_to(alice["id"], "Telegram Stars purchases"), start=mark)
        # The repeat was delivered (with /usage at the latest); stopping the bot waits for its handler.
        delivered = [u["update_id"] for r in h.tg.calls("getUpdates") if r.ok for u in r.result]
        assert again["update_id"] in delivered

    balance, summed, kinds = await ledger(database_url, alice)
    assert (GRANT + CREDIT_50, GRANT + CREDIT_50) == (balance, summed)
    assert ["grant", "purchase"] == kinds
    confirmations = [r for r in h.tg.requests if sent_to(alice["id"], "Thank you")(r)]
    assert 1 == len(confirmations)
    assert "Your balance: $0.9000" in confirmations[0].params["text"]
    assert "50 ⭐ → $0.6500" in usage.params["text"]


async def test_pre_checkout_refuses_a_tampered_amount_another_member_s_payload_and_an_unknown_one(
    tmp_path: Path,
) -> None:
    """Each refused with its short reason; nothing is charged and no balance moves."""
    async with running_bot(tmp_path, grant="0.25", **STARS) as h:
        alice, bob = h.tg.user("Alice"), h.tg.user("Bob")
        invoice = await invoice_for(h.tg, alice)

        tampered = await h.tg.pay(alice, invoice, total=1)
        other_currency = await h.tg.pay(alice, invoice, currency="USD")
        foreign = await h.tg.pay(bob, invoice)
        unknown = await h.tg.pay(alice, invoice, payload="stars1.50.650000.telegram.1.9999999999.00.forged")

    assert (False, texts.REFUSED_AMOUNT) == (tampered.ok, tampered.error_message)
    assert (False, texts.REFUSED_AMOUNT) == (other_currency.ok, other_currency.error_message)
    assert (False, texts.REFUSED_OTHER_MEMBER) == (foreign.ok, foreign.error_message)
    assert (False, texts.REFUSED_UNKNOWN) == (unknown.ok, unknown.error_message)
    assert {} == h.tg.charges
    await assert_exact(sqlite_url(tmp_path), alice, GRANT)
    assert (0, 0, []) == await ledger(sqlite_url(tmp_path), bob)


@contextlib.asynccontextmanager
async def bot_from_parts(
    tmp_path: Path,
    tg: FakeTelegram,
    ai: FakeMiniToolAI,
    *,
    is_allowed: Allowed | None = None,
    max_concurrent_updates: int = 256,
    **more: Any,
) -> AsyncIterator[None]:
    """The composition root's parts, with a "who may pay" hook (default: the owner's access lists),
    the Telegram adapter's concurrency and further settings as given."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=ai.api_key,  # type: ignore[arg-type]
        minitoolai_base_url=ai.base_url,
        telegram_token=tg.token,  # type: ignore[arg-type]
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        database_url=sqlite_url(tmp_path),
        telegram_pace_scale=SCALE,
        **STARS,
        **more,
    )
    config = TelegramConfig(
        token=tg.token,
        api_base_url=tg.base_url,
        file_base_url=tg.base_file_url,
        pace_scale=SCALE,
        max_concurrent_updates=max_concurrent_updates,
    )
    store = await storage.open_store(settings.database_url)
    try:
        async with aiohttp.ClientSession() as http:
            client = MiniToolAIClient(http, base_url=ai.base_url, api_key=ai.api_key)
            core = build_core(settings, store, client, TokenCounter(), is_allowed=is_allowed)
            adapter = TelegramAdapter(core, config)
            stop = asyncio.Event()
            async with core.images:
                task = asyncio.create_task(adapter.run(stop))
                try:
                    await _started(tg, settings, task)
                    yield
                finally:
                    stop.set()
                    await core.images.close()
                    async with asyncio.timeout(10):
                        await task
    finally:
        await store.close()


async def test_a_member_the_owner_blocks_is_refused_at_pre_checkout(tmp_path: Path) -> None:
    """The owner's hook says no for Alice: her payment is refused, Bob's goes through."""
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        alice, bob = tg.user("Alice"), tg.user("Bob")
        asked: list[Account] = []

        async def is_allowed(member: Account) -> bool:
            asked.append(member)
            return member.holder != str(alice["id"])

        async with bot_from_parts(tmp_path, tg, ai, is_allowed=is_allowed):
            blocked = await tg.pay(alice, await invoice_for(tg, alice))
            allowed = await buy(tg, bob)

    assert (False, texts.REFUSED_NOT_ALLOWED) == (blocked.ok, blocked.error_message)
    assert allowed.ok
    assert [Account("telegram", str(alice["id"])), Account("telegram", str(bob["id"]))] == asked
    assert [bob["id"]] == [c.user_id for c in tg.charges.values()]


async def test_a_member_blocked_with_the_owners_access_lists_is_refused_at_pre_checkout(
    tmp_path: Path,
) -> None:
    """With no hook given, who may pay is the owner's access rule: Alice, blocked by /block after her
    invoice was sent, is refused at pre-checkout and nothing is charged."""
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        owner, alice = tg.user("Owner"), tg.user("Alice")
        async with bot_from_parts(tmp_path, tg, ai, bot_admin_ids=f"telegram:{owner['id']}"):
            invoice = await invoice_for(tg, alice)
            mark = len(tg.requests)
            tg.user_message(tg.private_chat(owner), owner, f"/block user {alice['id']}")
            await tg.wait_for(sent_to(int(owner["id"]), "is blocked now"), start=mark)
            refused = await tg.pay(alice, invoice)

    assert (False, texts.REFUSED_NOT_ALLOWED) == (refused.ok, refused.error_message)
    assert {} == tg.charges


async def test_a_checkout_is_answered_while_every_update_slot_is_busy(tmp_path: Path) -> None:
    """Both of the adapter's update slots hold answers streaming for 20 s: the pre-checkout is still
    answered at once (it skips the queue), so Telegram's 10 seconds never run out behind them."""
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        alice, bob, carol = tg.user("Alice"), tg.user("Bob"), tg.user("Carol")
        async with bot_from_parts(tmp_path, tg, ai, max_concurrent_updates=2):
            invoice = await invoice_for(tg, alice)
            for user in (bob, carol):
                ai.chat_scripts.append(ChatScript(tokens=["Streaming "] + ["word "] * 2000, delay=0.01))
                tg.user_message(tg.private_chat(user), user, "Tell me a long story")
            for user in (bob, carol):
                await tg.wait_for(sent_to(user["id"], "Streaming", "sendMessageDraft"), 10)
            paid = await tg.pay(alice, invoice)
            finished = [r for r in tg.requests if "regen" in str(r.params.get("reply_markup"))]

    assert paid.ok and paid.answered
    assert [] == finished, "the answers were still streaming when the checkout was answered"


async def test_by_webhook_a_retried_payment_credits_once(tmp_path: Path) -> None:
    """Webhook mode: the pre-checkout is answered, and a successful_payment Telegram posts twice
    (a retry, same update_id) credits once and confirms once."""
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    headers = {"X-Telegram-Bot-Api-Secret-Token": "hook-secret"}
    async with (
        running_bot(
            tmp_path,
            grant="0.25",
            telegram_webhook_url="https://bot.example.com/hook",
            telegram_webhook_secret="hook-secret",
            telegram_webhook_listen=f"127.0.0.1:{port}",
            **STARS,
        ) as h,
        aiohttp.ClientSession() as http,
    ):

        async def post(update: JSON) -> None:
            async with http.post(hook, json=update, headers=headers) as response:
                assert 200 == response.status

        alice = h.tg.user("Alice")
        chat_id = alice["id"]
        await post({"update_id": 1, "message": h.tg.user_message(h.tg.private_chat(alice), alice, "/topup")})
        menu = await h.tg.wait_for(sent_to(chat_id, "topup:"))
        await post(
            {
                "update_id": 2,
                "callback_query": h.tg.callback_query(
                    alice, (chat_id, menu.result["message_id"]), "topup:50"
                ),
            }
        )
        await h.tg.wait_for(sent_to(chat_id, "XTR", "sendInvoice"))
        paying = asyncio.create_task(h.tg.pay(alice, h.tg.invoices_in(chat_id)[-1]))
        checkout = await h.tg.wait_for_update("pre_checkout_query")
        await post(checkout)
        paid = await paying
        assert paid.ok and paid.update is not None
        await post(paid.update)
        await h.tg.wait_for(sent_to(chat_id, "Thank you"))
        await post(paid.update)  # Telegram retries: the same update, the same update_id

    await assert_exact(sqlite_url(tmp_path), alice, GRANT + CREDIT_50)
    assert 1 == len([r for r in h.tg.requests if sent_to(chat_id, "Thank you")(r)])
    assert [] == h.tg.calls("getUpdates")


# ---------------------------------------------------------------- refunds


async def test_the_owner_refunds_once_and_is_refused_when_the_credit_was_spent(tmp_path: Path) -> None:
    """/refund returns the Stars and takes the credit back once; spent credit needs force; members cannot refund."""
    url = sqlite_url(tmp_path)
    async with running_bot(tmp_path, grant="0", bot_admin_ids=f"telegram:{OWNER_ID}", **STARS) as h:
        owner, alice = h.tg.user("Owner"), h.tg.user("Alice")
        assert OWNER_ID == owner["id"]
        owner_chat = h.tg.private_chat(owner)
        first = await buy(h.tg, alice)
        assert first.charge is not None
        await assert_exact(url, alice, CREDIT_50)

        async def refund(who: JSON, *args: str) -> str:
            mark = len(h.tg.requests)
            h.tg.user_message(h.tg.private_chat(who), who, " ".join(("/refund", str(alice["id"]), *args)))
            reply = await h.tg.wait_for(
                lambda r: r.ok and r.method == "sendMessage" and r.params.get("chat_id") == who["id"],
                start=mark,
            )
            return str(reply.params["text"])

        refused_member = await refund(alice, first.charge.charge_id)
        done = await refund(owner, first.charge.charge_id)
        await assert_exact(url, alice, 0)
        again = await refund(owner, first.charge.charge_id)

        second = await buy(h.tg, alice)
        assert second.charge is not None
        mark = len(h.tg.requests)
        h.tg.user_message(h.tg.private_chat(alice), alice, "Say something")
        await h.answered(alice["id"], start=mark)  # settled: part of the credit is spent
        spent_balance, summed, _ = await ledger(url, alice)
        assert 0 < spent_balance < CREDIT_50
        assert spent_balance == summed
        spent = await refund(owner, second.charge.charge_id)
        await assert_exact(url, alice, spent_balance)
        forced = await refund(owner, second.charge.charge_id, "force")
        await assert_exact(url, alice, 0)
        assert owner_chat["id"] == owner["id"]

    assert "Only the bot's owner" in refused_member
    assert f"Refunded 50 ⭐ to telegram:{alice['id']}" in done
    assert "already refunded" in again
    assert "Not refunded" in spent and "force" in spent
    assert "Refunded 50 ⭐" in forced
    assert [True, True] == [c.refunded for c in h.tg.charges.values()]
    refunds = [r for r in h.tg.calls("refundStarPayment") if r.ok]
    assert [first.charge.charge_id, second.charge.charge_id] == [
        r.params["telegram_payment_charge_id"] for r in refunds
    ]
    _, _, kinds = await ledger(url, alice)
    assert ["purchase", "refund", "purchase"] == [k for k in kinds if k in ("purchase", "refund")][:3]
    assert 2 == kinds.count("refund")


# ---------------------------------------------------------------- a restart, and the command line


async def test_a_bot_killed_right_after_receiving_a_payment_credits_it_once(tmp_path: Path) -> None:
    """SIGKILL after the credit, before the confirmation and before Telegram saw the update confirmed:
    the next bot gets the payment again, credits nothing more, and tells the member once."""
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        alice = tg.user("Alice")
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY=ai.api_key,
            MINITOOLAI_BASE_URL=ai.base_url,
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=tg.base_url,
            TELEGRAM_FILE_BASE_URL=tg.base_file_url,
            TELEGRAM_PACE_SCALE=str(SCALE),
            STARTING_GRANT_USD="0.25",
            STARS_PACKS="50",
        )
        process = await start_bot(tmp_path, env)
        try:
            await tg.wait_until_polling(30)
            invoice = await invoice_for(tg, alice)
            tg.stall("sendMessage", lambda p: "Thank you" in str(p.get("text")))
            paid = await tg.pay(alice, invoice)
            assert paid.ok and paid.update is not None
            payment = paid.update["update_id"]
            # The poll that would confirm the payment's update never reaches Telegram.
            tg.stall("getUpdates", lambda p: int(p.get("offset") or 0) > payment)
            await tg.wait_for_stalled("sendMessage", 10)  # credited; the confirmation is on its way
        finally:
            process.kill()
            await process.wait()
        tg.unstall()
        url = sqlite_url(tmp_path)
        await assert_exact(url, alice, GRANT + CREDIT_50)
        assert payment in [u["update_id"] for u in tg.pending_updates]

        async with running_bot_over(tg, ai, tmp_path):
            await tg.wait_for(sent_to(alice["id"], "Thank you"), 10)

    balance, summed, kinds = await ledger(url, alice)
    assert (GRANT + CREDIT_50, GRANT + CREDIT_50) == (balance, summed)
    assert 1 == kinds.count("purchase")
    assert 1 == len([r for r in tg.requests if sent_to(alice["id"], "Thank you")(r)])


@contextlib.asynccontextmanager
async def running_bot_over(tg: FakeTelegram, ai: FakeMiniToolAI, tmp_path: Path) -> AsyncIterator[None]:
    """The real composition root over ``tmp_path``'s database, against fakes that outlive it."""
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=ai.api_key,  # type: ignore[arg-type]
        minitoolai_base_url=ai.base_url,
        telegram_token=TOKEN,  # type: ignore[arg-type]
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        database_url=sqlite_url(tmp_path),
        telegram_pace_scale=SCALE,
        stars_packs="50",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop), name="bot")
    try:
        await _started(tg, config, task)
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def test_the_command_line_lists_purchases_and_refunds_once(tmp_path: Path) -> None:
    """credits purchases / show list the payment; credits refund is refused when spent, forced, then a no-op."""
    url = sqlite_url(tmp_path)
    async with running_bot(tmp_path, grant="0", **STARS) as h:
        alice = h.tg.user("Alice")
        paid = await buy(h.tg, alice)
        assert paid.charge is not None
        user, charge = f"telegram:{alice['id']}", paid.charge.charge_id
        env = bot_env(tmp_path, TELEGRAM_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=h.tg.base_url, STARS_PACKS="50")

        listed = await run_bot(tmp_path, env, "", "credits", "purchases")
        shown = await run_bot(tmp_path, env, "", "credits", "show", user)
        assert 0 == (await run_bot(tmp_path, env, "", "credits", "take", user, "$0.10"))[0]
        await assert_exact(url, alice, CREDIT_50 - 100_000)
        refused = await run_bot(tmp_path, env, "", "credits", "refund", user, charge)
        await assert_exact(url, alice, CREDIT_50 - 100_000)
        forced = await run_bot(tmp_path, env, "", "credits", "refund", user, charge, "--force")
        await assert_exact(url, alice, 0)
        again = await run_bot(tmp_path, env, "", "credits", "refund", user, charge, "--force")
        after = await run_bot(tmp_path, env, "", "credits", "purchases", user)

    assert 0 == listed[0], listed[2]
    assert f"• {user}: 1 paid, 50 ⭐, $0.6500 given" in listed[1]
    assert "• Total: 1 paid, 50 ⭐, $0.6500 given" in listed[1]
    assert "Your Telegram Stars purchases:" in shown[1] and "50 ⭐ → $0.6500" in shown[1]
    assert (1, "") == (refused[0], refused[1])
    assert "Not refunded" in refused[2] and "--force" in refused[2]
    assert 0 == forced[0], forced[2]
    assert f"Refunded 50 ⭐ to {user} and took back $0.5500." in forced[1]
    assert 0 == again[0] and "already refunded" in again[1]
    assert "1 refunded (50 ⭐, $0.5500 taken back)" in after[1]
    assert 1 == len([r for r in h.tg.calls("refundStarPayment") if r.ok])
    printed = "".join(out + err for _, out, err in (listed, shown, refused, forced, again, after))
    assert TOKEN.split(":")[1] not in printed
