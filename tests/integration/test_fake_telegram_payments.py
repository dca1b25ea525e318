"""The fake Bot API's Telegram Stars, driven by the real python-telegram-bot.

Invoices are checked as the Bot API documents them; a pre-checkout query answered late is
refused and the checkout cancelled; a payment arrives as a ``successful_payment`` message that
python-telegram-bot parses; refunds work once, for the payer only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import LabeledPrice, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes, MessageHandler, PreCheckoutQueryHandler, filters

from tests.fakes.telegram import FakeTelegram
from tests.integration.test_fake_telegram import TOKEN, make_bot, running_app


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(
        token=TOKEN, per_chat_interval=0, group_limit=None, global_per_second=None, pre_checkout_timeout=10.0
    ) as fake:
        yield fake


async def test_send_invoice_in_stars_makes_an_invoice_message(tg: FakeTelegram) -> None:
    """sendInvoice with XTR and an empty provider token returns a Message whose invoice python-telegram-bot reads."""
    alice = tg.user("Alice")
    chat = tg.private_chat(alice)
    async with make_bot(tg) as bot:
        sent = await bot.send_invoice(
            chat["id"],
            "50 credits",
            "Credit for chat",
            "p-1",
            "XTR",
            [LabeledPrice("credit", 50)],
            provider_token="",
        )

    assert isinstance(sent, Message) and sent.invoice is not None
    assert ("XTR", 50, "50 credits") == (sent.invoice.currency, sent.invoice.total_amount, sent.invoice.title)
    assert ["p-1"] == [i.payload for i in tg.invoices_in(chat["id"])]


async def test_invoices_break_the_documented_rules_are_refused(tg: FakeTelegram) -> None:
    """Two prices, a provider token, a long title or payload, another currency: each a Bad Request."""
    alice = tg.user("Alice")
    chat = tg.private_chat(alice)
    one = [LabeledPrice("credit", 50)]
    async with make_bot(tg) as bot:
        for kwargs in (
            {"prices": [LabeledPrice("a", 1), LabeledPrice("b", 2)]},
            {"provider_token": "123:LIVE"},
            {"title": "t" * 33},
            {"payload": "p" * 129},
            {"currency": "USD"},
        ):
            args = {"title": "Credit", "payload": "p", "currency": "XTR", "prices": one, **kwargs}
            with pytest.raises(BadRequest):
                await bot.send_invoice(chat["id"], description="Credit for chat", **args)  # type: ignore[arg-type]
        link = await bot.create_invoice_link("Credit", "Credit for chat", "p-2", "XTR", one)

    assert link.startswith("https://t.me/$")
    assert [] == tg.invoices_in(chat["id"])


async def test_a_payment_goes_through_pre_checkout_then_arrives_as_successful_payment(
    tg: FakeTelegram,
) -> None:
    """ok at pre-checkout charges the member; the successful_payment message names the charge; refund works once."""
    alice = tg.user("Alice")
    chat = tg.private_chat(alice)
    payments: list[str] = []

    async def checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.pre_checkout_query is not None
        await update.pre_checkout_query.answer(ok=True)

    async def paid(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.successful_payment is not None
        payments.append(update.message.successful_payment.telegram_payment_charge_id)

    async with running_app(
        tg, PreCheckoutQueryHandler(checkout), MessageHandler(filters.SUCCESSFUL_PAYMENT, paid)
    ) as app:
        await app.bot.send_invoice(
            chat["id"], "Credit", "Credit for chat", "p-1", "XTR", [LabeledPrice("c", 50)]
        )
        result = await tg.pay(alice, tg.invoices_in(chat["id"])[0])
        assert result.charge is not None
        await tg.wait_for(lambda r: r.method == "getUpdates" and "successful_payment" in str(r.result))
        await app.bot.refund_star_payment(alice["id"], result.charge.charge_id)
        with pytest.raises(BadRequest, match=r"(?i)charge_already_refunded"):
            await app.bot.refund_star_payment(alice["id"], result.charge.charge_id)
        with pytest.raises(BadRequest, match=r"(?i)charge_not_found"):
            await app.bot.refund_star_payment(tg.user("Bob")["id"], result.charge.charge_id)

    assert result.ok
    assert (50, "p-1") == (result.charge.total, result.charge.payload)
    assert result.charge.refunded
    assert 1 == sum("refunded_payment" in m.extra for m in tg.messages(chat["id"]))


async def test_a_refusal_needs_a_reason_and_charges_nothing(tg: FakeTelegram) -> None:
    """ok=False without error_message is a Bad Request; with one, the member is not charged."""
    alice = tg.user("Alice")
    answers: list[str] = []

    async def checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.pre_checkout_query
        assert query is not None
        try:
            await query.answer(ok=False)
        except BadRequest as exc:
            answers.append(exc.message)
        await query.answer(ok=False, error_message="Not for you.")

    async with running_app(tg, PreCheckoutQueryHandler(checkout)):
        result = await tg.pay(alice, _invoice("p"))

    assert (False, "Not for you.") == (result.ok, result.error_message)
    assert ["ERROR_MESSAGE_EMPTY"] == [a.upper() for a in answers]
    assert {} == tg.charges


async def test_a_pre_checkout_answer_after_the_deadline_is_refused() -> None:
    """Telegram's 10-second rule (shortened here): once the checkout gave up, the late answer is a Bad Request."""
    async with FakeTelegram(token=TOKEN, pre_checkout_timeout=0.1) as tg, make_bot(tg) as bot:
        alice = tg.user("Alice")
        result = await tg.pay(alice, _invoice("p"))  # nobody polls: no answer comes in time
        query_id = tg.pending_updates[-1]["pre_checkout_query"]["id"]
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_pre_checkout_query(query_id, ok=True)

    assert (False, False) == (result.ok, result.answered)
    assert {} == tg.charges


def _invoice(payload: str):  # type: ignore[no-untyped-def]
    from tests.fakes.telegram_payments import FakeInvoice

    return FakeInvoice("Credit", "Credit for chat", payload, "XTR", 50)
