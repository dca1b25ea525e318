"""HTTP plumbing of the fake Discord in `tests.fakes.discord`: limits, faults, bodies, answers.

`RateLimiter` keeps Discord's buckets (per route kind and major parameter: channel, guild or
webhook token), the bot-wide global limit and the injected faults, and builds the
`X-RateLimit-*` headers discord.py paces itself by. The helpers read JSON and multipart
(`payload_json` + `files[n]`) bodies and write answers with content type exactly
`application/json`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord_models import DiscordError, DiscordLimits, RateBucket, Violation


@dataclass(frozen=True, slots=True)
class Upload:
    index: int
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Body:
    json: Any
    uploads: list[Upload]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    payload: Any = None


@dataclass(frozen=True, slots=True)
class RouteSpec:
    bucket: str
    bot_auth: bool
    global_limit: bool


@dataclass(slots=True)
class Fault:
    """An injected failure; mutable because it counts down how often it still fires."""

    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    times: int
    is_global: bool
    via: bool


class TooManyRequests(Exception):
    def __init__(self, retry_after: float, *, is_global: bool, via: bool = True) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after
        self.is_global = is_global
        self.via = via


def json_response(status: int, payload: Any, headers: Mapping[str, str]) -> web.Response:
    # Exactly `application/json`: discord.py compares the header verbatim and treats
    # anything else (aiohttp's `; charset=utf-8`) as text.
    body = json.dumps(payload).encode()
    return web.Response(status=status, body=body, headers={**headers, "Content-Type": "application/json"})


def reply_response(reply: Reply, headers: Mapping[str, str]) -> web.Response:
    if reply.status == 204:
        return web.Response(status=204, headers=headers)
    return json_response(reply.status, reply.payload, headers)


def too_many_response(limited: TooManyRequests, headers: Mapping[str, str]) -> web.Response:
    out = dict(headers) | {
        "Retry-After": str(math.ceil(limited.retry_after)),
        "X-RateLimit-Scope": "global" if limited.is_global else "user",
    }
    if limited.is_global:
        out["X-RateLimit-Global"] = "true"
    if not limited.via:
        # What a Cloudflare ban looks like: no Via, an HTML body.
        return web.Response(status=429, text="<html>banned</html>", headers=out)
    out["Via"] = "1.1 google"
    body = {
        "message": "You are being rate limited.",
        "retry_after": limited.retry_after,
        "global": limited.is_global,
    }
    return json_response(429, body, out)


async def read_body(request: web.Request, request_limit: int) -> Body:
    if request.content_length and request.content_length > request_limit:
        raise DiscordError(413, 40005, "Request entity too large")
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request)
    if request.can_read_body:
        text = await request.text()
        return Body(json.loads(text) if text else None, [])
    return Body(None, [])


async def _read_multipart(request: web.Request) -> Body:
    payload: Any = None
    uploads: list[Upload] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "payload_json":
            payload = json.loads(await part.text())
        elif match := re.fullmatch(r"files\[(\d+)\]", name):
            data = bytes(await part.read(decode=False))
            uploads.append(Upload(int(match[1]), part.filename or "file", data))
    return Body(payload, uploads)


class RateLimiter:
    """Discord's rate limits as the fake enforces them; every 429 it gives is a `Violation`."""

    def __init__(self, limits: DiscordLimits) -> None:
        self.limits = limits
        self.violations: list[Violation] = []
        self._buckets: dict[tuple[str, str], RateBucket] = {}
        self._global = RateBucket(limits.global_per_window, limits.global_window)
        self._faults: list[Fault] = []

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method and fault.pattern.fullmatch(path):
                fault.times -= 1
                return fault
        return None

    @staticmethod
    def fault_response(fault: Fault) -> web.Response:
        if fault.status == 429:
            limited = TooManyRequests(fault.retry_after, is_global=fault.is_global, via=fault.via)
            return too_many_response(limited, {})
        body = {"message": f"{fault.status}: injected by fake-discord", "code": 0}
        return json_response(fault.status, body, {})

    def check_global(self, method: str, path: str, now: float) -> None:
        if not self._global.take(now):
            retry_after = self._global.reset_after(now)
            self.violations.append(Violation("global", method, path, now, retry_after, True))
            raise TooManyRequests(retry_after, is_global=True)

    def take_bucket(self, spec: RouteSpec, major: str, method: str, path: str, now: float) -> dict[str, str]:
        """Count the request in its bucket; the headers go on the answer, 429 or not."""
        key = (spec.bucket, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = RateBucket(self._bucket_limit(spec.bucket), self.limits.window)
        allowed = bucket.take(now)
        reset_after = bucket.reset_after(now)
        headers = {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(bucket.remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            # The same hash for every channel: discord.py adds the major parameter itself.
            "X-RateLimit-Bucket": hashlib.sha1(spec.bucket.encode()).hexdigest()[:32],
        }
        if not allowed:
            self.violations.append(Violation(spec.bucket, method, path, now, reset_after, False))
            raise TooManyRequests(reset_after, is_global=False)
        return headers

    def _bucket_limit(self, bucket: str) -> int:
        if bucket in ("message.create", "message.edit"):
            return self.limits.messages_per_window
        if bucket == "webhook":
            return self.limits.webhook_per_window
        return self.limits.default_per_window
