"""Process leases (``bot.ports.LeaseStore``): who owns which hold and which image job.

Each running bot process registers a row in ``processes`` whose ``expires_at`` it pushes forward
with a heartbeat. Every reservation and image job a store creates is stamped with the store's
``process_id`` by the database itself (PostgreSQL: a column default read from the connection's
``minitoolai.process_id`` setting; SQLite: a temporary trigger on the writer connection), so
``storage.ledger`` and ``storage.records`` need not know about owners.

Taking over is one statement per table: rows whose owner has no live lease are re-stamped with
this process's id under ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two processes recovering at
the same moment never take the same row; SQLite has one process (a second is refused) and its
``BEGIN IMMEDIATE`` already serialises writers. Times are the processes' UTC clocks, like every
other timestamp of the store: keep hosts' clocks in sync (NTP); a lease of tens of seconds
dwarfs their skew.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bot.ports import UNFINISHED_JOB_STATES, ConversationKey, ImageJob, Place, ProcessInfo, Reservation
from storage.common import job_from_row, reservation_from_row, utcnow
from storage.database import Database

_RESERVATION_COLUMNS = (
    "id, platform, holder, spender_platform, spender_holder, amount, purpose, state, charged, meta,"
    " created_at, closed_at"
)
# No live lease: no owner, or an owner whose lease has lapsed (or whose row is gone).
_ORPHANED = (
    "(owner IS NULL OR NOT EXISTS (SELECT 1 FROM processes p WHERE p.id = owner AND p.expires_at > ?))"
)


class LeasesMixin:
    _db: Database
    process_id: str

    def _skip_locked(self) -> str:
        return f"{self._db.lock_clause} SKIP LOCKED" if self._db.lock_clause else ""

    async def register_process(self, *, ttl: float, host: str, pid: int) -> None:
        now = utcnow()
        async with self._db.write() as tx:
            await tx.execute(
                "INSERT INTO processes (id, host, pid, started_at, expires_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
                self.process_id,
                host,
                pid,
                now,
                now + timedelta(seconds=ttl),
            )

    async def renew_lease(self, *, ttl: float) -> bool:
        now = utcnow()
        async with self._db.write() as tx:
            renewed = await tx.execute(
                "UPDATE processes SET expires_at = ? WHERE id = ? AND expires_at > ?",
                now + timedelta(seconds=ttl),
                self.process_id,
                now,
            )
        return renewed == 1

    async def end_lease(self) -> None:
        async with self._db.write() as tx:
            await tx.execute("DELETE FROM processes WHERE id = ?", self.process_id)

    async def end_other_leases(self) -> None:
        async with self._db.write() as tx:
            await tx.execute("DELETE FROM processes WHERE id <> ?", self.process_id)

    async def live_processes(self) -> list[ProcessInfo]:
        async with self._db.read() as tx:
            rows = await tx.fetch(
                "SELECT id, host, pid, started_at, expires_at FROM processes WHERE expires_at > ?"
                " ORDER BY started_at, id",
                utcnow(),
            )
        return [ProcessInfo(row["id"], row["host"], int(row["pid"])) for row in rows]

    async def claim_reservations(self) -> list[Reservation]:
        now = utcnow()
        async with self._db.write() as tx:
            rows = await tx.fetch(
                f"UPDATE reservations SET owner = ? WHERE id IN (SELECT id FROM reservations"
                f" WHERE state = 'open' AND {_ORPHANED}{self._skip_locked()})"
                f" RETURNING {_RESERVATION_COLUMNS}",
                self.process_id,
                now,
            )
            # Processes long dead own nothing any more: forget them.
            await tx.execute(
                "DELETE FROM processes WHERE expires_at < ? AND id <> ?",
                now - timedelta(hours=1),
                self.process_id,
            )
        found = [reservation_from_row(row) for row in rows]
        found.sort(key=lambda r: (r.created_at, r.id))
        return found

    async def claim_unfinished_jobs(self, platforms: Sequence[str]) -> list[ImageJob]:
        if not platforms:
            return []
        states = ", ".join("?" * len(UNFINISHED_JOB_STATES))
        names = ", ".join("?" * len(platforms))
        now = utcnow()
        async with self._db.write() as tx:
            rows = await tx.fetch(
                f"UPDATE image_jobs SET owner = ? WHERE id IN (SELECT id FROM image_jobs"
                f" WHERE state IN ({states}) AND platform IN ({names}) AND {_ORPHANED}"
                f"{self._skip_locked()}) RETURNING *",
                self.process_id,
                *UNFINISHED_JOB_STATES,
                *platforms,
                now,
            )
            jobs = [job_from_row(row) for row in rows]
            held = [job.reservation_id for job in jobs if job.reservation_id is not None]
            if held:
                # The job's hold goes with it, so no one else settles or releases it meanwhile.
                await tx.execute(
                    f"UPDATE reservations SET owner = ? WHERE state = 'open' AND id IN ({', '.join('?' * len(held))})",
                    self.process_id,
                    *held,
                )
        jobs.sort(key=lambda job: (job.created_at, job.id))
        return jobs

    async def claim_role(self, name: str) -> bool:
        async with self._db.write() as tx:
            holder = await tx.fetchval(
                "INSERT INTO roles (name, owner) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                " SET owner = excluded.owner WHERE roles.owner = excluded.owner OR NOT EXISTS"
                " (SELECT 1 FROM processes p WHERE p.id = roles.owner AND p.expires_at > ?)"
                " RETURNING owner",
                name,
                self.process_id,
                utcnow(),
            )
        return bool(holder == self.process_id)

    # ------------------------------------------------------------ answers in progress

    async def take_answer(self, key: ConversationKey) -> bool:
        async with self._db.write() as tx:
            holder = await tx.fetchval(
                "INSERT INTO answers (platform, scope, channel, owner, process) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, scope, channel, owner) DO UPDATE SET process = excluded.process"
                " WHERE answers.process = excluded.process OR NOT EXISTS (SELECT 1 FROM processes p"
                " WHERE p.id = answers.process AND p.expires_at > ?) RETURNING process",
                key.platform,
                key.scope,
                key.channel,
                key.owner,
                self.process_id,
                utcnow(),
            )
        return bool(holder == self.process_id)

    async def end_answer(self, key: ConversationKey) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "DELETE FROM answers WHERE platform = ? AND scope = ? AND channel = ? AND owner = ?"
                " AND process = ?",
                key.platform,
                key.scope,
                key.channel,
                key.owner,
                self.process_id,
            )

    async def answering_processes(self, place: Place) -> list[str]:
        async with self._db.read() as tx:
            rows = await tx.fetch(
                "SELECT DISTINCT a.process FROM answers a JOIN processes p ON p.id = a.process"
                " WHERE a.platform = ? AND a.scope = ? AND a.channel = ? AND p.expires_at > ?"
                " ORDER BY a.process",
                place.platform,
                place.scope,
                place.channel,
                utcnow(),
            )
        return [str(row["process"]) for row in rows]

    async def holds_job(self, job_id: str) -> bool:
        async with self._db.read() as tx:
            # Ours, and our lease has not lapsed (a store that never registered, as in a
            # single-process test, has no lease to lapse).
            found = await tx.fetchval(
                "SELECT 1 FROM image_jobs WHERE id = ? AND owner = ? AND NOT EXISTS"
                " (SELECT 1 FROM processes WHERE id = ? AND expires_at <= ?)",
                job_id,
                self.process_id,
                self.process_id,
                utcnow(),
            )
        return found is not None
