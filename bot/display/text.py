"""Platform-neutral text handling: fence-aware splitting, closing half-written markup, truncation.

Answers are markdown-ish text. Platforms cap a message's length (Discord 2000, Telegram 4096), so a
long answer continues in further messages. A split inside a fenced code block closes the fence at
the end of one piece and reopens it, with the same opening line (language included), at the start
of the next, so every piece renders on its own. Everything here is pure, deterministic and linear
in the length of the text; lengths are counted in code points (adapters that count otherwise, e.g.
UTF-16 units, pass a smaller limit).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Chunk",
    "FenceSpan",
    "close_open_markup",
    "find_fences",
    "split_chunks",
    "split_message",
    "truncate",
]

# CommonMark: up to three spaces of indentation, then three or more backticks or tildes. A backtick
# fence's info string may not contain a backtick (otherwise the line is inline code).
_OPENER = re.compile(r" {0,3}(?:(`{3,})([^`]*)|(~{3,})(.*))")
_CLOSERS = {"`": re.compile(r" {0,3}(`{3,})[ \t]*"), "~": re.compile(r" {0,3}(~{3,})[ \t]*")}

# Where a split may fall, best first; each entry is a level of separators (the split goes after it).
_PARAGRAPH = ("\n\n",)
_LINE = ("\n",)
_SENTENCE = (". ", "! ", "? ", "。", "！", "？", "…")
_WORD = (" ", "\t")
_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)

_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class FenceSpan:
    """One fenced code block: positions in the text and the lines that open and close it.

    The body runs from ``body_start`` to ``close_start``; an unclosed fence runs to the end of the
    text (``close_start == close_end == len(text)``).
    """

    open_start: int
    body_start: int
    close_start: int
    close_end: int
    opener: str  # the whole opening line without its newline, e.g. "```python"
    run: str  # the fence characters of the opener, e.g. "```"; closes it when alone on a line
    closed: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a split text: ``reopen + body + close`` is what gets shown.

    ``body`` is a slice of the original text (joining all bodies gives the original exactly);
    ``reopen`` and ``close`` are the fence markers added because the split fell inside a code block.
    """

    body: str
    reopen: str = ""
    close: str = ""

    @property
    def rendered(self) -> str:
        return f"{self.reopen}{self.body}{self.close}"


def find_fences(text: str) -> list[FenceSpan]:
    """Every fenced code block of ``text``, in order (one pass over the lines)."""
    if "```" not in text and "~~~" not in text:
        return []
    spans: list[FenceSpan] = []
    pos, n = 0, len(text)
    current: tuple[int, int, str, str] | None = None  # open_start, body_start, opener, run
    while pos < n:
        nl = text.find("\n", pos)
        end = n if nl < 0 else nl
        nxt = n if nl < 0 else nl + 1
        line = text[pos:end]
        if current is None:
            m = _OPENER.fullmatch(line)
            if m is not None:
                current = (pos, nxt, line, m.group(1) or m.group(3))
        else:
            run = current[3]
            m = _CLOSERS[run[0]].fullmatch(line)
            if m is not None and len(m.group(1)) >= len(run):
                spans.append(FenceSpan(current[0], current[1], pos, nxt, current[2], run, True))
                current = None
        pos = nxt
    if current is not None:
        spans.append(FenceSpan(current[0], current[1], n, n, current[2], current[3], False))
    return spans


def split_message(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at the best boundary available.

    Prefers a paragraph break, then a line break, a sentence end, a word boundary, and cuts hard
    (never inside a combining sequence) only when nothing else lies in the second half of the
    window. Code fences cut by a split are closed and reopened.
    """
    return [chunk.rendered for chunk in split_chunks(text, limit)]


def split_chunks(text: str, limit: int) -> list[Chunk]:
    """:func:`split_message`, keeping apart each piece's original slice and its added fence markers."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if len(text) <= limit:
        return [Chunk(text)]
    splitter = _Splitter(text, limit)
    return splitter.run()


class _Splitter:
    """Greedy splitting state: one window per piece, each piece taking at least half its window."""

    def __init__(self, text: str, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.fences = find_fences(text)
        self.quarter = limit // 4
        self.fi = 0  # first fence that may still matter (fences end in order)

    def run(self) -> list[Chunk]:
        text, limit = self.text, self.limit
        chunks: list[Chunk] = []
        start, reopen = 0, ""
        while len(reopen) + len(text) - start > limit:
            while self.fi < len(self.fences) and self.fences[self.fi].close_start <= start:
                self.fi += 1
            window = limit - len(reopen) - self._reserve(start, start + limit)
            hi = start + window
            p = self._best_split(start, hi, start + max(1, window // 2))
            fence = self._fence_at(p)
            close = ""
            next_reopen = ""
            if fence is not None:
                next_reopen = self._reopen_for(fence)
                if next_reopen:
                    close = fence.run if text[p - 1] == "\n" else "\n" + fence.run
            chunks.append(Chunk(text[start:p], reopen, close))
            start, reopen = p, next_reopen
        chunks.append(Chunk(text[start:], reopen))
        return chunks

    def _reopen_for(self, fence: FenceSpan) -> str:
        """The line that reopens ``fence``; shorter (or nothing) when the fence lines are too long.

        Markers are kept within a quarter of the limit each so that every piece still carries at
        least a quarter of the limit of real text (which keeps the whole split linear).
        """
        if len(fence.run) + 1 > self.quarter:
            return ""
        if len(fence.opener) + 1 <= self.quarter:
            return fence.opener + "\n"
        return fence.run + "\n"

    def _reserve(self, lo: int, hi: int) -> int:
        """Room to keep for a closing fence: the longest one a split in [lo, hi] might need."""
        reserve = 0
        for fence in self.fences[self.fi :]:
            if fence.body_start > hi:
                break
            if fence.close_start >= lo and self._reopen_for(fence):
                reserve = max(reserve, len(fence.run) + 1)
        return reserve

    def _fence_at(self, p: int) -> FenceSpan | None:
        """The fence whose body contains position ``p`` (a split there needs closing)."""
        for fence in self.fences[self.fi :]:
            if fence.body_start > p:
                return None
            if p <= fence.close_start:
                return fence
        return None

    def _bad(self, p: int) -> bool:
        """Splits inside a fence line, or leaving an empty code block behind, render badly."""
        for fence in self.fences[self.fi :]:
            if fence.open_start >= p:
                return False
            if p <= fence.body_start:
                return True
            if fence.closed and fence.close_start <= p < fence.close_end:
                return True
        return False

    def _best_split(self, start: int, hi: int, lo: int) -> int:
        for level in _LEVELS:
            p = self._last_break(level, lo, hi)
            if p:
                return p
        return self._hard_split(start, hi, lo)

    def _last_break(self, seps: tuple[str, ...], lo: int, hi: int) -> int:
        """The last position in [lo, hi] right after one of ``seps`` that is not a bad split; 0 if none."""
        text = self.text
        best = 0
        for sep in seps:
            end = hi
            while True:
                idx = text.rfind(sep, max(0, lo - len(sep)), end)
                if idx < 0 or idx + len(sep) <= best:
                    break
                p = idx + len(sep)
                if not self._bad(p):
                    best = p
                    break
                end = idx + len(sep) - 1
        return best

    def _hard_split(self, start: int, hi: int, lo: int) -> int:
        p = hi
        while p > lo and (_joined(self.text, p) or self._bad(p)):
            p -= 1
        return p if p > lo else hi


def _joined(text: str, p: int) -> bool:
    """Whether cutting between ``text[p-1]`` and ``text[p]`` would break a visible character."""
    if p <= 0 or p >= len(text):
        return False
    before, after = text[p - 1], text[p]
    if before == _ZWJ or after == _ZWJ:
        return True
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return True
    cp = ord(after)
    if 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return True  # variation selectors, skin tones, emoji tag sequences
    if 0xE0100 <= cp <= 0xE01EF:
        return True
    if _regional(before) and _regional(after):
        # Flags are pairs of regional indicators: only cut between pairs.
        run = 0
        i = p - 1
        while i >= 0 and _regional(text[i]):
            run += 1
            i -= 1
        return run % 2 == 1
    return unicodedata.combining(after) != 0 or unicodedata.category(after) in ("Mn", "Mc", "Me")


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def close_open_markup(text: str) -> str:
    """Close an unclosed code fence and an unclosed inline code span, for text still streaming.

    The result is ``text`` plus closing markers only, so every intermediate state renders as
    balanced markdown; a trailing lone run of backticks (perhaps a fence being typed) is left as is.
    """
    fences = find_fences(text)
    if fences and not fences[-1].closed:
        return text + ("" if text.endswith("\n") else "\n") + fences[-1].run
    tail_start = fences[-1].close_end if fences else 0
    # Inline code cannot span a blank line, so only the last paragraph can hold an open span.
    para = text.rfind("\n\n", tail_start)
    if para >= 0:
        tail_start = para + 2
    run = _open_backtick_run(text, tail_start)
    if not run:
        return text
    closed = text + run
    if _OPENER.fullmatch(closed[closed.rfind("\n") + 1 :]):
        return text  # the closing run would start a code fence: leave the backticks literal
    return closed


def _open_backtick_run(text: str, start: int) -> str:
    """The backtick run opening an unclosed inline code span after ``start`` ("" if none)."""
    pos, n = start, len(text)
    while True:
        i = text.find("`", pos)
        if i < 0:
            return ""
        j = i
        while j < n and text[j] == "`":
            j += 1
        width = j - i
        # The span closes at the next run of exactly the same width.
        k = j
        while True:
            k = text.find("`" * width, k)
            if k < 0:
                # Nothing to show in code after a trailing run: leave the backticks literal.
                return "" if j == n else "`" * width
            e = k + width
            if (e >= n or text[e] != "`") and text[k - 1] != "`":
                pos = e
                break
            while k < n and text[k] == "`":
                k += 1


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``ellipsis`` when anything was cut.

    Never cuts inside a surrogate pair, a combining sequence, an emoji sequence or a flag, and
    prefers a word boundary in the last fifth of the room.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if len(text) <= limit:
        return text
    if len(ellipsis) >= limit:
        return _safe_cut(text, limit)
    room = limit - len(ellipsis)
    cut = _safe_cut(text, room)
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= room * 4 // 5:
        cut = cut[:space]
    return cut.rstrip() + ellipsis


def _safe_cut(text: str, n: int) -> str:
    p = n
    while p > 0 and _joined(text, p):
        p -= 1
    return text[:p]
