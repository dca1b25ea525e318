"""The bot's Prometheus metrics and the one-line recorders the rest of the code calls.

Every label is bounded: a platform name, a model name from the price table, an outcome, a
reason, a job state, an operation name. No label ever holds a user id, a chat id or any text.
The platform (and, once known, the model) of the current request comes from
:mod:`bot.ops.context`, so callers deep in the presenter or the credit service pass neither.

Recording is off until the composition root turns it on (``METRICS_LISTEN`` set): each recorder
then costs one flag test, which is what ``bench/stream_pacing.py --metrics`` compares against.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from bot.errors import InsufficientCredits, MiniToolAIError, NotAllowed, QueueFull, ValidationError
from bot.ops import context

__all__ = ["REGISTRY", "enabled", "set_enabled"]

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

NS = "minitoolai_bot"
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0)
_LAG = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_QUEUE = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_DB = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ANSWERS = Counter(
    "answers",
    "Chat answers by how they ended",
    ["platform", "model", "outcome", "reason"],
    namespace=NS,
    registry=REGISTRY,
)
FIRST_TEXT = Histogram(
    "first_text_seconds",
    "From the platform event to the answer's first visible text",
    ["platform"],
    namespace=NS,
    buckets=_LATENCY,
    registry=REGISTRY,
)
VISIBLE_LAG = Histogram(
    "visible_lag_seconds",
    "How long streamed text waited before a send or edit showed it",
    ["platform"],
    namespace=NS,
    buckets=_LAG,
    registry=REGISTRY,
)
TOKENS = Counter(
    "tokens",
    "Tokens of settled chat answers, in (prompt) and out (completion)",
    ["platform", "model", "direction"],
    namespace=NS,
    registry=REGISTRY,
)
CHARGED = Counter(
    "charged_microdollars",
    "Money charged to users and pools, in micro-dollars",
    ["platform", "purpose", "model"],
    namespace=NS,
    registry=REGISTRY,
)
HELD = Counter(
    "held_microdollars",
    "Money held by reservations when they were opened, in micro-dollars",
    ["platform", "purpose"],
    namespace=NS,
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "upstream_errors", "Errors from MiniToolAI by kind", ["kind"], namespace=NS, registry=REGISTRY
)
RATE_LIMITED = Counter(
    "platform_rate_limited",
    "Rate limit answers (HTTP 429) received from a platform",
    ["platform"],
    namespace=NS,
    registry=REGISTRY,
)
RETRY_AFTER = Counter(
    "platform_retry_after_seconds",
    "Seconds of retry_after a platform asked the bot to wait",
    ["platform"],
    namespace=NS,
    registry=REGISTRY,
)
MESSAGES = Counter(
    "platform_messages",
    "Messages sent and edited on a platform for answers",
    ["platform", "op"],
    namespace=NS,
    registry=REGISTRY,
)
IMAGE_JOBS = Counter(
    "image_jobs", "Picture jobs entering a state", ["platform", "state"], namespace=NS, registry=REGISTRY
)
IMAGE_WAIT = Histogram(
    "image_queue_wait_seconds",
    "How long a picture job waited in the queue before it started",
    ["platform"],
    namespace=NS,
    buckets=_QUEUE,
    registry=REGISTRY,
)
DB_CALLS = Histogram(
    "db_call_seconds",
    "Database call latency by store operation",
    ["op"],
    namespace=NS,
    buckets=_DB,
    registry=REGISTRY,
)
# Gauges set from the bot's state when /metrics is read (see bot.ops.health).
IMAGE_QUEUE = Gauge(
    "image_queue_length", "Picture jobs waiting in the queue", namespace=NS, registry=REGISTRY
)
IMAGE_RUNNING = Gauge("image_jobs_running", "Picture jobs running now", namespace=NS, registry=REGISTRY)
OPEN_HOLDS = Gauge(
    "open_reservations", "Reservations (credit holds) open now", namespace=NS, registry=REGISTRY
)
OPEN_HELD = Gauge(
    "open_held_microdollars",
    "Money held by open reservations now, in micro-dollars",
    namespace=NS,
    registry=REGISTRY,
)
READY = Gauge(
    "ready", "1 when the database answers and every platform is connected", namespace=NS, registry=REGISTRY
)
PLATFORM_UP = Gauge(
    "platform_connected",
    "1 while the platform connection works",
    ["platform"],
    namespace=NS,
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "database_up", "1 when the database answered the last check", namespace=NS, registry=REGISTRY
)

_on = False
_queued_at: dict[str, float] = {}
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, kept: prometheus-client's lookup takes a lock and validates
    each time, several times the cost of the increment itself. Labels are bounded, so is this."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def set_enabled(on: bool) -> None:
    global _on
    _on = on
    if not on:
        _queued_at.clear()


def enabled() -> bool:
    return _on


def _platform() -> str:
    ctx = context.current()
    return ctx.platform if ctx is not None else ""


# ---------------------------------------------------------------- answers


class _Result(Protocol):
    @property
    def outcome(self) -> str: ...

    @property
    def charged(self) -> int: ...


P = ParamSpec("P")
R = TypeVar("R", bound=_Result)


def _refusal(exc: Exception) -> str:
    """Why an answer was refused, in one bounded word."""
    if isinstance(exc, InsufficientCredits):
        return "credits"
    if isinstance(exc, ValidationError):
        return "invalid"
    if isinstance(exc, NotAllowed):
        return "not_allowed"
    if isinstance(exc, QueueFull):
        return "busy"
    if isinstance(exc, MiniToolAIError):
        return "upstream"
    return "error"


def records_answer(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a service method that produces one answer: it starts (or joins) the request
    and counts the answer by outcome. The platform is read from the first argument that has a
    ``place`` or a ``platform``."""

    @functools.wraps(method)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx = context.begin(_platform_of(args), claim=True)
        try:
            result = await method(*args, **kwargs)
        except Exception as exc:
            if _on:
                reason = _refusal(exc)
                outcome = "failed" if reason in ("upstream", "error") else "refused"
                _child(ANSWERS, ctx.platform, ctx.model, outcome, reason).inc()
            raise
        if _on:
            _child(ANSWERS, ctx.platform, ctx.model, result.outcome, "").inc()
        logger.info(
            "answer %s (model %s), charged %d micro-dollars", result.outcome, ctx.model, result.charged
        )
        return result

    return answer


def _platform_of(args: tuple[Any, ...]) -> str:
    for arg in args:
        place = getattr(arg, "place", arg)
        platform = getattr(place, "platform", None)
        if isinstance(platform, str):
            return platform
    return ""


def access_refused(platform: str, reason: str) -> None:
    """A request the owner's access rules refused before anything else ran (reason: a few fixed words)."""
    if _on:
        _child(ANSWERS, platform, "", "refused", "access: " + reason).inc()


def model(name: str) -> None:
    """The model the current request uses (labels what it records from now on)."""
    ctx = context.current()
    if ctx is not None:
        ctx.model = name


# ---------------------------------------------------------------- showing text


def shown(op: str, waited: float | None) -> None:
    """A send or edit of an answer went through; ``waited``: how long its newest text waited."""
    if not _on:
        return
    ctx = context.current()
    platform = ctx.platform if ctx is not None else ""
    _child(MESSAGES, platform, op).inc()
    if waited is not None:
        _child(VISIBLE_LAG, platform).observe(waited)
    if ctx is not None and not ctx.shown and op != "finish":
        ctx.shown = True
        _child(FIRST_TEXT, platform).observe(time.monotonic() - ctx.started)


def rate_limited(retry_after: float, platform: str | None = None) -> None:
    """A platform answered 429 and asked to wait ``retry_after`` seconds."""
    if not _on:
        return
    name = _platform() if platform is None else platform
    _child(RATE_LIMITED, name).inc()
    _child(RETRY_AFTER, name).inc(max(0.0, retry_after))


# ---------------------------------------------------------------- money and tokens


def held(purpose: str, amount: int) -> None:
    if _on:
        _child(HELD, _platform(), purpose).inc(amount)


def charged(purpose: str, model_name: str, amount: int, *, tokens: tuple[int, int] | None = None) -> None:
    """A hold was settled for ``amount`` micro-dollars; a chat's (prompt, completion) tokens with it."""
    if not _on:
        return
    platform = _platform()
    if amount > 0:
        _child(CHARGED, platform, purpose, model_name).inc(amount)
    if tokens is not None:
        _child(TOKENS, platform, model_name, "in").inc(max(0, tokens[0]))
        _child(TOKENS, platform, model_name, "out").inc(max(0, tokens[1]))


def upstream_error(kind: str) -> None:
    if _on:
        _child(UPSTREAM_ERRORS, kind).inc()


# ---------------------------------------------------------------- pictures


def image_job(platform: str, state: str, job_id: str | None = None) -> None:
    """A picture job entered ``state``; ``queued`` with its id starts its queue-wait clock,
    ``started`` stops it (``started`` is not a stored state and is not counted)."""
    if not _on:
        return
    if state == "started":
        queued_at = _queued_at.pop(job_id, None) if job_id else None
        if queued_at is not None:
            _child(IMAGE_WAIT, platform).observe(time.monotonic() - queued_at)
        return
    if state == "queued" and job_id:
        _queued_at[job_id] = time.monotonic()
    elif job_id:
        _queued_at.pop(job_id, None)
    _child(IMAGE_JOBS, platform, state).inc()


# ---------------------------------------------------------------- the database


def db_call(op: str, seconds: float) -> None:
    if _on:
        _child(DB_CALLS, op).observe(seconds)
