"""The request an answer or a picture job belongs to: its id (for log lines), platform, model, start.

A platform event starts a request (:func:`begin`); every task started from it inherits the
context, so the presenter's sends and the settle deep below carry the same id and labels.
"""

from __future__ import annotations

import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from bot.logs import REQUEST_ID

__all__ = ["RequestContext", "begin", "current"]


@dataclass(slots=True)
class RequestContext:
    id: str
    platform: str = ""
    model: str = ""
    started: float = field(default_factory=time.monotonic)
    shown: bool = False  # the first text of the answer is visible
    claimed: bool = False  # an answer or a job has taken this request: the next one starts anew


_CURRENT: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current() -> RequestContext | None:
    return _CURRENT.get()


def begin(platform: str, *, request_id: str | None = None, claim: bool = False) -> RequestContext:
    """Start a request in this task (and the tasks it starts) for a platform event.

    With ``claim`` (the core's services starting an answer), join the request the adapter began
    for this event if no answer has taken it yet; a task that serves many events in turn (the
    terminal chat) thus gets a new id per answer.
    """
    context = _CURRENT.get()
    if (
        request_id is None
        and context is not None
        and not context.claimed
        and context.platform in ("", platform)
    ):
        context.platform = platform
        context.claimed = claim
        return context
    context = RequestContext(request_id or secrets.token_hex(6), platform, claimed=claim)
    _CURRENT.set(context)
    REQUEST_ID.set(context.id)
    return context
