"""Invoice payloads: what the bot signed reads back; anything changed, or signed with another key, does not."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.payments.payload import MAX_PAYLOAD_BYTES, InvoicePayload, derive_key, read_payload, sign_payload
from bot.payments.values import MAX_PACK_STARS
from bot.ports import Account

KEY = derive_key("123456:bot-token")
EXPIRES = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def payload(stars: int = 50, holder: str = "1001") -> InvoicePayload:
    return InvoicePayload(stars, stars * 13_000, Account("telegram", holder), EXPIRES, "a1b2c3d4")


def test_a_signed_payload_reads_back_exactly() -> None:
    """Pack, credit, member, expiry and nonce survive the round trip."""
    assert payload() == read_payload(KEY, sign_payload(KEY, payload()))


def test_the_key_is_not_the_secret_and_other_keys_do_not_verify() -> None:
    """The derived key differs from the secret; a payload signed with another bot's key is refused."""
    assert b"123456:bot-token" not in KEY
    assert None is read_payload(derive_key("other:token"), sign_payload(KEY, payload()))


@given(index=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_changing_any_character_makes_it_unreadable(index: int, replacement: str) -> None:
    """Any one-character change (amount, member, expiry, tag) is refused."""
    text = sign_payload(KEY, payload())
    at = index % len(text)
    changed = text[:at] + replacement + text[at + 1 :]
    if changed != text:
        assert None is read_payload(KEY, changed)


def test_the_longest_payload_fits_telegram_s_limit() -> None:
    """The biggest pack for a long user id stays within Telegram's 128 bytes."""
    text = sign_payload(KEY, payload(MAX_PACK_STARS, "9" * 20))
    assert len(text.encode()) <= MAX_PAYLOAD_BYTES


def test_garbage_is_not_a_payload() -> None:
    """Empty, dotless or foreign strings read as None rather than failing."""
    for text in ("", "x", "....", "stars1.50", "pay-50-1001"):
        assert None is read_payload(KEY, text)
