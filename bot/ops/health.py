"""Is the bot alive, and is it ready: the database answers and every platform is connected.

Each adapter gets a :class:`PlatformLink` from :meth:`Health.platform` and reports through it
(``connected()`` / ``disconnected(reason)``): Telegram when polling or its webhook works,
Discord when its gateway is connected. The composition root gives :class:`Health` a database
check and the numbers worth a gauge (queue, open holds); ``/readyz``, ``/metrics`` and
``python -m bot status`` read them from here. The links' last changes are also written to the
database's meta table, so ``status`` can tell them from another process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.ops import metrics

__all__ = ["META_PREFIX", "Health", "LinkState", "MetaWriter", "PlatformLink", "Snapshot"]

logger = logging.getLogger(__name__)

META_PREFIX = "ops.platform."
DB_CHECK_TIMEOUT = 2.0  # seconds: a database slower than this to answer a ping is not ready
LinkStatus = Literal["connecting", "connected", "disconnected"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LinkState:
    status: LinkStatus
    since: datetime
    reason: str = ""
    last_connected: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "status": self.status,
                "since": self.since.isoformat(),
                "reason": self.reason,
                "last_connected": self.last_connected.isoformat() if self.last_connected else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LinkState:
        data = json.loads(text)
        last = data.get("last_connected")
        return cls(
            data["status"],
            datetime.fromisoformat(data["since"]),
            data.get("reason", ""),
            datetime.fromisoformat(last) if last else None,
        )


class PlatformLink:
    """One platform's connection as its adapter reports it. Calls are cheap and idempotent:
    an adapter may report ``connected()`` after every successful request."""

    def __init__(self, name: str, changed: Callable[[], None], clock: Callable[[], datetime]) -> None:
        self.name = name
        self._changed = changed
        self._clock = clock
        self.state = LinkState("connecting", clock())

    @property
    def is_connected(self) -> bool:
        return self.state.status == "connected"

    def connected(self) -> None:
        if self.state.status != "connected":
            now = self._clock()
            self.state = LinkState("connected", now, "", now)
            logger.info("%s: connected", self.name)
            self._changed()

    def disconnected(self, reason: str) -> None:
        if self.state.status != "disconnected" or self.state.reason != reason:
            was_connected = self.state.status == "connected"
            self.state = LinkState("disconnected", self._clock(), reason, self.state.last_connected)
            if was_connected:
                logger.warning("%s: disconnected (%s)", self.name, reason)
            self._changed()


class MetaWriter(Protocol):
    async def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gauges show; the composition root says how to read it from the services."""

    image_queue: int = 0
    image_running: int = 0
    open_holds: int = 0
    open_held: int = 0


class Health:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._links: dict[str, PlatformLink] = {}
        self._changed = asyncio.Event()
        self.database_check: Callable[[], Awaitable[object]] | None = None
        self.snapshot: Callable[[], Awaitable[Snapshot]] | None = None

    def platform(self, name: str) -> PlatformLink:
        """The link an adapter reports through; a platform with a link must be connected to be ready."""
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = PlatformLink(name, self._changed.set, self._clock)
            self._changed.set()
        return link

    @property
    def links(self) -> list[PlatformLink]:
        return list(self._links.values())

    async def database_ok(self) -> str | None:
        """None when the database answers; otherwise why not."""
        if self.database_check is None:
            return None
        try:
            async with asyncio.timeout(DB_CHECK_TIMEOUT):
                await self.database_check()
        except TimeoutError:
            return f"database: no answer within {DB_CHECK_TIMEOUT:g} s"
        except Exception as exc:
            return f"database: {type(exc).__name__}"
        return None

    async def readiness(self) -> list[str]:
        """Why the bot is not ready (empty: ready)."""
        reasons: list[str] = []
        database = await self.database_ok()
        metrics.DATABASE_UP.set(0 if database else 1)
        if database:
            reasons.append(database)
        for link in self._links.values():
            metrics.PLATFORM_UP.labels(link.name).set(1 if link.is_connected else 0)
            if not link.is_connected:
                reason = f": {link.state.reason}" if link.state.reason else ""
                reasons.append(f"{link.name}: {link.state.status}{reason}")
        metrics.READY.set(0 if reasons else 1)
        return reasons

    async def refresh(self) -> None:
        """Bring the gauges up to date (before /metrics is read)."""
        await self.readiness()
        if self.snapshot is not None:
            try:
                snap = await self.snapshot()
            except Exception:
                logger.warning("could not read the numbers for /metrics", exc_info=True)
                return
            metrics.IMAGE_QUEUE.set(snap.image_queue)
            metrics.IMAGE_RUNNING.set(snap.image_running)
            metrics.OPEN_HOLDS.set(snap.open_holds)
            metrics.OPEN_HELD.set(snap.open_held)

    async def save(self, store: MetaWriter) -> None:
        """Write each platform's connection state to the database's meta table."""
        for link in list(self._links.values()):
            try:
                await store.set_meta(META_PREFIX + link.name, link.state.to_json())
            except Exception:
                logger.warning("could not record %s's connection state", link.name, exc_info=True)

    async def record_links(self, store: MetaWriter, stop: asyncio.Event) -> None:
        """Save the links whenever one changes, until ``stop``, so ``python -m bot status`` can
        tell them from another process (the composition root saves them once more at the end)."""
        while not stop.is_set():
            self._changed.clear()
            await self.save(store)
            waiter = asyncio.ensure_future(self._changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
