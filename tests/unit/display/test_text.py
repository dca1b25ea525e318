"""bot.display.text: fence-aware splitting, closing half-written markup, truncation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.display.text import close_open_markup, find_fences, split_chunks, split_message, truncate

# A deliberately simple reference for "is this a fence line", independent of bot.display.text's parser.
_FENCE_LINE = re.compile(r" {0,3}(`{3,}|~{3,})")


def fence_line_count(text: str) -> int:
    return sum(1 for line in text.split("\n") if _FENCE_LINE.match(line))


# ---------------------------------------------------------------- split_message: examples


def test_short_text_is_one_piece() -> None:
    """Text within the limit comes back untouched, even with an unclosed fence."""
    assert split_message("```py\nx = 1", 100) == ["```py\nx = 1"]


def test_prefers_paragraph_break_over_line_break() -> None:
    """A paragraph break in the second half of the window beats a later line break."""
    text = "a" * 30 + "\n\n" + "b" * 10 + "\n" + "c" * 30
    assert split_message(text, 50) == ["a" * 30 + "\n\n", "b" * 10 + "\n" + "c" * 30]


def test_prefers_line_break_over_sentence_end() -> None:
    """A line break beats a later sentence end."""
    text = "a" * 30 + "\n" + "Bb. " + "c" * 40
    assert split_message(text, 45)[0] == "a" * 30 + "\n"


def test_prefers_sentence_end_over_word_boundary() -> None:
    """A sentence end beats a later space."""
    text = "word " * 6 + "end. more words here and " + "x" * 30
    assert split_message(text, 50)[0] == "word " * 6 + "end. "


def test_falls_back_to_word_boundary_then_hard_cut() -> None:
    """Without breaks it cuts after a space; without spaces it cuts at the limit."""
    assert split_message("alpha beta gamma delta", 20) == ["alpha beta gamma ", "delta"]
    assert split_message("x" * 45, 20) == ["x" * 20, "x" * 20, "x" * 5]


def test_early_break_is_ignored_to_keep_pieces_large() -> None:
    """A paragraph break in the first half of the window loses to a word boundary later on."""
    text = "ab\n\n" + "word " * 20
    assert split_message(text, 40)[0] == "ab\n\n" + "word " * 7


def test_hard_cut_keeps_combining_sequences_and_emoji_whole() -> None:
    """A hard cut never separates a base letter from its accent or breaks a ZWJ emoji."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    accented = "e\u0301"
    for glue in (family, accented, "\U0001f1eb\U0001f1f7"):
        text = "x" * 19 + glue + "y" * 30
        first = split_message(text, 20)[0]
        assert first == "x" * 19


def test_split_inside_fence_closes_and_reopens_with_language() -> None:
    """A code block cut in two is closed at the end of one piece and reopened with its language."""
    code = "".join(f"line{i}\n" for i in range(10))
    text = f"Intro.\n```python\n{code}```\nOutro."
    pieces = split_message(text, 50)
    assert pieces[1].startswith("```python\nline")
    assert pieces[1].endswith("\n```")
    assert pieces[2].startswith("```python\n")
    assert all(fence_line_count(p) % 2 == 0 for p in pieces)
    assert all(len(p) <= 50 for p in pieces)


def test_split_inside_tilde_fence_mid_line_adds_a_newline_before_the_closer() -> None:
    """A hard cut inside a long code line closes the fence on a line of its own."""
    text = "~~~\n" + "z" * 100 + "\n~~~"
    chunks = split_chunks(text, 40)
    assert chunks[0].close == "\n~~~"
    assert chunks[1].reopen == "~~~\n"
    assert "".join(c.body for c in chunks) == text


def test_closing_line_does_not_end_up_alone_in_a_reopened_block() -> None:
    """The split avoids leaving an empty code block (reopen directly followed by the closer)."""
    text = "```\n" + "code line\n" * 4 + "```\n" + "tail " * 20
    for piece in split_message(text, 60):
        assert "```\n```" not in piece


def test_too_long_opening_line_reopens_with_the_bare_fence() -> None:
    """An opening line longer than a quarter of the limit is reopened without its info string."""
    text = "```" + "i" * 30 + "\n" + "code\n" * 30 + "```"
    pieces = split_message(text, 60)
    assert pieces[1].startswith("```\ncode")


def test_limit_must_be_positive() -> None:
    """A zero limit is a programming error."""
    with pytest.raises(ValueError, match="positive"):
        split_message("abc", 0)


# ---------------------------------------------------------------- split_message: properties

_ALPHABET = st.sampled_from([*"ab c.!?\n\n`~é", "\u0301", "```", "~~~", "```py\n", "\n\n", "。"])
_TEXT = st.lists(_ALPHABET, max_size=400).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, limit=st.integers(min_value=20, max_value=200))
def test_pieces_fit_and_join_back(text: str, limit: int) -> None:
    """Any text, any limit: every piece fits and the original slices join back exactly."""
    chunks = split_chunks(text, limit)
    assert "".join(c.body for c in chunks) == text
    assert all(len(c.rendered) <= limit for c in chunks)
    assert [c.rendered for c in chunks] == split_message(text, limit)
    assert all(c.body for c in chunks) or text == ""


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, limit=st.integers(min_value=20, max_value=200))
def test_every_piece_but_the_last_takes_a_quarter_of_the_limit(text: str, limit: int) -> None:
    """Pieces never get tiny, which keeps the number of pieces (and the work) linear."""
    chunks = split_chunks(text, limit)
    assert all(len(c.body) >= limit // 4 for c in chunks[:-1])


_LANG = st.sampled_from(["", "python", "js", "c++", "rust", " bash"])
_PARA = st.lists(st.sampled_from(["word", "Ends.", "x" * 12, "y"]), min_size=1, max_size=12).map(" ".join)
_CODE = st.tuples(
    st.sampled_from(["```", "~~~", "````"]), _LANG, st.lists(_PARA, min_size=1, max_size=8)
).map(lambda t: f"{t[0]}{t[1]}\n" + "\n".join(t[2]) + f"\n{t[0]}")
_DOC = st.lists(st.one_of(_PARA, _CODE), min_size=1, max_size=8).map("\n\n".join)


@settings(max_examples=150, deadline=None)
@given(text=_DOC, limit=st.integers(min_value=48, max_value=400))
def test_markdown_pieces_balance_fences_and_keep_languages(text: str, limit: int) -> None:
    """Each piece of a markdown document has balanced fences; reopened fences keep their opening line."""
    fences = find_fences(text)
    chunks = split_chunks(text, limit)
    pos = 0
    for chunk in chunks:
        rendered = chunk.rendered
        assert len(rendered) <= limit
        assert fence_line_count(rendered) % 2 == 0, rendered
        if chunk.reopen:
            (fence,) = [f for f in fences if f.body_start <= pos <= f.close_start]
            assert chunk.reopen == fence.opener + "\n"
        pos += len(chunk.body)
    assert "".join(c.body for c in chunks) == text


# ---------------------------------------------------------------- close_open_markup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("```python\nx = 1", "```python\nx = 1\n```"),
        ("~~~~\ncode\n", "~~~~\ncode\n~~~~"),
        ("use `print(", "use `print(`"),
        ("a ``b ` c", "a ``b ` c``"),
        ("done `x` and `y`", "done `x` and `y`"),
        ("```\ncode\n```\nthen `open", "```\ncode\n```\nthen `open`"),
        ("`open\n\nnew paragraph", "`open\n\nnew paragraph"),
        ("about to type\n``", "about to type\n``"),
    ],
)
def test_close_open_markup(text: str, expected: str) -> None:
    """Open fences and inline spans are closed; balanced text and a trailing bare run stay as they are."""
    assert close_open_markup(text) == expected


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_close_open_markup_only_appends_and_leaves_no_open_fence(text: str) -> None:
    """Any text: the result extends the text and every fence in it is closed."""
    closed = close_open_markup(text)
    assert closed.startswith(text)
    assert all(f.closed for f in find_fences(closed))


# ---------------------------------------------------------------- truncate


def test_truncate_leaves_short_text_alone() -> None:
    """Text within the limit is returned unchanged."""
    assert truncate("short", 5) == "short"


def test_truncate_prefers_a_word_boundary_and_ends_with_the_ellipsis() -> None:
    """A cut near the end moves back to the last space."""
    assert truncate("the quick brown fox jumps", 22) == "the quick brown fox…"


def test_truncate_never_splits_a_visible_character() -> None:
    """Combining accents, ZWJ emoji and flags stay whole (or go whole)."""
    assert truncate("xxxxe\u0301yyyy", 6) == "xxxx…"
    assert truncate("xxx\U0001f468\u200d\U0001f469zz", 6) == "xxx…"
    assert truncate("x\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1eazzz", 5) == "x\U0001f1eb\U0001f1f7…"


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, limit=st.integers(min_value=0, max_value=60))
def test_truncate_fits(text: str, limit: int) -> None:
    """Any text and limit: the result fits and is the text itself when it already fit."""
    out = truncate(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
