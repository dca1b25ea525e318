"""Run-time access overrides and channel switches (``AccessStore``), once for both backends."""

from __future__ import annotations

from typing import cast

from bot.ports import AccessKind, AccessRule, AccessVerdict, ChannelSwitches, Place
from storage.common import as_utc, utcnow
from storage.database import Database


class AccessMixin:
    _db: Database

    async def access_rules(self) -> list[AccessRule]:
        async with self._db.read() as tx:
            rows = await tx.fetch(
                "SELECT kind, subject, verdict, set_by, updated_at FROM access_rules"
                " ORDER BY updated_at, kind, subject"
            )
        return [
            AccessRule(
                kind=cast(AccessKind, row["kind"]),
                subject=row["subject"],
                verdict=cast(AccessVerdict, row["verdict"]),
                set_by=row["set_by"],
                updated_at=as_utc(row["updated_at"]),
            )
            for row in rows
        ]

    async def put_access_rule(self, rule: AccessRule) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO access_rules (kind, subject, verdict, set_by, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, subject) DO UPDATE SET verdict = excluded.verdict,"
                " set_by = excluded.set_by, updated_at = excluded.updated_at",
                rule.kind,
                rule.subject,
                rule.verdict,
                rule.set_by,
                utcnow(),
            )

    async def delete_access_rule(self, kind: AccessKind, subject: str) -> bool:
        async with self._db.write() as tx:
            changed = await tx.execute(
                "DELETE FROM access_rules WHERE kind = ? AND subject = ?", kind, subject
            )
        return changed > 0

    async def all_channel_switches(self) -> dict[Place, ChannelSwitches]:
        async with self._db.read() as tx:
            rows = await tx.fetch(
                "SELECT platform, scope, channel, chat_off, images_off, reply_all FROM channel_switches"
            )
        return {
            Place(row["platform"], row["scope"], row["channel"]): ChannelSwitches(
                chat_off=bool(row["chat_off"]),
                images_off=bool(row["images_off"]),
                reply_all=bool(row["reply_all"]),
            )
            for row in rows
        }

    async def put_channel_switches(self, place: Place, switches: ChannelSwitches) -> None:
        async with self._db.write() as tx:
            if switches == ChannelSwitches():
                await tx.execute(
                    "DELETE FROM channel_switches WHERE platform = ? AND scope = ? AND channel = ?",
                    place.platform,
                    place.scope,
                    place.channel,
                )
                return
            await tx.execute(
                "INSERT INTO channel_switches"
                " (platform, scope, channel, chat_off, images_off, reply_all, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, scope, channel) DO UPDATE SET"
                " chat_off = excluded.chat_off, images_off = excluded.images_off,"
                " reply_all = excluded.reply_all, updated_at = excluded.updated_at",
                place.platform,
                place.scope,
                place.channel,
                switches.chat_off,
                switches.images_off,
                switches.reply_all,
                utcnow(),
            )
