"""A pretend chat platform for the image service: it keeps messages, records every call, and
hands out ``RecordingImageSurface``s (it is also the ``SurfaceFactory`` a restarted service uses).

It behaves like a strict platform: it refuses empty texts, unchanged edits ("message is not
modified"), edits of deleted messages and captions over ``caption_limit``, and can answer the
next edits with ``PlatformRateLimited``. Tests wait on :meth:`FakeImagePlatform.wait_for`
(a condition notified at every call), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import PlatformRateLimited
from bot.minitoolai.types import DownloadedImage
from bot.ports import ImageJob, Place


class SurfaceRefused(Exception):
    """What the fake platform answers to a request it does not like."""


@dataclass(frozen=True, slots=True)
class ImageCall:
    kind: str  # "show" | "edit" | "post" | "delete"
    place: Place
    handle: str
    text: str
    at: float  # the clock the platform was given (the service's clock in tests)
    ok: bool = True


@dataclass(frozen=True, slots=True)
class PostedImage:
    handle: str
    place: Place
    job_id: str
    caption: str
    mime: str
    size: int
    reply_to: str | None


class FakeImagePlatform:
    """Messages of every place, by handle; ``surface(place)`` gives the view of one place."""

    def __init__(
        self,
        clock: Callable[[], float] = lambda: 0.0,
        *,
        caption_limit: int = 1024,
        name: str = "fake",
    ) -> None:
        self.clock = clock
        self.caption_limit = caption_limit
        self.name = name
        self.messages: dict[str, str] = {}  # handle -> current text (progress messages)
        self.posts: list[PostedImage] = []
        self.deleted: list[str] = []
        self.calls: list[ImageCall] = []
        self.rate_limit_next_edits: list[float] = []  # retry_after answers for the next edits
        self.fail_next_deletes = 0
        self._count = 0
        self._changed = asyncio.Condition()

    # ------------------------------------------------------------ SurfaceFactory

    def surface(self, place: Place) -> RecordingImageSurface:
        return RecordingImageSurface(self, place)

    def for_job(self, job: ImageJob) -> RecordingImageSurface:
        return RecordingImageSurface(self, job.place)

    # ------------------------------------------------------------ for tests

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (checked after every call the platform sees)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    def texts_of(self, handle: str) -> list[str]:
        """Every text a message showed, in order (its first text, then each accepted edit)."""
        return [c.text for c in self.calls if c.handle == handle and c.ok and c.kind in ("show", "edit")]

    def calls_in(self, place: Place, *kinds: str) -> list[ImageCall]:
        return [c for c in self.calls if c.place == place and c.ok and (not kinds or c.kind in kinds)]

    def posts_for(self, job_id: str) -> list[PostedImage]:
        return [p for p in self.posts if p.job_id == job_id]

    # ------------------------------------------------------------ behind the surfaces

    async def record(self, call: ImageCall) -> None:
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()

    def new_handle(self, place: Place) -> str:
        self._count += 1
        return f"{place.scope}:{self._count}"


class RecordingImageSurface:
    """One place's ``ImageSurface`` on a :class:`FakeImagePlatform`."""

    def __init__(self, platform: FakeImagePlatform, place: Place) -> None:
        self.platform = platform
        self.place = place
        self.caption_limit = platform.caption_limit

    async def show_progress(self, text: str) -> str:
        await asyncio.sleep(0)  # a network round trip
        p = self.platform
        if not text.strip():
            await self._refuse("show", "", text, "empty text")
        handle = p.new_handle(self.place)
        p.messages[handle] = text
        await p.record(ImageCall("show", self.place, handle, text, p.clock()))
        return handle

    async def edit_progress(self, handle: str, text: str) -> None:
        await asyncio.sleep(0)
        p = self.platform
        if p.rate_limit_next_edits:
            retry_after = p.rate_limit_next_edits.pop(0)
            await p.record(ImageCall("edit", self.place, handle, text, p.clock(), ok=False))
            raise PlatformRateLimited(retry_after)
        if handle not in p.messages:
            await self._refuse("edit", handle, text, "message to edit not found")
        if p.messages[handle] == text:
            await self._refuse("edit", handle, text, "message is not modified")
        if not text.strip():
            await self._refuse("edit", handle, text, "empty text")
        p.messages[handle] = text
        await p.record(ImageCall("edit", self.place, handle, text, p.clock()))

    async def post_image(
        self, image: DownloadedImage, caption: str, job_id: str, *, reply_to: str | None
    ) -> str:
        await asyncio.sleep(0)
        p = self.platform
        if len(caption) > self.caption_limit:
            await self._refuse("post", "", caption, f"caption of {len(caption)} characters")
        handle = p.new_handle(self.place)
        p.posts.append(
            PostedImage(handle, self.place, job_id, caption, image.mime, len(image.data), reply_to)
        )
        await p.record(ImageCall("post", self.place, handle, caption, p.clock()))
        return handle

    async def delete(self, handle: str) -> None:
        await asyncio.sleep(0)
        p = self.platform
        if p.fail_next_deletes > 0:
            p.fail_next_deletes -= 1
            await self._refuse("delete", handle, "", "injected delete failure")
        known = handle in p.messages or any(post.handle == handle for post in p.posts)
        if not known or handle in p.deleted:
            await self._refuse("delete", handle, "", "message to delete not found")
        p.messages.pop(handle, None)
        p.deleted.append(handle)
        await p.record(ImageCall("delete", self.place, handle, "", p.clock()))

    async def _refuse(self, kind: str, handle: str, text: str, why: str) -> None:
        p = self.platform
        await p.record(ImageCall(kind, self.place, handle, text, p.clock(), ok=False))
        raise SurfaceRefused(why)
