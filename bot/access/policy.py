"""The rule deciding whether a request is served: the owner's lists, with stored overrides applied.

Nothing set means everyone. When an allow-list is set (a user, a chat or a role, in the settings
or stored at run time), a request is served if its user is allowed, or its chat (Telegram chat,
Discord server, channel, or a thread's parent channel) is allowed, or the Discord member has an
allowed role. A block (user or chat) always wins over an allow; ``BOT_ADMIN_IDS`` are always
served. ``ALLOW_PRIVATE=false`` refuses private chats to everyone but those admins.

Every subject is ``platform:id``. The lists apply to every platform at once: an owner who allows
only ``discord:<server>`` has closed the bot on Telegram too, which is the safe reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import ValidationError
from bot.i18n import N_, _
from bot.ports import AccessKind, AccessRule, Account, Place

Reason = Literal[
    "admin",
    "open",
    "allowed user",
    "allowed chat",
    "allowed role",
    "blocked user",
    "blocked chat",
    "private chats off",
    "not allowed",
]

PRIVATE_REFUSAL = N_("Sorry, I'm a private bot: my owner has not enabled me for you.")
CHAT_REFUSAL = N_("I'm not enabled in this chat. The bot's owner can enable me here.")
USER_REFUSAL = N_("Sorry, I can't answer you here.")


def parse_subjects(text: str) -> frozenset[str]:
    """``"telegram:1, discord:2"`` as a set of ``platform:id`` (the settings are validated before)."""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class AccessLists:
    """Who is allowed and blocked: the owner's settings, or those with the stored overrides applied."""

    allowed_users: frozenset[str] = frozenset()
    blocked_users: frozenset[str] = frozenset()
    allowed_chats: frozenset[str] = frozenset()
    blocked_chats: frozenset[str] = frozenset()
    allowed_roles: frozenset[str] = frozenset()
    allow_private: bool = True
    admins: frozenset[str] = frozenset()

    @property
    def restricted(self) -> bool:
        """Whether an allow-list is set (else everyone not blocked is served)."""
        return bool(self.allowed_users or self.allowed_chats or self.allowed_roles)

    @property
    def configured(self) -> bool:
        """Whether anything at all is set: when not, no request needs checking."""
        return self.restricted or bool(self.blocked_users or self.blocked_chats) or not self.allow_private

    def with_rules(self, rules: Iterable[AccessRule]) -> AccessLists:
        """These lists with run-time overrides applied (a stored verdict beats the settings)."""
        allowed = {
            "user": set(self.allowed_users),
            "chat": set(self.allowed_chats),
            "role": set(self.allowed_roles),
        }
        blocked = {"user": set(self.blocked_users), "chat": set(self.blocked_chats), "role": set[str]()}
        for rule in rules:
            if rule.verdict == "allow":
                allowed[rule.kind].add(rule.subject)
                blocked[rule.kind].discard(rule.subject)
            elif rule.verdict == "block":
                blocked[rule.kind].add(rule.subject)
                allowed[rule.kind].discard(rule.subject)
            else:  # "unblock": the settings' block is lifted, an allow in the settings stays
                blocked[rule.kind].discard(rule.subject)
        return AccessLists(
            allowed_users=frozenset(allowed["user"]),
            blocked_users=frozenset(blocked["user"]),
            allowed_chats=frozenset(allowed["chat"]),
            blocked_chats=frozenset(blocked["chat"]),
            allowed_roles=frozenset(allowed["role"]),
            allow_private=self.allow_private,
            admins=self.admins,
        )

    def verdict_of(self, kind: AccessKind, subject: str) -> str:
        """``allowed``, ``blocked`` or ``neither`` for one subject (shown after a change)."""
        allowed = {"user": self.allowed_users, "chat": self.allowed_chats, "role": self.allowed_roles}
        blocked = {"user": self.blocked_users, "chat": self.blocked_chats, "role": frozenset[str]()}
        if subject in blocked[kind]:
            return "blocked"
        return "allowed" if subject in allowed[kind] else "neither"


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks, where, and (Discord) with which roles in that server.

    ``by_channel``: whether the place's channel and parent are chats of their own (Discord
    channels and threads); Telegram forum topics are not, the group is.
    """

    user: Account
    place: Place
    roles: tuple[str, ...] = ()
    by_channel: bool = True

    @property
    def user_id(self) -> str:
        return f"{self.user.platform}:{self.user.holder}"

    def chats(self) -> tuple[str, ...]:
        platform, place = self.place.platform, self.place
        found = [f"{platform}:{place.scope.removeprefix('dm:')}"]
        if self.by_channel:
            found += [f"{platform}:{c}" for c in (place.channel, place.parent) if c]
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    private: bool = field(default=False, compare=False)

    @property
    def about_place(self) -> bool:
        """A refusal of the chat itself (said once per chat) rather than of the person."""
        return self.reason in ("blocked chat", "private chats off") or (
            self.reason == "not allowed" and not self.private
        )

    @property
    def sentence(self) -> str:
        if self.private:
            return _(PRIVATE_REFUSAL)
        return _(CHAT_REFUSAL) if self.about_place else _(USER_REFUSAL)


def decide(lists: AccessLists, asker: Asker) -> Decision:
    """The rule, on sets in memory: no I/O."""
    private = asker.place.is_private
    user = asker.user_id
    if user in lists.admins:
        return Decision(True, "admin", private)
    if not lists.configured:
        return Decision(True, "open", private)
    chats = asker.chats()
    if user in lists.blocked_users:
        return Decision(False, "blocked user", private)
    if any(chat in lists.blocked_chats for chat in chats):
        return Decision(False, "blocked chat", private)
    if private and not lists.allow_private:
        return Decision(False, "private chats off", private)
    if not lists.restricted:
        return Decision(True, "open", private)
    if user in lists.allowed_users:
        return Decision(True, "allowed user", private)
    if any(chat in lists.allowed_chats for chat in chats):
        return Decision(True, "allowed chat", private)
    platform = asker.user.platform
    if not private and any(f"{platform}:{role}" in lists.allowed_roles for role in asker.roles):
        return Decision(True, "allowed role", private)
    return Decision(False, "not allowed", private)


# ---------------------------------------------------------------- naming subjects in commands

KINDS: dict[str, AccessKind] = {
    "user": "user",
    "member": "user",
    "chat": "chat",
    "group": "chat",
    "server": "chat",
    "guild": "chat",
    "channel": "chat",
    "role": "role",
}


def parse_kind(word: str) -> AccessKind:
    kind = KINDS.get(word.strip().lower())
    if kind is None:
        raise ValidationError(_("Say what to change: user, chat (or server, channel, group) or role."))
    return kind


def parse_subject(text: str, platform: str) -> str:
    """``telegram:123``, ``123``, ``-100123`` or a Discord mention (``<@1>``, ``<@&2>``, ``<#3>``)
    as ``platform:id``; a bare id belongs to ``platform``, where the command was given."""
    raw = text.strip()
    for prefix in ("<@&", "<@!", "<@", "<#"):
        if raw.startswith(prefix) and raw.endswith(">"):
            raw = raw[len(prefix) : -1]
            break
    named, sep, rest = raw.partition(":")
    if sep:
        platform, raw = named.strip().lower(), rest.strip()
    if not platform or not raw.lstrip("-").isdigit():
        raise ValidationError(
            _("“{text}” is not an id. Give a number, or platform:id (telegram:12345).", text=text.strip())
        )
    return f"{platform}:{int(raw)}"
