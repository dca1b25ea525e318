"""bot.chat.tokens: the offline estimate is generous, and calibration moves toward usage within bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat.tokens import MESSAGE_OVERHEAD, TokenCounter, estimate_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("a", 1), ("abc", 1), ("abcd", 2), ("x" * 300, 100), ("日本", 2), ("é", 1)],
)
def test_the_estimate_is_one_token_per_three_utf8_bytes_rounded_up(text: str, expected: int) -> None:
    """estimate_tokens counts ceil(bytes / 3)."""
    assert expected == estimate_tokens(text)


def test_the_estimate_is_not_below_a_words_count() -> None:
    """English text (about 4 characters a token) is never under-counted by the estimate."""
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(text) >= len(text) / 4


def test_a_message_adds_its_framing() -> None:
    """count_message = text + per-message overhead (pictures are counted by bot.chat.vision)."""
    counter = TokenCounter()
    assert 100 + MESSAGE_OVERHEAD == counter.count_message("x" * 300)
    assert MESSAGE_OVERHEAD == counter.count_message("")


def test_an_exact_encoder_replaces_the_estimate() -> None:
    """With an encoder, count is its token count."""
    counter = TokenCounter(encode=lambda text: [0] * len(text.split()))
    assert counter.exact
    assert 3 == counter.count("one two three")
    assert not TokenCounter().exact


def test_calibration_moves_a_fifth_of_the_way_toward_the_reported_ratio() -> None:
    """Reported 50 for an estimate of 100 moves the factor from 1.0 to 0.9, and counts follow."""
    counter = TokenCounter()
    counter.calibrate(100, 50)
    assert 0.9 == pytest.approx(counter.factor)
    assert 90 == counter.count("x" * 300)


def test_calibration_upward_when_the_api_counts_more() -> None:
    """Reported above the estimate raises the factor, so reservations grow."""
    counter = TokenCounter()
    counter.calibrate(100, 150)
    assert 1.1 == pytest.approx(counter.factor)
    assert 110 <= counter.count("x" * 300) <= 111  # rounded up, float noise included


def test_repeated_calibration_converges_to_the_observed_ratio() -> None:
    """Estimates made with the current factor converge to what the API reports."""
    counter = TokenCounter()
    raw = 1000
    for _ in range(60):
        counter.calibrate(counter.count("x" * (3 * raw)), 800)
    assert 0.8 == pytest.approx(counter.factor, abs=0.01)


@pytest.mark.parametrize(("reported", "bound"), [(1, 0.6), (10_000, 2.0)])
def test_calibration_is_clamped(reported: int, bound: float) -> None:
    """However odd the usage, the factor stays within [0.6, 2.0]."""
    counter = TokenCounter()
    for _ in range(50):
        counter.calibrate(100, reported)
    assert bound == pytest.approx(counter.factor)


@pytest.mark.parametrize(("estimated", "reported"), [(0, 10), (10, 0), (-5, 10), (10, -1)])
def test_calibration_ignores_empty_or_negative_counts(estimated: int, reported: int) -> None:
    """Nothing to learn from a zero or negative count: the factor stays."""
    counter = TokenCounter()
    counter.calibrate(estimated, reported)
    assert 1.0 == counter.factor


async def test_tiktoken_is_not_used_when_its_encoding_would_have_to_be_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty tiktoken cache: the counter keeps its estimate and nothing touches the network."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    counter = TokenCounter()

    assert False is await counter.try_tiktoken()
    assert False is counter.exact
