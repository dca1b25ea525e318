"""The picture token formulas against the examples OpenAI documents (vision guide, "Calculating costs")."""

from __future__ import annotations

import pytest

from bot.chat import vision


@pytest.mark.parametrize(
    ("model", "width", "height", "detail", "tokens"),
    [
        # gpt-4o: 1024 x 1024 high -> 768 x 768 -> 4 tiles -> 85 + 4 * 170.
        ("gpt-4o", 1024, 1024, "high", 765),
        # gpt-4o: 2048 x 4096 high -> 1024 x 2048 -> 768 x 1536 -> 6 tiles -> 85 + 6 * 170.
        ("gpt-4o", 2048, 4096, "high", 1105),
        # gpt-4o: 4096 x 8192 low -> the base.
        ("gpt-4o", 4096, 8192, "low", 85),
        # gpt-4o-mini: 1024 x 1024 high -> 2833 + 4 * 5667; low -> the base.
        ("gpt-4o-mini", 1024, 1024, "high", 25_501),
        ("gpt-4o-mini", 4096, 8192, "low", 2833),
        # The guide counts gpt-4.1 as gpt-4o.
        ("gpt-4.1", 1024, 1024, "high", 765),
    ],
)
def test_documented_examples(model: str, width: int, height: int, detail: vision.Detail, tokens: int) -> None:
    assert tokens == vision.billed_tokens(model, width, height, detail)
    assert tokens == vision.reserve_tokens(model, width, height, detail)


def test_auto_is_counted_as_high() -> None:
    assert vision.billed_tokens("gpt-4o", 2048, 4096, "auto") == vision.billed_tokens(
        "gpt-4o", 2048, 4096, "high"
    )


def test_a_small_picture_is_reserved_as_if_enlarged_but_billed_as_is() -> None:
    """Whether the API enlarges a picture under 768 px is undocumented: reserve the larger count."""
    assert 85 + 170 == vision.billed_tokens("gpt-4o", 300, 200, "high")  # one tile as it is
    assert (1152, 768) == vision.high_detail_size(300, 200, upscale=True)
    assert 85 + 6 * 170 == vision.reserve_tokens("gpt-4o", 300, 200, "high")  # 3 x 2 tiles if enlarged


def test_a_long_thin_picture_costs_at_most_eight_tiles() -> None:
    assert (768, 2048) == vision.high_detail_size(1536, 4096)
    assert 85 + 8 * 170 == vision.billed_tokens("gpt-4o", 1536, 4096, "high")
    assert 85 + 4 * 170 == vision.billed_tokens("gpt-4o", 1000, 8000, "high")  # 256 x 2048: 1 x 4 tiles
    assert 85 + 8 * 170 == vision.max_picture_tokens("gpt-4o")
    assert 85 + 8 * 170 == vision.reserve_tokens("gpt-4o", 100, 8000, "high")


def test_unknown_size_or_model_is_counted_at_the_most() -> None:
    assert vision.max_picture_tokens("gpt-4o-mini") == vision.reserve_tokens("gpt-4o-mini", 0, 0, "auto")
    assert vision.max_picture_tokens("gpt-4o-mini") == vision.reserve_tokens("gpt-5", 1024, 0, "high")
    assert 2833 == vision.reserve_tokens("gpt-5", 1024, 1024, "low")


@pytest.mark.parametrize(
    ("size", "detail", "prepared"),
    [
        ((4000, 3000), "high", (1024, 768)),
        ((4000, 3000), "auto", (1024, 768)),
        ((4000, 3000), "low", (512, 384)),
        ((600, 400), "high", (600, 400)),  # never enlarged
        ((300, 200), "low", (300, 200)),
    ],
)
def test_prepared_size_is_the_largest_the_model_uses(
    size: tuple[int, int], detail: vision.Detail, prepared: tuple[int, int]
) -> None:
    assert prepared == vision.prepared_size(*size, detail)
    # Sending the prepared size costs exactly what sending the original would.
    assert vision.billed_tokens("gpt-4o", *prepared, detail) == vision.billed_tokens("gpt-4o", *size, detail)
