"""Telegram's side of readiness: every Bot API request reports whether Telegram answered.

Every 429 Telegram answers is counted here too, whichever code path made the request.

Long polling means a getUpdates request is always under way, so a Telegram that stops answering
shows within one request; one that comes back shows with the first answer after it. A webhook
bot reports connected once its webhook is set, and then with every request it makes.
"""

from __future__ import annotations

import json
from typing import Any

from telegram.error import NetworkError

from adapters.telegram.transport import AiohttpRequest
from bot.ops import metrics
from bot.ops.health import PlatformLink

__all__ = ["ReportingRequest"]


class ReportingRequest(AiohttpRequest):
    """An :class:`AiohttpRequest` that tells a :class:`PlatformLink` how each request went."""

    def __init__(self, link: PlatformLink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._link = link

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        try:
            status, body = await super().do_request(*args, **kwargs)
        except NetworkError as exc:
            self._link.disconnected(f"Telegram could not be reached ({type(exc).__name__})")
            raise
        if status == 429:
            metrics.rate_limited(_retry_after(body), "telegram")
        if status >= 500:
            self._link.disconnected(f"Telegram answered HTTP {status}")
        elif status == 200:
            self._link.connected()
        return status, body


def _retry_after(body: bytes) -> float:
    try:
        return float(json.loads(body)["parameters"]["retry_after"])
    except (ValueError, KeyError, TypeError):
        return 0.0
