"""Display: how the core shows text on a platform surface, whatever produced it.

Owns the streaming presenter (deltas -> paced sends and edits), its pacing (token buckets, policies),
the Surface protocols adapters implement, and fence-aware text splitting. Uses no other capability.
"""

from bot.display.streaming import (
    FoldingSurface,
    GatedSurface,
    Outcome,
    PacingPolicy,
    PresentedAnswer,
    StreamPresenter,
    Surface,
    TokenBucket,
    TypingSurface,
    Urgency,
    show_unfolded,
)
from bot.display.text import Chunk, close_open_markup, find_fences, split_chunks, split_message, truncate

__all__ = [
    "Chunk",
    "FoldingSurface",
    "GatedSurface",
    "Outcome",
    "PacingPolicy",
    "PresentedAnswer",
    "StreamPresenter",
    "Surface",
    "TokenBucket",
    "TypingSurface",
    "Urgency",
    "close_open_markup",
    "find_fences",
    "show_unfolded",
    "split_chunks",
    "split_message",
    "truncate",
]
