"""Each platform on its own: an adapter that fails is logged and started again with back-off,
while the other adapters go on serving.

A refused token or another setting the owner must fix (``ConfigError``) stops the bot with its
clear message: retrying cannot help. With a single platform, failing at its first start stops the
bot too (the owner sees why at once, and a process supervisor restarts it); from then on, or with
several platforms, a failure is retried: 1 s, 2 s, 4 s ... up to ``max_delay``.
"""

from __future__ import annotations

import asyncio
import logging

from bot.errors import ConfigError
from bot.ports import Adapter

logger = logging.getLogger(__name__)


async def supervise(
    adapter: Adapter,
    stop: asyncio.Event,
    *,
    alone: bool,
    first_delay: float = 1.0,
    max_delay: float = 300.0,
) -> None:
    """Run ``adapter`` until ``stop``, restarting it after a failure (see the module docstring)."""
    delay = first_delay
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            await adapter.run(stop)
        except ConfigError:
            raise
        except Exception:
            if alone and attempt == 1:
                raise
            if stop.is_set():
                return
            logger.exception(
                "%s stopped with an error; starting it again in %g s while the rest goes on",
                adapter.name,
                delay,
            )
        else:
            if stop.is_set():
                return
            logger.error("%s stopped by itself; starting it again in %g s", adapter.name, delay)
        try:
            async with asyncio.timeout(delay):
                await stop.wait()
        except TimeoutError:
            pass
        delay = min(max_delay, delay * 2)
