"""A thin wrapper that times every call of a store's coroutine methods into ``db_call_seconds``.

The composition root wraps the store with it, so storage itself knows nothing of metrics.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.ops import metrics

__all__ = ["TimedCalls"]


class TimedCalls:
    """Every attribute of ``target``; its coroutine methods timed (label: the method's name)."""

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not inspect.iscoroutinefunction(value):
            return value
        wrapped = _timed(name, value)
        # Cached on the instance: the next lookup finds it without __getattr__.
        setattr(self, name, wrapped)
        return wrapped


def _timed(name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        if not metrics.enabled():
            return await call(*args, **kwargs)
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            metrics.db_call(name, time.perf_counter() - started)

    return timed
