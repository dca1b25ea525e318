"""Housekeeping the bot does by itself: forgetting conversation turns past the owner's retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from bot.ports import ConversationStore

logger = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=6)


async def prune_once(store: ConversationStore, *, max_age_days: int, keep_turns: int) -> int:
    """Delete turns older than ``max_age_days`` and beyond the newest ``keep_turns`` per conversation.

    0 for either means "keep forever" / "keep all".
    """
    older_than = datetime.now(UTC) - timedelta(days=max_age_days) if max_age_days else None
    keep_last = keep_turns or None
    if older_than is None and keep_last is None:
        return 0
    deleted = await store.prune(older_than=older_than, keep_last=keep_last)
    if deleted:
        logger.info("pruned %d old conversation turns", deleted)
    return deleted


async def prune_until(
    stop: asyncio.Event, store: ConversationStore, *, max_age_days: int, keep_turns: int
) -> None:
    """Prune at start and every few hours until ``stop`` is set; a failed run is logged and retried later."""
    while not stop.is_set():
        try:
            await prune_once(store, max_age_days=max_age_days, keep_turns=keep_turns)
        except Exception:
            logger.exception("pruning old conversation turns failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY.total_seconds())
