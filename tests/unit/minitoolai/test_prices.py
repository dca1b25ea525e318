"""Prices in exact integer micro-dollars: rounding up once, markup, overrides."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.minitoolai.prices import ChatPrice, PriceTable, as_markup, parse_price_overrides
from bot.minitoolai.types import Usage


def test_default_table_matches_the_guide() -> None:
    """The guide's prices, in micro-dollars per 1M tokens and per image."""
    table = PriceTable()
    assert table.chat["gpt-4o-mini"] == ChatPrice(150_000, 600_000)
    assert table.chat["gpt-4o"] == ChatPrice(2_500_000, 10_000_000)
    assert table.chat["gpt-4.1"] == ChatPrice(2_000_000, 8_000_000)
    assert table.chat["gpt-4.1-mini"] == ChatPrice(400_000, 1_600_000)
    assert table.chat["gpt-4.1-nano"] == ChatPrice(100_000, 400_000)
    assert table.image_cost("realvision") == 1_500
    assert table.image_cost("beautifulrealistic") == 1_500


def test_one_million_tokens_cost_exactly_the_list_price() -> None:
    """1M input + 1M output tokens of gpt-4o cost $2.50 + $10.00."""
    assert PriceTable().chat_cost("gpt-4o", Usage(1_000_000, 1_000_000)) == 12_500_000


def test_cost_rounds_up_once_over_the_whole_request() -> None:
    """17 in + 3 out on gpt-4o-mini is 4.35 micro-dollars: charged 5, not 3 + 2."""
    # 17 * 0.15 = 2.55, 3 * 0.6 = 1.8 (micro-dollars); per-part rounding would give 3 + 2.
    assert PriceTable().chat_cost("gpt-4o-mini", Usage(17, 3)) == 5


def test_zero_tokens_cost_nothing() -> None:
    """An empty request costs 0, not a rounded-up micro-dollar."""
    assert PriceTable().chat_cost("gpt-4o", Usage(0, 0)) == 0


@given(
    prompt=st.integers(0, 10**7),
    completion=st.integers(0, 10**6),
    numerator=st.integers(1, 500),
    denominator=st.integers(1, 100),
)
def test_cost_is_the_exact_ceiling(prompt: int, completion: int, numerator: int, denominator: int) -> None:
    """cost = ceil(exact price * markup) for any counts and markup."""
    table = PriceTable(markup=Fraction(numerator, denominator))
    exact = Fraction(prompt * 2_500_000 + completion * 10_000_000, 10**6)
    exact *= Fraction(numerator, denominator)
    cost = table.chat_cost("gpt-4o", Usage(prompt, completion))
    assert cost - 1 < exact <= cost


def test_worst_case_uses_max_completion_tokens() -> None:
    """The reservation assumes every allowed output token is used."""
    table = PriceTable()
    assert table.chat_worst_case("gpt-4.1", 1000, 1000) == 10_000
    assert table.chat_worst_case("gpt-4.1", 1000, 1000) >= table.chat_cost("gpt-4.1", Usage(1000, 10))


def test_markup_applies_before_rounding() -> None:
    """A 20% markup on an image is exactly 1800 micro-dollars."""
    assert PriceTable().with_overrides(markup=Fraction(6, 5)).image_cost("amigo") == 1_800
    assert PriceTable().with_overrides(markup=(6, 5)).image_cost("amigo") == 1_800
    # 17 in + 3 out = 4.35 µ$; * 1.2 = 5.22 -> 6
    assert PriceTable(markup=as_markup((6, 5))).chat_cost("gpt-4o-mini", Usage(17, 3)) == 6


def test_negative_markup_is_refused() -> None:
    """A markup below zero is a configuration mistake."""
    with pytest.raises(ValueError, match="must not be negative"):
        as_markup(Fraction(-1, 2))


def test_overrides_parse_dollars_exactly() -> None:
    """The config string becomes micro-dollars through Decimal, without float error."""
    overrides = parse_price_overrides("gpt-4o=2.5/10, gpt-4o-mini=0.15/0.6,image=0.0015")
    assert overrides.chat == {
        "gpt-4o": ChatPrice(2_500_000, 10_000_000),
        "gpt-4o-mini": ChatPrice(150_000, 600_000),
    }
    assert set(overrides.image.values()) == {1_500}
    # 0.1 + 0.2 style inputs stay exact: 0.3 dollars is 300_000 micro-dollars.
    assert parse_price_overrides("gpt-4.1-nano=0.3/0.7").chat["gpt-4.1-nano"] == ChatPrice(300_000, 700_000)


def test_overrides_replace_only_what_they_name() -> None:
    """Unnamed models keep their prices; one image model can be priced alone."""
    table = PriceTable().with_overrides(parse_price_overrides("gpt-4o=3/12,image:amigo=0.002"))
    assert table.chat["gpt-4o"] == ChatPrice(3_000_000, 12_000_000)
    assert table.chat["gpt-4.1"] == ChatPrice(2_000_000, 8_000_000)
    assert table.image_cost("amigo") == 2_000
    assert table.image_cost("realvision") == 1_500
    assert PriceTable().chat["gpt-4o"] == ChatPrice(2_500_000, 10_000_000)


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("gpt-4o=abc/1", "gpt-4o=abc/1"),
        ("gpt-4o=2.5", "gpt-4o=2.5"),
        ("gpt-5=1/2", "gpt-5=1/2"),
        ("image=-1", "image=-1"),
        ("image=NaN", "image=NaN"),
        ("image=0.0000001", "image=0.0000001"),
        ("gpt-4o=1/2,oops", "oops"),
        ("image:nosuch=1", "image:nosuch=1"),
        ("=1", "=1"),
    ],
)
def test_bad_override_strings_name_the_bad_part(text: str, bad_part: str) -> None:
    """Garbage raises ValueError quoting the entry that is wrong."""
    with pytest.raises(ValueError) as caught:
        parse_price_overrides(text)
    assert repr(bad_part) in str(caught.value)


def test_empty_override_string_changes_nothing() -> None:
    """An empty setting means 'use the guide's prices'."""
    assert PriceTable().with_overrides(parse_price_overrides("")) == PriceTable()


def test_unknown_model_has_no_price() -> None:
    """Asking for a model the table lacks is an error, never a free request."""
    with pytest.raises(ValueError, match="No chat price"):
        PriceTable().chat_cost("gpt-5", Usage(1, 1))
