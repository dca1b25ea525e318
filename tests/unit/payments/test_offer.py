"""The owner's Stars settings: packs and the credit a Star buys, read exactly or refused by name."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.payments.values import StarsOffer
from bot.settings import load_settings


def test_packs_and_rate_are_read_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """STARS_PACKS becomes sorted distinct amounts; STARS_USD_PER_STAR stays an exact decimal."""
    monkeypatch.setenv("STARS_PACKS", " 500, 50,100,50 ")
    monkeypatch.setenv("STARS_USD_PER_STAR", "0.013")

    settings = load_settings(None)

    assert (50, 100, 500) == settings.stars_pack_list
    assert "0.013" == str(settings.stars_usd_per_star)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STARS_PACKS", "50,lots"),
        ("STARS_PACKS", "0"),
        ("STARS_PACKS", "10001"),
        ("STARS_USD_PER_STAR", "0.0000001"),
        ("STARS_USD_PER_STAR", "0"),
    ],
)
def test_a_bad_stars_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Each bad value stops the start with the variable's name."""
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=name):
        load_settings(None)


def test_an_offer_needs_a_price_when_packs_are_set() -> None:
    """Packs with no credit per Star would give Stars for nothing: refused. No packs: off."""
    with pytest.raises(ConfigError):
        StarsOffer((50,), 0)
    assert not StarsOffer().enabled
    assert 650_000 == StarsOffer((50,), 13_000).credit(50)
