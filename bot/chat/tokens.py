"""Token counting that works offline.

tiktoken is used when it is installed and its encoding can be loaded (it downloads the
encoding once, which this bot must never depend on); otherwise a conservative estimate.
Either way the counter is calibrated by the ``prompt_tokens`` the API reports, so budgets
and reservations track the real tokenizer over time without ever under-reserving much.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

# Per-message framing the chat format adds (role, separators), as OpenAI documents it.
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
# Pictures are counted apart, by each model's own formula and the picture's size: bot.chat.vision.


def estimate_tokens(text: str) -> int:
    """A deliberately generous estimate: one token per 3 UTF-8 bytes.

    Real tokenizers average about 4 characters per token for English and about one per
    character for CJK (3 bytes each), so this over-counts slightly in both cases.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


class TokenCounter:
    """Counts tokens of texts and whole prompts; learns a correction factor from usage."""

    def __init__(self, encode: Callable[[str], Sequence[int]] | None = None) -> None:
        self._encode = encode
        self._factor = 1.0

    @property
    def exact(self) -> bool:
        return self._encode is not None

    @property
    def factor(self) -> float:
        return self._factor

    def count(self, text: str) -> int:
        raw = len(self._encode(text)) if self._encode is not None else estimate_tokens(text)
        return math.ceil(raw * self._factor)

    def count_message(self, text: str) -> int:
        return self.count(text) + MESSAGE_OVERHEAD

    def calibrate(self, estimated: int, reported: int) -> None:
        """Move the factor toward ``reported / estimated``, never below what keeps us safe.

        The factor is clamped to [0.6, 2.0] so one odd answer cannot make budgets silly.
        """
        if estimated <= 0 or reported <= 0:
            return
        observed = self._factor * reported / estimated
        self._factor = min(2.0, max(0.6, 0.8 * self._factor + 0.2 * observed))

    async def try_tiktoken(self, encoding: str = "o200k_base") -> bool:
        """Switch to tiktoken if it is installed and its encoding is already cached on disk.

        tiktoken would otherwise download the encoding at this moment; a bot must not depend on
        (or hang on) that, so an uncached encoding means: keep estimating. Owners who want exact
        counts fetch it once with ``python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"``.
        """
        try:
            import tiktoken  # optional dependency, imported only when asked for
        except ImportError:
            return False
        if not tiktoken_cached(encoding):
            logger.info("tiktoken encoding %s is not cached; using the estimate", encoding)
            return False
        try:
            enc = await asyncio.to_thread(tiktoken.get_encoding, encoding)
        except Exception as exc:  # any failure means: keep the estimate
            reason = type(exc).__name__
            logger.info("tiktoken encoding %s unavailable (%s); using the estimate", encoding, reason)
            return False
        self._encode = enc.encode_ordinary
        self._factor = 1.0
        logger.info("counting tokens with tiktoken %s", encoding)
        return True


def tiktoken_cached(encoding: str) -> bool:
    """Whether tiktoken's cache holds ``encoding`` (where tiktoken itself looks: its cache key
    is the SHA-1 of the encoding's download URL)."""
    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    folder = (
        os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.environ.get("DATA_GYM_CACHE_DIR")
        or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    )
    return os.path.exists(os.path.join(folder, hashlib.sha1(url.encode()).hexdigest()))
