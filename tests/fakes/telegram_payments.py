"""Telegram Stars in the fake Bot API: invoices, pre-checkout queries, payments and refunds.

As the Bot API documents them (payments in Telegram Stars, currency ``XTR``):

* ``sendInvoice`` / ``createInvoiceLink``: title 1-32 characters, description 1-255, payload
  1-128 bytes, ``prices`` exactly one item, ``provider_token`` empty or left out, no tips. The
  invoice message carries an ``invoice`` (title, description, start_parameter, currency,
  total_amount); a link is ``https://t.me/$<slug>``.
* A member paying: Telegram sends a ``pre_checkout_query`` (id, from, currency, total_amount,
  invoice_payload) and waits for ``answerPreCheckoutQuery``: an answer later than
  ``pre_checkout_timeout`` seconds (10 on Telegram) is refused as too old, and the checkout is
  cancelled. ``ok`` false needs an ``error_message``. On ``ok`` the Stars are charged and a
  message with ``successful_payment`` (currency, total_amount, invoice_payload,
  telegram_payment_charge_id, provider_payment_charge_id) arrives in the member's private chat.
* ``refundStarPayment`` (user_id, telegram_payment_charge_id): once per charge
  (``CHARGE_ALREADY_REFUNDED`` after), only for the member who paid; the member then sees a
  ``refunded_payment`` service message.

Tests drive a payment with :meth:`StarsPayments.pay` (or only its first half with
:meth:`StarsPayments.pre_checkout`), optionally with a tampered payload, amount or currency.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram, _Call

JSON = dict[str, Any]
XTR = "XTR"


@dataclass(slots=True)
class FakeInvoice:
    """An invoice the bot made: where it was sent (or its link), and what it asks for."""

    title: str
    description: str
    payload: str
    currency: str
    total: int
    chat_id: int | None = None  # None for an invoice link
    message_id: int | None = None
    link: str | None = None


@dataclass(slots=True)
class Charge:
    """Stars a member paid the bot."""

    charge_id: str
    user_id: int
    total: int
    payload: str
    refunded: bool = False


@dataclass(slots=True)
class PaymentResult:
    """What happened when a member tried to pay: the bot's pre-checkout answer, and the charge if any."""

    ok: bool
    error_message: str | None = None
    charge: Charge | None = None
    update: JSON | None = None  # the successful_payment update
    answered: bool = True  # False when the bot did not answer in time


@dataclass(slots=True)
class _Checkout:
    at: float
    user: JSON
    currency: str
    total: int
    payload: str
    answer: JSON | None = None
    expired: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class StarsPayments:
    """Mixed into ``FakeTelegram``: the payment methods and the helpers tests pay with."""

    def _init_payments(self: FakeTelegram, pre_checkout_timeout: float) -> None:
        self.pre_checkout_timeout = pre_checkout_timeout
        self.invoices: list[FakeInvoice] = []
        self.charges: dict[str, Charge] = {}
        self._checkouts: dict[str, _Checkout] = {}
        self._checkout_ids = itertools.count(4_100_000_001)
        self._notifying: set[asyncio.Task[None]] = set()

    def _payment_handlers(self: FakeTelegram) -> dict[str, Any]:
        return {
            "sendInvoice": self._send_invoice,
            "createInvoiceLink": self._create_invoice_link,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
        }

    # ------------------------------------------------------------------ test-facing helpers

    def invoices_in(self: FakeTelegram, chat_id: int) -> list[FakeInvoice]:
        return [invoice for invoice in self.invoices if invoice.chat_id == chat_id]

    async def wait_for_update(self: FakeTelegram, kind: str, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """The newest pending update of ``kind`` (e.g. ``pre_checkout_query``), once there is one: for
        tests that post updates to a webhook themselves."""

        def newest() -> JSON | None:
            return next((u for u in reversed(self._updates) if kind in u), None)

        async with asyncio.timeout(timeout):
            while (found := newest()) is None:
                async with self._changed:
                    await self._changed.wait()
        return found

    def pre_checkout(
        self: FakeTelegram, user: Mapping[str, Any], *, payload: str, total: int, currency: str = XTR
    ) -> str:
        """The member pressed Pay: a ``pre_checkout_query`` goes to the bot; returns its id."""
        query_id = str(next(self._checkout_ids))
        self._checkouts[query_id] = _Checkout(time.monotonic(), dict(user), currency, total, payload)
        self._notify_soon()
        self._push_update(
            {
                "pre_checkout_query": {
                    "id": query_id,
                    "from": dict(user),
                    "currency": currency,
                    "total_amount": total,
                    "invoice_payload": payload,
                }
            }
        )
        return query_id

    async def pay(
        self: FakeTelegram,
        user: Mapping[str, Any],
        invoice: FakeInvoice,
        *,
        payload: str | None = None,
        total: int | None = None,
        currency: str | None = None,
    ) -> PaymentResult:
        """A member pays an invoice (``payload``/``total``/``currency`` tamper with what Telegram
        reports): the pre-checkout query, the bot's answer, and on ``ok`` the charge and its
        ``successful_payment`` message in the member's private chat."""
        query_id = self.pre_checkout(
            user,
            payload=invoice.payload if payload is None else payload,
            total=invoice.total if total is None else total,
            currency=invoice.currency if currency is None else currency,
        )
        checkout = self._checkouts[query_id]
        try:
            async with asyncio.timeout(self.pre_checkout_timeout):
                await checkout.answered.wait()
        except TimeoutError:
            checkout.expired = True
            return PaymentResult(False, answered=False)
        answer = checkout.answer or {}
        if not answer.get("ok"):
            return PaymentResult(False, answer.get("error_message"))
        charge = Charge(f"stxFAKE{secrets.token_hex(12)}", int(user["id"]), checkout.total, checkout.payload)
        self.charges[charge.charge_id] = charge
        update = self._push_service_message(
            user,
            "successful_payment",
            {
                "currency": checkout.currency,
                "total_amount": checkout.total,
                "invoice_payload": checkout.payload,
                "telegram_payment_charge_id": charge.charge_id,
                "provider_payment_charge_id": "",
            },
        )
        return PaymentResult(True, charge=charge, update=update)

    def _notify_soon(self: FakeTelegram) -> None:
        """Wake ``wait_for_update`` (which waits on the fake's condition) from synchronous code."""

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    # ------------------------------------------------------------------ methods

    async def _send_invoice(self: FakeTelegram, call: _Call) -> JSON:
        chat = self._chat(call.params)
        reply_to = self._reply_target(chat, call.params)
        thread_id = self._thread(chat, call.params, reply_to)
        invoice = _check_invoice(call.params)
        self._check_flood(call, "sendInvoice", chat)
        stored = self._new_bot_message(chat, thread_id, reply_to)
        stored.extra["invoice"] = {
            "title": invoice.title,
            "description": invoice.description,
            "start_parameter": str(call.params.get("start_parameter") or ""),
            "currency": invoice.currency,
            "total_amount": invoice.total,
        }
        if call.params.get("reply_markup") is not None:
            stored.reply_markup = call.params["reply_markup"]
        invoice.chat_id, invoice.message_id = int(chat["id"]), stored.message_id
        self.invoices.append(invoice)
        return self._message_json(stored)

    async def _create_invoice_link(self: FakeTelegram, call: _Call) -> str:
        invoice = _check_invoice(call.params)
        invoice.link = f"https://t.me/${secrets.token_urlsafe(12)}"
        self.invoices.append(invoice)
        return invoice.link

    async def _answer_pre_checkout_query(self: FakeTelegram, call: _Call) -> bool:
        from tests.fakes.telegram import _bad_request

        query_id = str(call.params.get("pre_checkout_query_id", ""))
        checkout = self._checkouts.get(query_id)
        too_old = checkout is not None and call.at - checkout.at > self.pre_checkout_timeout
        if checkout is None or checkout.answer is not None or checkout.expired or too_old:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        ok = call.params.get("ok")
        if not isinstance(ok, bool):
            raise _bad_request("ok must be a Boolean")
        if not ok and not str(call.params.get("error_message") or "").strip():
            raise _bad_request("ERROR_MESSAGE_EMPTY")
        checkout.answer = {"ok": ok, "error_message": call.params.get("error_message")}
        checkout.answered.set()
        return True

    async def _refund_star_payment(self: FakeTelegram, call: _Call) -> bool:
        from tests.fakes.telegram import _bad_request

        charge = self.charges.get(str(call.params.get("telegram_payment_charge_id", "")))
        user_id = call.params.get("user_id")
        if int(user_id or 0) not in self._users:
            raise _bad_request("USER_ID_INVALID")
        if charge is None or charge.user_id != int(user_id or 0):
            raise _bad_request("CHARGE_NOT_FOUND")
        if charge.refunded:
            raise _bad_request("CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        self._push_service_message(
            self._users[charge.user_id],
            "refunded_payment",
            {
                "currency": XTR,
                "total_amount": charge.total,
                "invoice_payload": charge.payload,
                "telegram_payment_charge_id": charge.charge_id,
            },
        )
        return True

    # ------------------------------------------------------------------ helpers

    def _push_service_message(self: FakeTelegram, user: Mapping[str, Any], kind: str, body: JSON) -> JSON:
        from tests.fakes.telegram import StoredMessage

        chat = self.private_chat(user)
        chat_id = int(chat["id"])
        stored = StoredMessage(
            chat_id=chat_id,
            message_id=next(self._message_ids[chat_id]),
            sender=dict(user),
            from_bot=False,
            date=int(time.time()),
            extra={kind: body},
        )
        self._messages[(chat_id, stored.message_id)] = stored
        return self._push_update({"message": self._message_json(stored)})


def _check_invoice(params: JSON) -> FakeInvoice:
    from tests.fakes.telegram import _bad_request

    title, description = str(params.get("title") or ""), str(params.get("description") or "")
    payload, currency = str(params.get("payload") or ""), str(params.get("currency") or "")
    if not 1 <= len(title) <= 32:
        raise _bad_request("INVOICE_TITLE_INVALID" if title else "title is empty")
    if not 1 <= len(description) <= 255:
        raise _bad_request("INVOICE_DESCRIPTION_INVALID" if description else "description is empty")
    if not 1 <= len(payload.encode()) <= 128:
        raise _bad_request("INVOICE_PAYLOAD_INVALID" if payload else "payload is empty")
    if currency != XTR:
        raise _bad_request("the fake Telegram takes only Telegram Stars (XTR) invoices")
    if params.get("provider_token"):
        raise _bad_request("provider_token must be empty for payments in Telegram Stars")
    if params.get("max_tip_amount") or params.get("suggested_tip_amounts"):
        raise _bad_request("tips are not supported for payments in Telegram Stars")
    prices = params.get("prices")
    if not isinstance(prices, list) or len(prices) != 1:
        raise _bad_request("prices must contain exactly one item for payments in Telegram Stars")
    amount = prices[0].get("amount") if isinstance(prices[0], dict) else None
    if not isinstance(amount, int) or amount <= 0 or not str(prices[0].get("label") or ""):
        raise _bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    return FakeInvoice(title, description, payload, currency, amount)
