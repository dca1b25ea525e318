"""Which language a member and a community hear, and where the choices are kept.

A member's own choice (``/language``) is kept in the settings of their private chat with the bot
(``Place(platform, "dm:<id>")``, ``extra["language"]``); a community's default, set by its admins,
in the community's settings. The platform's hint (Telegram's ``language_code``, Discord's
interaction ``locale`` or the server's ``preferred_locale``) and ``DEFAULT_LANGUAGE`` come after.

Private and ephemeral replies: member's choice > community default > hint > ``DEFAULT_LANGUAGE``.
Public messages in a group: community default > member's choice > hint > ``DEFAULT_LANGUAGE``.
"""

from __future__ import annotations

import dataclasses

from bot.i18n.catalog import Voice, default_language, normalize
from bot.ports import Account, ChannelSettings, Place, SettingsStore

KEY = "language"


def member_place(account: Account) -> Place:
    return Place(account.platform, f"dm:{account.holder}")


class Languages:
    def __init__(self, store: SettingsStore) -> None:
        self._store = store

    async def _stored(self, place: Place) -> str | None:
        return _language(await self._store.get_settings(place))

    async def member_choice(self, account: Account) -> str | None:
        return await self._stored(member_place(account))

    async def community_choice(self, place: Place) -> str | None:
        return None if place.is_private else await self._stored(place.community)

    async def voice(self, account: Account | None, place: Place | None, hint: str | None = None) -> Voice:
        """The languages of an update from ``account`` in ``place`` (either may be unknown)."""
        member = member_place(account) if account is not None else None
        group = place.community if place is not None and not place.is_private else None
        asked = [p for p in (member, group) if p is not None]
        found = dict(zip(asked, await self._store.get_settings_many(asked), strict=True)) if asked else {}
        own = _language(found.get(member)) if member is not None else None
        community = _language(found.get(group)) if group is not None else None
        hinted = normalize(hint)
        fallback = default_language()
        private = own or community or hinted or fallback
        public = community or own or hinted or fallback
        return Voice(public=public, private=private)

    async def set_member(self, account: Account, language: str | None) -> None:
        await self._put(member_place(account), language)

    async def set_community(self, place: Place, language: str | None) -> None:
        """The community's default (the caller checked the actor administers it)."""
        await self._put(place.community, language)

    async def _put(self, place: Place, language: str | None) -> None:
        current = await self._store.get_settings(place) or ChannelSettings()
        extra = {k: v for k, v in current.extra.items() if k != KEY}
        if language:
            extra[KEY] = language
        await self._store.put_settings(place, dataclasses.replace(current, extra=extra))


def _language(settings: ChannelSettings | None) -> str | None:
    return None if settings is None else normalize(str(settings.extra.get(KEY) or ""))
