"""Settings, meta facts and image jobs (``SettingsStore``, ``ImageJobStore``), once for both backends."""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import StorageError
from bot.ports import UNFINISHED_JOB_STATES, ChannelSettings, ImageJob, Place
from storage.common import job_columns, job_from_row, settings_from_json, settings_to_json, to_utc, utcnow
from storage.database import Database


class RecordsMixin:
    _db: Database

    # ------------------------------------------------------------ settings and meta

    async def get_settings(self, place: Place) -> ChannelSettings | None:
        async with self._db.read() as tx:
            data = await tx.fetchval(
                "SELECT data FROM settings WHERE platform = ? AND scope = ? AND channel = ?",
                place.platform,
                place.scope,
                place.channel,
            )
        return None if data is None else settings_from_json(data)

    async def get_settings_many(self, places: Sequence[Place]) -> list[ChannelSettings | None]:
        if not places:
            return []
        where = " OR ".join(["(platform = ? AND scope = ? AND channel = ?)"] * len(places))
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT platform, scope, channel, data FROM settings WHERE {where}",
                *(value for p in places for value in (p.platform, p.scope, p.channel)),
            )
        found = {(r["platform"], r["scope"], r["channel"]): settings_from_json(r["data"]) for r in rows}
        return [found.get((p.platform, p.scope, p.channel)) for p in places]

    async def put_settings(self, place: Place, settings: ChannelSettings) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO settings (platform, scope, channel, data, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, scope, channel)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                place.platform,
                place.scope,
                place.channel,
                settings_to_json(settings),
                utcnow(),
            )

    async def get_meta(self, key: str) -> str | None:
        async with self._db.read() as tx:
            value = await tx.fetchval("SELECT value FROM meta WHERE key = ?", key)
        return None if value is None else str(value)

    async def get_meta_many(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * len(keys))})", *keys
            )
        return {str(r["key"]): str(r["value"]) for r in rows if r["value"] is not None}

    async def set_meta(self, key: str, value: str) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                key,
                value,
            )

    # ------------------------------------------------------------ image jobs

    async def create_job(self, job: ImageJob) -> None:
        columns = job_columns(job)
        now = utcnow()
        names = ", ".join(["id", *columns, "created_at", "updated_at"])
        marks = ", ".join("?" * (len(columns) + 3))
        async with self._db.write() as tx:
            await tx.execute(
                f"INSERT INTO image_jobs ({names}) VALUES ({marks})",
                job.id,
                *columns.values(),
                to_utc(job.created_at or now),
                now,
            )

    async def save_job(self, job: ImageJob) -> None:
        columns = job_columns(job)
        assignments = ", ".join(f"{name} = ?" for name in [*columns, "updated_at"])
        async with self._db.write() as tx:
            changed = await tx.execute(
                f"UPDATE image_jobs SET {assignments} WHERE id = ?", *columns.values(), utcnow(), job.id
            )
            if changed == 0:
                raise StorageError(f"Image job {job.id} cannot be saved: it was never created.")

    async def get_job(self, job_id: str) -> ImageJob | None:
        async with self._db.read() as tx:
            row = await tx.fetchrow("SELECT * FROM image_jobs WHERE id = ?", job_id)
        return None if row is None else job_from_row(row)

    async def unfinished_jobs(self) -> list[ImageJob]:
        marks = ", ".join("?" * len(UNFINISHED_JOB_STATES))
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT * FROM image_jobs WHERE state IN ({marks}) ORDER BY created_at, id",
                *UNFINISHED_JOB_STATES,
            )
        return [job_from_row(row) for row in rows]
