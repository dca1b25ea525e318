"""This process's lease in the database, and taking over the work of processes that died.

    start     register (a new id, a lease of ``ttl`` seconds) -> take over orphaned holds
    running   renew every ttl/3; every ttl/2 take over again (holds, then image jobs)
    lapsed    a renewal finds the lease already expired: others may own this process's work
              now, so it stops (its supervisor starts a fresh one)
    stop      end the lease: what is left is others' to take at once

Everything that must happen once is owned by one process: a hold (settled or released by its
owner), an image job (submitted, polled and posted by its owner). A restart of one process touches
nothing of the others; the store claims orphans atomically, so two processes never take the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from bot.credits import CreditService, RecoveryReport
from bot.images.service import ImageService
from bot.ports import LeaseStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Takeover:
    holds: RecoveryReport
    jobs: int


class ProcessLease:
    """Register, renew and end this process's lease; take over orphans on a schedule."""

    def __init__(
        self,
        store: LeaseStore,
        credits: CreditService,
        images: ImageService,
        *,
        ttl: float = 30.0,
        exclusive: bool = False,
    ) -> None:
        if ttl <= 0:
            raise ValueError("A lease must last a positive number of seconds.")
        self._store = store
        self._credits = credits
        self._images = images
        self.ttl = ttl
        # True when no other process can use the database (SQLite, locked for this process):
        # every other process row is then a dead one, and its work is ours at once.
        self._exclusive = exclusive
        self.lapsed = False

    @property
    def process_id(self) -> str:
        return self._store.process_id

    async def start(self) -> RecoveryReport:
        """Register, then settle or release the holds that dead processes left open."""
        await self._store.register_process(ttl=self.ttl, host=socket.gethostname(), pid=os.getpid())
        if self._exclusive:
            await self._store.end_other_leases()
        logger.info("process %s: lease of %g s taken", self.process_id, self.ttl)
        return await self._recover_holds()

    async def take_over(self) -> Takeover:
        """Holds first, then image jobs (each adapter's platform), of processes whose lease expired."""
        holds = await self._recover_holds()
        jobs = await self._images.resume()
        if jobs:
            logger.info("process %s: took over %d image job(s)", self.process_id, jobs)
        return Takeover(holds, jobs)

    async def _recover_holds(self) -> RecoveryReport:
        claimed = await self._store.claim_reservations()
        if not claimed:
            return RecoveryReport()
        report = await self._credits.recover(self._images.recovery_resolver(), claimed)
        logger.info("process %s: took over %d hold(s): %s", self.process_id, len(claimed), report)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every ttl/3 and take over every ttl/2 until ``stop``; a lapsed lease sets ``stop``."""
        renew_every, takeover_every = self.ttl / 3, self.ttl / 2
        loop = asyncio.get_running_loop()
        next_takeover = loop.time() + takeover_every
        first = True  # renewed at once: starting the adapters may have taken a good part of the lease
        while not stop.is_set():
            if not first:
                try:
                    async with asyncio.timeout(renew_every):
                        await stop.wait()
                    break
                except TimeoutError:
                    pass
            first = False
            if not await self._renew():
                self.lapsed = True
                logger.error(
                    "process %s: its lease expired before it could renew it (database unreachable or the "
                    "process stalled), so other processes may have taken its work; stopping",
                    self.process_id,
                )
                stop.set()
                break
            if loop.time() >= next_takeover:
                next_takeover = loop.time() + takeover_every
                await self._take_over_quietly(stop)

    async def _renew(self) -> bool:
        try:
            return await self._store.renew_lease(ttl=self.ttl)
        except Exception:
            # The database may be back before the lease runs out; the next renewal says.
            logger.warning("process %s: could not renew its lease", self.process_id, exc_info=True)
            return True

    async def _take_over_quietly(self, stop: asyncio.Event) -> None:
        try:
            await self.take_over()
        except Exception:
            if not stop.is_set():  # at a stop the image service may close under us: that is fine
                logger.exception(
                    "process %s: taking over orphaned work failed; retrying later", self.process_id
                )

    async def close(self) -> None:
        """End the lease (not after it lapsed: then it is no longer ours to end)."""
        if self.lapsed:
            return
        try:
            await self._store.end_lease()
        except Exception:
            logger.warning("process %s: could not end its lease; it expires by itself", self.process_id)
