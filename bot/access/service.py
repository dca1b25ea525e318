"""The access service: the rule on cached lists, run-time overrides, notices and channel switches.

Everything a request needs is in memory: :meth:`AccessService.load` reads the stored overrides
and switches once at start, every change made here refreshes them at once, and
:meth:`refresh_until` re-reads them now and then so that a change made by another process (or
by ``python -m bot access ...`` while the bot runs) arrives too. With nothing configured,
:meth:`check` is a few set look-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Hashable

from bot.access.policy import AccessLists, Asker, Decision, decide, parse_kind, parse_subject
from bot.errors import NotAllowed, ValidationError
from bot.i18n import N_, _
from bot.ops import metrics
from bot.ports import AccessKind, AccessRule, AccessStore, Account, Actor, ChannelSwitches, Place

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
NOTICES_KEPT = 100_000  # chats remembered as told "not enabled here" (the oldest are forgotten)
CHAT_OFF = N_("Chat is switched off here. An admin can turn it back on with /enable chat.")
IMAGES_OFF = N_("Pictures are switched off here. An admin can turn them back on with /enable images.")
OWNER_ONLY = N_("Only the bot's owner (BOT_ADMIN_IDS) can change who may use the bot.")


class AccessService:
    def __init__(self, store: AccessStore, lists: AccessLists) -> None:
        self._store = store
        self._settings = lists
        self._lists = lists
        self._rules: list[AccessRule] = []
        self._switches: dict[Place, ChannelSwitches] = {}
        self._noticed: OrderedDict[Hashable, None] = OrderedDict()

    # ------------------------------------------------------------ the rule

    async def load(self) -> None:
        """Read the stored overrides and switches (at start, after changes, and periodically)."""
        rules = await self._store.access_rules()
        switches = await self._store.all_channel_switches()
        self._rules = rules
        self._lists = self._settings.with_rules(rules)
        self._switches = switches

    async def refresh_until(self, stop: asyncio.Event, every: float = REFRESH_SECONDS) -> None:
        """Re-read the stored state every ``every`` seconds until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
                return
            try:
                await self.load()
            except Exception:
                logger.warning("could not re-read the access rules; keeping the last ones", exc_info=True)

    @property
    def configured(self) -> bool:
        """False when nobody is restricted: adapters may skip building an :class:`Asker`."""
        return self._lists.configured

    def is_owner(self, actor: Actor) -> bool:
        return actor.id in self._lists.admins

    def check(self, asker: Asker) -> Decision:
        decision = decide(self._lists, asker)
        if not decision.allowed:
            metrics.access_refused(asker.place.platform, decision.reason)
        return decision

    def tell_refusal(self, place: Place, user: Account, decision: Decision) -> bool:
        """Whether to say this refusal: always in a private chat; in a group once per chat when the
        place is refused, once per member and chat when the member is (not on every message)."""
        if place.is_private:
            return True
        who = "" if decision.about_place else user.holder
        return self.first_notice((place.platform, place.scope, place.channel, who))

    def first_notice(self, key: Hashable) -> bool:
        """True the first time a refusal is to be said under ``key`` (a chat), then False."""
        if key in self._noticed:
            return False
        self._noticed[key] = None
        if len(self._noticed) > NOTICES_KEPT:
            self._noticed.popitem(last=False)
        return True

    # ------------------------------------------------------------ run-time overrides (owners)

    async def set_rule(self, actor: Actor, verdict: str, kind_word: str, target: str, platform: str) -> str:
        """``/allow``, ``/block``, ``/unblock``: store the override and say what applies now."""
        if not self.is_owner(actor):
            raise NotAllowed(_(OWNER_ONLY))
        kind = parse_kind(kind_word)
        subject = parse_subject(target, platform)
        if kind == "role" and not subject.startswith("discord:"):
            raise ValidationError(_("Roles are Discord's: give discord:<role id>."))
        if verdict == "unblock":
            await self._unblock(kind, subject, actor)
        elif verdict in ("allow", "block"):
            await self._store.put_access_rule(AccessRule(kind, subject, verdict, set_by=actor.id))  # type: ignore[arg-type]
        else:
            raise ValidationError(_("Use allow, block or unblock."))
        await self.load()
        logger.info("%s: %s %s %s", actor.id, verdict, kind, subject)
        state = self._lists.verdict_of(kind, subject)
        shown = {
            "allowed": N_("{kind} {subject} is allowed now."),
            "blocked": N_("{kind} {subject} is blocked now."),
            "neither": N_("{kind} {subject} is neither allowed nor blocked now."),
        }
        return _(shown[state], kind=kind.capitalize(), subject=subject)

    async def _unblock(self, kind: AccessKind, subject: str, actor: Actor) -> None:
        blocked_by_settings = (
            subject
            in {
                "user": self._settings.blocked_users,
                "chat": self._settings.blocked_chats,
                "role": frozenset[str](),
            }[kind]
        )
        if blocked_by_settings:
            await self._store.put_access_rule(AccessRule(kind, subject, "unblock", set_by=actor.id))
        else:
            await self._store.delete_access_rule(kind, subject)

    def describe(self, actor: Actor) -> str:
        """The list command: the settings and the stored overrides, as they apply now."""
        if not self.is_owner(actor):
            raise NotAllowed(_(OWNER_ONLY))
        lists = self._lists

        def shown(items: frozenset[str]) -> str:
            return ", ".join(sorted(items)) or _("none")

        lines = [
            _("Who may use the bot now (settings with the changes made by commands):"),
            _("Allowed users: {list}", list=shown(lists.allowed_users)),
            _("Allowed chats: {list}", list=shown(lists.allowed_chats)),
            _("Allowed roles: {list}", list=shown(lists.allowed_roles)),
            _("Blocked users: {list}", list=shown(lists.blocked_users)),
            _("Blocked chats: {list}", list=shown(lists.blocked_chats)),
            _("Private chats: allowed") if lists.allow_private else _("Private chats: off"),
            _("With no allow-list everyone who is not blocked is served.")
            if not lists.restricted
            else _("Only what is allowed above is served (blocks win; owners always are)."),
        ]
        if self._rules:
            lines.append(_("Changed by commands:"))
            lines += [
                f"  {r.verdict} {r.kind} {r.subject}" + (f" (by {r.set_by})" if r.set_by else "")
                for r in self._rules
            ]
        return "\n".join(lines)

    # ------------------------------------------------------------ channel switches (community admins)

    def switches(self, place: Place) -> ChannelSwitches:
        """The switches of a channel, else of its parent (a thread), else of its community."""
        for candidate in (place, place.parent_place, place.community):
            if candidate is not None and candidate in self._switches:
                return self._switches[candidate]
        return ChannelSwitches()

    def require_chat(self, place: Place) -> None:
        if self.switches(place).chat_off:
            raise NotAllowed(_(CHAT_OFF))

    def require_images(self, place: Place) -> None:
        if self.switches(place).images_off:
            raise NotAllowed(_(IMAGES_OFF))

    async def switch(self, actor: Actor, place: Place, what: str, on: bool) -> str:
        """``/enable`` / ``/disable`` chat or images here."""
        field = {"chat": "chat_off", "images": "images_off", "pictures": "images_off"}.get(
            what.strip().lower()
        )
        if field is None:
            raise ValidationError(_("Say what to switch: chat or images."))
        await self._change(actor, place, **{field: not on})
        if field == "chat_off":
            return (
                _("Chat on here.")
                if on
                else _("Chat off here. Admins can turn it back on with /enable chat.")
            )
        return (
            _("Pictures on here.")
            if on
            else _("Pictures off here. Admins can turn it back on with /enable images.")
        )

    async def set_reply_all(self, actor: Actor, place: Place, on: bool) -> str:
        if place.is_private:
            raise ValidationError(_("In a private chat I already answer every message."))
        await self._change(actor, place, reply_all=on)
        return (
            _("I now answer every message here.")
            if on
            else _("I now answer here only when addressed (a mention, a reply or a command).")
        )

    async def _change(self, actor: Actor, place: Place, **changes: bool) -> None:
        if place.is_private:
            raise ValidationError(_("This works in groups and server channels."))
        if not (actor.is_platform_admin or self.is_owner(actor)):
            raise NotAllowed(_("Only admins of this server or group can switch me on or off here."))
        current = self.switches(place)  # a channel starts from what it inherited
        await self._store.put_channel_switches(place, dataclasses.replace(current, **changes))
        await self.load()
