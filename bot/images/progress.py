"""Paced progress messages ("Queued, 3rd in line", "Generating… 8 s") in one place.

Many jobs in one chat each have a progress message, and every edit counts against the chat's
rate limit. A :class:`ProgressBoard` per place keeps only the newest wanted text per message and
edits one message per token of the place's ``TokenBucket`` (the streaming presenter's), oldest
change first; texts that changed again meanwhile are coalesced, unchanged texts are never sent.
A final text (a failure sentence) is delivered whatever it takes, waiting out ``retry_after``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.display.streaming import TokenBucket
from bot.errors import PlatformRateLimited

__all__ = ["ProgressBoard", "ProgressEditor"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

FINAL_RATE_LIMITED_ATTEMPTS = 10
FINAL_ERROR_ATTEMPTS = 3


class ProgressEditor(Protocol):
    async def edit_progress(self, handle: str, text: str) -> None: ...


@dataclass(slots=True)
class _Wanted:
    editor: ProgressEditor
    text: str
    final: bool = False
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    rate_limited: int = 0
    errors: int = 0


class ProgressBoard:
    """The progress messages of one place, edited within its bucket. ``close()`` when done."""

    def __init__(self, bucket: TokenBucket, *, sleep: Sleep, name: str = "") -> None:
        self._bucket = bucket
        self._sleep = sleep
        self._name = name
        self._wanted: dict[str, _Wanted] = {}  # handle -> newest text, in order of first change
        self._shown: dict[str, str] = {}
        self._pump: asyncio.Task[None] | None = None

    @property
    def bucket(self) -> TokenBucket:
        return self._bucket

    def shown(self, handle: str, text: str) -> None:
        """Note a text a message already has (just sent), so it is not sent again."""
        self._shown[handle] = text

    def update(self, editor: ProgressEditor, handle: str, text: str) -> None:
        """Show ``text`` on ``handle`` when the budget allows; a newer update replaces it."""
        wanted = self._wanted.get(handle)
        if wanted is not None and wanted.final:
            return  # a final text is never replaced by a passing one
        if wanted is None and self._shown.get(handle) == text:
            return
        if wanted is None:
            self._wanted[handle] = _Wanted(editor, text)
        else:
            wanted.text = text
        self._wake()

    async def finish(self, editor: ProgressEditor, handle: str, text: str) -> bool:
        """Deliver the last text of ``handle``, waiting for the budget; False if the platform refused it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        wanted = self._wanted.get(handle)
        if wanted is None:
            wanted = self._wanted[handle] = _Wanted(editor, text)
        wanted.text, wanted.final = text, True
        wanted.waiters.append(future)
        self._wake()
        return await future

    def forget(self, handle: str) -> None:
        """The message is gone (deleted): drop whatever was still to be shown on it."""
        wanted = self._wanted.pop(handle, None)
        self._shown.pop(handle, None)
        if wanted is not None:
            _resolve(wanted, False)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        for wanted in self._wanted.values():
            _resolve(wanted, False)
        self._wanted.clear()

    @property
    def idle(self) -> bool:
        return not self._wanted

    # ------------------------------------------------------------ the pump

    def _wake(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run(), name=f"image-progress-{self._name}")

    async def _run(self) -> None:
        while self._wanted:
            delay = self._bucket.delay()
            if delay > 0:
                await self._sleep(delay)
                continue
            handle = next(iter(self._wanted))
            wanted = self._wanted.pop(handle)
            if self._shown.get(handle) == wanted.text:
                _resolve(wanted, True)
                continue
            self._bucket.take()
            text = wanted.text
            try:
                await wanted.editor.edit_progress(handle, text)
            except PlatformRateLimited as exc:
                self._bucket.hold(exc.retry_after)
                self._retry(handle, wanted, rate_limited=True)
            except Exception:
                logger.warning("progress edit of %s in %s failed", handle, self._name, exc_info=True)
                self._retry(handle, wanted, rate_limited=False)
            else:
                self._shown[handle] = text
                if handle in self._wanted and self._wanted[handle].text == text:
                    _resolve(self._wanted.pop(handle), True)
                _resolve(wanted, True)

    def _retry(self, handle: str, wanted: _Wanted, *, rate_limited: bool) -> None:
        """Put a refused text back (unless a newer one is waiting); finals only a few times more."""
        if rate_limited:
            wanted.rate_limited += 1
        else:
            wanted.errors += 1
        gave_up = wanted.rate_limited >= FINAL_RATE_LIMITED_ATTEMPTS or wanted.errors >= FINAL_ERROR_ATTEMPTS
        newer = self._wanted.get(handle)
        if newer is not None:
            newer.waiters.extend(wanted.waiters)
            if wanted.final and not newer.final:
                newer.text, newer.final = wanted.text, True
            return
        if (wanted.final or rate_limited) and not gave_up:
            self._wanted[handle] = wanted  # back at the end: other messages get their turn
        else:
            _resolve(wanted, False)


def _resolve(wanted: _Wanted, ok: bool) -> None:
    for future in wanted.waiters:
        if not future.done():
            future.set_result(ok)
    wanted.waiters.clear()
