"""The text commands every adapter offers, written once: /help, /reset, /model, /system, /credits, ...

Adapters turn a platform command into a call here with an :class:`Actor` (who, and whether the
platform says they administer the place) and a :class:`Place`, and show the returned text.
Commands that stream (chat, regenerate) or post pictures (imagine) live in their services.
Admin commands name their target as an :class:`Account`, which the adapter resolves from a
mention, a reply or an id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.chat import vision
from bot.chat.conversations import ConversationService, picture_detail
from bot.credits import CreditService
from bot.errors import ValidationError
from bot.i18n import N_, _, decimal, integer, language_name, privately, using
from bot.i18n.catalog import LANGUAGES, normalize
from bot.i18n.choice import Languages
from bot.minitoolai.models import CHAT_MODELS, IMAGE_MODELS
from bot.minitoolai.types import Usage
from bot.payments.service import StarsService
from bot.ports import Account, Actor, Place
from bot.preferences import Preferences

HELP = N_("""\
Talk to me and I answer, remembering this conversation.
Commands:
/ask <question>: ask me something (in groups: or mention me, or reply to me)
/imagine <prompt> [--model M --size WxH --steps N --cfg X --negative "..."]: make a picture
/reset: forget this conversation
/model [name]: show or choose the chat model
/system [text | clear]: show, set or clear the instructions I follow here
/temperature [0-2 | default]: how creative the answers are
/context [channel | user]: one shared memory here, or one per person
/detail [low | high | auto]: how closely I look at pictures (low costs least)
/language [en | tr | nb | auto]: the language I speak to you · /language community <code>: admins, for everyone here
Attach pictures (JPEG, PNG, WebP, GIF; up to 10 a message) or documents (text, Markdown, CSV, JSON,
code, logs, PDF) to a message and I read them with it. Pictures cost input tokens by their size
(see /prices); documents cost what their text does. I keep your newest pictures in mind, not all.
/credits: your balance and spending · /usage: your last charges · /prices: what things cost
Admins: /grant /take /setbalance <user> <amount> · /pool fund|cap <amount> · /spending
/chatmodels, /imagemodels [names | all]: the models this community may use
Admins: /disable chat|images · /enable chat|images · /replyall on|off (answer every message here)
Owner: /allow /block /unblock user|chat|role <id> · /access (who may use me)
""")


def help_text() -> str:
    """The help, in the current language."""
    return _(HELP)


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer: plain text, shown privately where the platform can (``private``)."""

    text: str
    private: bool = False


TargetResolver = Callable[[str], Awaitable[Account | None]]


class CreditCommands:
    """The credit commands, also used by ``python -m bot credits`` (which has no chat service)."""

    def __init__(self, credits: CreditService, payments: StarsService | None = None) -> None:
        self._credits = credits
        self._payments = payments

    async def credits(self, actor: Actor, place: Place) -> Reply:
        status = await self._credits.status(actor.account, _community(place))
        with privately():
            return Reply(self._credits.render_status(status), private=True)

    async def usage(self, actor: Actor, place: Place) -> Reply:
        lines = await self._credits.usage(actor.account, _community(place))
        with privately():
            return Reply(
                self._credits.render_usage(lines) + await self._purchases(actor.account), private=True
            )

    async def _purchases(self, user: Account) -> str:
        """The member's latest Telegram Stars purchases, as a paragraph after the charges ("" if none)."""
        if self._payments is None:
            return ""
        text = self._payments.render_history(await self._payments.history(user))
        return "\n\n" + text if text else ""

    async def prices(self) -> Reply:
        return Reply(f"{self._credits.render_prices()}\n{self._picture_prices()}")

    def _picture_prices(self) -> str:
        """What a picture sent to a vision model costs, as the input tokens the API bills for it."""
        lines = [
            _("Pictures you send, as input tokens (low detail · a 1024 × 1024 picture with high or auto):")
        ]
        for name, model in CHAT_MODELS.items():
            if not model.vision:
                continue
            low = vision.billed_tokens(name, 1024, 1024, "low")
            high = vision.billed_tokens(name, 1024, 1024, "high")
            cost = self._credits.prices.chat_cost(name, Usage(high, 0))
            lines.append(
                _(
                    "• {model}: {low} tokens · {high} tokens ({cost})",
                    model=name,
                    low=integer(low),
                    high=integer(high),
                    cost=self._credits.format_amount(cost),
                )
            )
        return "\n".join(lines)

    async def grant(self, actor: Actor, target: Account, amount: str, place: Place | None = None) -> Reply:
        """``place`` is where the command was given: its community's admins may be trusted to mint."""
        result = await self._credits.grant(
            actor, target, self._credits.parse_amount(amount), "admin grant", community=_community(place)
        )
        with privately():
            return Reply(self._credits.render_admin(result, "granted"), private=True)

    async def take(self, actor: Actor, target: Account, amount: str, place: Place | None = None) -> Reply:
        result = await self._credits.take(
            actor, target, self._credits.parse_amount(amount), "admin take", community=_community(place)
        )
        with privately():
            return Reply(self._credits.render_admin(result, "taken"), private=True)

    async def set_balance(
        self, actor: Actor, target: Account, amount: str, place: Place | None = None
    ) -> Reply:
        result = await self._credits.set_balance(
            actor, target, self._credits.parse_amount(amount), "admin set", community=_community(place)
        )
        with privately():
            return Reply(self._credits.render_admin(result, "set"), private=True)

    async def pool(self, actor: Actor, place: Place, action: str, amount: str = "") -> Reply:
        community = place.community
        action = action.strip().lower()
        if action == "fund":
            result = await self._credits.fund_pool(actor, community, self._credits.parse_amount(amount))
            return Reply(self._credits.render_admin(result, "added to the pool"))
        if action == "cap":
            off = amount.strip().lower() in ("", "off", "none")
            cap = None if off else self._credits.parse_amount(amount)
            await self._credits.set_pool_cap(actor, community, cap)
            if cap is None:
                return Reply(_("Pool limit: no limit."))
            return Reply(
                _("Pool limit: {amount} per member per day.", amount=self._credits.format_amount(cap))
            )
        raise ValidationError(_("Use /pool fund <amount> or /pool cap <amount | off>."))

    async def spending(self, actor: Actor, place: Place) -> Reply:
        report = await self._credits.community_spending(actor, place.community)
        with privately():
            return Reply(self._credits.render_spending(report), private=True)

    async def starting_grant(self, actor: Actor, amount: str) -> Reply:
        micro = self._credits.parse_amount(amount)
        await self._credits.set_starting_grant(actor, micro)
        return Reply(_("New users now start with {amount}.", amount=self._credits.format_amount(micro)))

    async def allowance(self, actor: Actor, amount: str, period: str, cap: str = "") -> Reply:
        micro = self._credits.parse_amount(amount)
        cap_micro = self._credits.parse_amount(cap) if cap.strip() else None
        result = await self._credits.set_allowance(actor, micro, period.strip().lower(), cap_micro)
        if not result.active:
            return Reply(_("The periodic allowance is off."))
        amount, cap = self._credits.format_amount(result.amount), self._credits.format_amount(result.cap)
        if result.period == "weekly":
            return Reply(_("Everyone now gets {amount} weekly, up to {cap}.", amount=amount, cap=cap))
        return Reply(_("Everyone now gets {amount} daily, up to {cap}.", amount=amount, cap=cap))


class Commands(CreditCommands):
    """Every text command: the credit ones plus those that change a conversation's settings."""

    def __init__(
        self,
        chat: ConversationService,
        credits: CreditService,
        prefs: Preferences,
        payments: StarsService | None = None,
        languages: Languages | None = None,
    ) -> None:
        super().__init__(credits, payments)
        self._chat = chat
        self._prefs = prefs
        self.languages = languages or Languages(prefs.store)

    # ------------------------------------------------------------ conversation settings

    async def reset(self, actor: Actor, place: Place) -> Reply:
        """A conversation the whole channel shares is an admin's to forget; one's own (per-user
        context mode, a private chat) is one's own."""
        if not place.is_private and (await self._prefs.effective(place)).context_mode == "channel":
            self._prefs.require_admin(actor, N_("forget the conversation everyone here shares"))
        count = await self._chat.reset(place, actor.account)
        return Reply(
            _("Done: I forgot this conversation.") if count else _("There was nothing to forget here.")
        )

    async def model(self, actor: Actor, place: Place, name: str = "") -> Reply:
        if not name.strip():
            current = (await self._prefs.effective(place)).model
            listed = ", ".join(f"*{m}*" if m == current else m for m in CHAT_MODELS)
            return Reply(_("Model here: {model}. Available: {models}.", model=current, models=listed))
        chosen = await self._prefs.set_model(actor, place, name)
        return Reply(_("From now on I answer here with {model}.", model=chosen))

    async def system(self, actor: Actor, place: Place, text: str = "") -> Reply:
        text = text.strip()
        if not text:
            prompt = (await self._prefs.effective(place)).system_prompt
            return Reply(
                _("My instructions here:\n{prompt}", prompt=prompt)
                if prompt
                else _("I have no special instructions here.")
            )
        if text.lower() in ("clear", "reset", "default"):
            await self._prefs.set_system_prompt(actor, place, None)
            return Reply(_("Instructions cleared: I follow the bot's default ones again."))
        await self._prefs.set_system_prompt(actor, place, text)
        return Reply(_("Instructions saved. They apply from the next message."))

    async def temperature(self, actor: Actor, place: Place, value: str = "") -> Reply:
        value = value.strip()
        if not value:
            current = (await self._prefs.effective(place)).temperature
            if current is None:
                return Reply(_("Temperature here: the API default (1)."))
            return Reply(_("Temperature here: {value}.", value=decimal(f"{current:g}")))
        if value.lower() in ("default", "clear", "reset"):
            await self._prefs.set_temperature(actor, place, None)
            return Reply(_("Temperature back to the default."))
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            raise ValidationError(
                _("Temperature must be a number from 0 to 2 (you gave “{value}”).", value=value)
            ) from None
        await self._prefs.set_temperature(actor, place, number)
        return Reply(_("Temperature set to {value}.", value=decimal(f"{number:g}")))

    async def detail(self, actor: Actor, place: Place, value: str = "") -> Reply:
        """Show or set how closely pictures are looked at here (the ``detail`` sent with them)."""
        value = value.strip().lower()
        if not value:
            current = picture_detail(await self._prefs.effective(place))
            return Reply(
                _(
                    "Picture detail here: {detail}. Low: the model sees at most 512 × 512 and a picture costs a "
                    "fixed few tokens; high: up to 768 × 2048, counted in 512-pixel tiles; auto: the model decides "
                    "(and I reserve as for high).",
                    detail=current,
                )
            )
        chosen = await self._prefs.set_picture_detail(actor, place, value)
        return Reply(_("Pictures here are now sent with detail “{detail}”.", detail=chosen))

    async def context(self, actor: Actor, place: Place, mode: str = "") -> Reply:
        mode = mode.strip().lower()
        if not mode:
            current = (await self._prefs.effective(place)).context_mode
            if current == "channel":
                return Reply(_("Context here: channel (one shared memory for everyone)."))
            return Reply(_("Context here: user (a separate memory per person)."))
        chosen = await self._prefs.set_context_mode(actor, place, mode)
        return Reply(
            _("Everyone here now shares one conversation.")
            if chosen == "channel"
            else _("Everyone here now has their own conversation with me.")
        )

    # ------------------------------------------------------------ language

    async def language(self, actor: Actor, place: Place, value: str = "") -> Reply:
        """``/language [code | auto]``: the member's own language; ``/language community [code | auto]``:
        the community's default (admins). Shown privately: it is about the member."""
        words = value.strip().lower().split()
        if words[:1] == ["community"]:
            if not place.is_private:
                return await self._community_language(actor, place, words[1] if len(words) > 1 else "")
            words = words[1:]  # a private chat's community is its one member
        if not words:
            return await self._language_status(actor, place)
        chosen = _language_code(words[0])
        await self.languages.set_member(actor.account, chosen)
        if chosen is None:
            voice = await self.languages.voice(actor.account, place)
            with using(voice.private):
                return Reply(_("Done: I choose your language myself again."), private=True)
        with using(chosen):
            return Reply(
                _("Done: I speak {language} with you from now on.", language=language_name(chosen)),
                private=True,
            )

    async def _community_language(self, actor: Actor, place: Place, code: str) -> Reply:
        if not code:
            chosen = await self.languages.community_choice(place)
            shown = language_name(chosen) if chosen else _("none (each member's own)")
            return Reply(_("Language of this community: {language}.", language=shown))
        self._prefs.require_admin(actor, N_("change this community's language"))
        language = _language_code(code)
        await self.languages.set_community(place, language)
        if language is None:
            return Reply(_("Done: this community has no language of its own any more."))
        with using(language):
            return Reply(_("Done: I speak {language} here from now on.", language=language_name(language)))

    async def _language_status(self, actor: Actor, place: Place) -> Reply:
        own = await self.languages.member_choice(actor.account)
        community = await self.languages.community_choice(place)
        with privately():
            lines = [_("Your language: {language}.", language=language_name(own) if own else _("automatic"))]
            if community:
                lines.append(_("Language of this community: {language}.", language=language_name(community)))
            lines.append(
                _(
                    "Available: {languages}.",
                    languages=", ".join(f"{code} ({name})" for code, (name, _a) in LANGUAGES.items()),
                )
            )
            return Reply("\n".join(lines), private=True)

    # ------------------------------------------------------------ allowed models (community admins)

    async def chat_models(self, actor: Actor, place: Place, names: str = "") -> Reply:
        """Show, or (admins) restrict, the chat models the community may use; ``all`` lifts it."""
        if names.strip():
            await self._prefs.set_chat_models(actor, place, _model_names(names))
        allowed = (await self._prefs.effective(place)).allowed_chat_models
        if not allowed:
            return Reply(_("Chat models allowed here: all ({models}).", models=", ".join(CHAT_MODELS)))
        return Reply(_("Chat models allowed here: {models}.", models=", ".join(allowed)))

    async def image_models(self, actor: Actor, place: Place, names: str = "") -> Reply:
        if names.strip():
            await self._prefs.set_image_models(actor, place, allowed=_model_names(names))
        allowed = (await self._prefs.effective(place)).allowed_image_models
        if not allowed:
            return Reply(_("Image models allowed here: all ({models}).", models=", ".join(IMAGE_MODELS)))
        return Reply(_("Image models allowed here: {models}.", models=", ".join(allowed)))


def _language_code(text: str) -> str | None:
    """One of our languages, or None for ``auto`` (choose from the platform again)."""
    if text in ("auto", "off", "clear", "reset", "default"):
        return None
    code = normalize(text)
    if code is None:
        raise ValidationError(
            _(
                "I don't speak “{code}” yet. Choose one of: {languages}, or auto.",
                code=text,
                languages=", ".join(LANGUAGES),
            )
        )
    return code


def _model_names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.replace(",", " ").split() if n.strip()))
    return () if names in (("all",), ("any",)) else names


def _community(place: Place | None) -> Place | None:
    return None if place is None or place.is_private else place.community
