"""Telegram Stars: /topup, invoices, pre-checkout answers, successful payments and /refund.

A member sends /topup in the private chat and picks a pack; the bot sends an invoice (currency
``XTR``, empty provider token) whose payload the core signed. Telegram asks before it charges
(``pre_checkout_query``): the answer goes out within :data:`ANSWER_WITHIN` seconds, whatever
happens, because Telegram cancels a checkout not answered within 10. The charge arrives as a
``successful_payment`` message: the core credits it once per ``telegram_payment_charge_id``, and
the member is told their new balance. Refunds call ``refundStarPayment`` through
:class:`TelegramStarRefunds`, which the command line uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    Update,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from adapters.telegram.messages import PLATFORM, Incoming, arguments, incoming, words
from adapters.telegram.pacing import ChatPacing
from adapters.telegram.surface import send_text
from adapters.telegram.transport import AiohttpRequest
from bot.core import Core
from bot.errors import StorageError, ValidationError
from bot.i18n import N_, _
from bot.payments import texts
from bot.payments.values import AlreadyRefunded, PaidStars, RefundRefused
from bot.ports import Account, Actor

__all__ = [
    "ANSWER_WITHIN",
    "TOPUP_PREFIX",
    "CheckoutFirstQueue",
    "PaymentHandlers",
    "TelegramStarRefunds",
    "standalone_refunds",
]

logger = logging.getLogger(__name__)

TOPUP_PREFIX = "topup:"
START_TOPUP = "topup"  # t.me/<bot>?start=topup opens the private chat with the packs
ANSWER_WITHIN = 8.0  # seconds to answer a pre-checkout query; Telegram cancels it after 10
RECORD_ATTEMPTS = 3  # a payment whose recording fails is tried again before the owner is alerted
COMMANDS: tuple[tuple[str, str], ...] = (
    ("topup", N_("Buy credit with Telegram Stars")),
    ("refund", N_("Owner: /refund <user id> <payment id> [force]")),
)
REFUND_USAGE = "Use /refund <user id> <payment id>, and add force to refund what was partly spent."


class CheckoutFirstQueue(asyncio.Queue[object]):
    """The Application's update queue, except that pre-checkout queries skip it.

    Every other update waits for one of the Application's concurrent slots, and each streaming
    answer holds one for its whole length: with every slot busy, a checkout would wait past
    Telegram's 10 seconds and be cancelled. A pre-checkout query is handled at once instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.app: Application | None = None
        self._checking: set[asyncio.Task[None]] = set()

    async def put(self, item: object) -> None:
        if self.app is not None and isinstance(item, Update) and item.pre_checkout_query is not None:
            task = asyncio.create_task(self.app.process_update(item), name="pre-checkout")
            self._checking.add(task)
            task.add_done_callback(self._checking.discard)
            return
        await super().put(item)


class TelegramStarRefunds:
    """``refundStarPayment`` as the core's ``StarRefunder``."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def refund(self, member: Account, charge_id: str) -> None:
        try:
            await self._bot.refund_star_payment(int(member.holder), charge_id)
        except BadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" in exc.message.upper():
                raise AlreadyRefunded(exc.message) from None
            raise RefundRefused(exc.message) from None


@contextlib.asynccontextmanager
async def standalone_refunds(token: str, api_base_url: str) -> AsyncIterator[TelegramStarRefunds]:
    """Refunds from a process that does not run the bot (``python -m bot credits refund``)."""
    bot = Bot(token, base_url=api_base_url, request=AiohttpRequest(4))
    async with bot:
        yield TelegramStarRefunds(bot)


class PaymentHandlers:
    """The handlers of Stars payments; :meth:`register` them before the general ones."""

    def __init__(self, core: Core, pacing: ChatPacing) -> None:
        self._stars = core.payments
        self._pacing = pacing

    @property
    def commands(self) -> tuple[tuple[str, str], ...]:
        """For the command menu: only when members can pay."""
        return COMMANDS if self._stars.enabled else ()

    def register(self, app: Application) -> None:
        # Before the general handlers: "/start topup" and the pack buttons would be theirs otherwise.
        app.add_handler(
            CommandHandler("start", self.on_topup, filters.Regex(rf"^/start(@\w+)?\s+{START_TOPUP}$"))
        )
        app.add_handler(CommandHandler("topup", self.on_topup))
        app.add_handler(CommandHandler("refund", self.on_refund))
        app.add_handler(CallbackQueryHandler(self.on_pack, pattern=f"^{TOPUP_PREFIX}"))
        app.add_handler(PreCheckoutQueryHandler(self.on_pre_checkout))
        app.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, self.on_successful_payment))

    # ------------------------------------------------------------ offering

    async def on_topup(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None:
            return
        who, bot = incoming(message, user), context.bot
        if not self._stars.enabled:
            await self._send(bot, who, _(texts.CLOSED))
            return
        if not who.private:
            link = InlineKeyboardButton(
                _("Open the private chat"), url=f"https://t.me/{bot.username}?start={START_TOPUP}"
            )
            await self._send(bot, who, _(texts.GROUP_HINT), InlineKeyboardMarkup([[link]]))
            return
        buttons = [
            [InlineKeyboardButton(label, callback_data=f"{TOPUP_PREFIX}{stars}")]
            for stars, label in self._stars.packs()
        ]
        await self._send(bot, who, await self._stars.menu(who.user), InlineKeyboardMarkup(buttons))

    async def on_pack(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        chat_id = query.message.chat_id
        if chat_id != query.from_user.id:
            await query.answer(_(texts.GROUP_HINT)[:200], show_alert=True)
            return
        pack = query.data.removeprefix(TOPUP_PREFIX)
        if not pack.isdigit():
            raise ValidationError(_("That pack is no longer offered. Send /topup to see the packs."))
        invoice = self._stars.invoice(Account(PLATFORM, str(query.from_user.id)), int(pack))
        await query.answer()
        await self._pacing.run(
            chat_id,
            lambda: context.bot.send_invoice(
                chat_id,
                invoice.title,
                invoice.description,
                invoice.payload,
                invoice.currency,
                [LabeledPrice(invoice.label, invoice.stars)],
                provider_token="",
            ),
        )

    # ------------------------------------------------------------ paying

    async def on_pre_checkout(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Always answered, and in time: a refusal with a reason rather than no answer at all."""
        query = update.pre_checkout_query
        if query is None:
            return
        member = Account(PLATFORM, str(query.from_user.id))
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                reason = await self._stars.check(
                    member, query.invoice_payload, query.currency, query.total_amount
                )
        except TimeoutError:
            logger.warning("pre-checkout of %s not checked within %.0f s: refused", member, ANSWER_WITHIN)
            reason = _(texts.REFUSED_BUSY)
        except Exception:
            logger.exception("pre-checkout of %s could not be checked: refused", member)
            reason = _(texts.REFUSED_BUSY)
        await query.answer(ok=reason is None, error_message=reason)

    async def on_successful_payment(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None or message.successful_payment is None:
            return
        paid = message.successful_payment
        member = Account(PLATFORM, str(user.id))
        received = PaidStars(
            charge_id=paid.telegram_payment_charge_id,
            currency=paid.currency,
            total=paid.total_amount,
            payload=paid.invoice_payload,
            provider_charge_id=paid.provider_payment_charge_id,
        )
        who = incoming(message, user)

        async def tell(text: str) -> None:
            await self._send(context.bot, who, text)

        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                await self._stars.receive(member, received, tell)
            except StorageError:
                if attempt == RECORD_ATTEMPTS:
                    # The member paid and Telegram will not deliver this again: the owner must act.
                    logger.exception(
                        "payment %s of %d Stars by %s could not be recorded; grant the credit or refund it",
                        received.charge_id,
                        received.total,
                        member,
                    )
                    raise
                await asyncio.sleep(attempt)
            else:
                return

    # ------------------------------------------------------------ refunds

    async def on_refund(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.message, update.effective_user
        if message is None or user is None:
            return
        who = incoming(message, user)
        parts = words(arguments(message))
        force = len(parts) == 3 and parts[2].lower().lstrip("-") == "force"
        holder = parts[0].removeprefix(f"{PLATFORM}:") if parts else ""
        if len(parts) not in (2, 3) or (len(parts) == 3 and not force) or not holder.isdigit():
            raise ValidationError(REFUND_USAGE)
        text = await self._stars.refund(
            Actor(who.user),
            Account(PLATFORM, holder),
            parts[1],
            TelegramStarRefunds(context.bot),
            force=force,
        )
        await self._send(context.bot, who, text)

    # ------------------------------------------------------------ sending

    async def _send(
        self, bot: Bot, who: Incoming, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        try:
            await send_text(bot, self._pacing, who.target, text, markup)
        except TelegramError:
            logger.warning("could not send a payment message to chat %s", who.target.chat_id, exc_info=True)
            raise
