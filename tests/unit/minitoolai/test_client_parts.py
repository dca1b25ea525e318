"""Pure parts of the client: retry policy, image sniffing, wire formats."""

from __future__ import annotations

import pytest

from bot.minitoolai import (
    ChatMessage,
    ImageInput,
    ImageParams,
    RetryPolicy,
    sniff_image,
)


def test_back_off_doubles_up_to_the_cap_without_jitter() -> None:
    """Delays are base * 2**(n-1), capped at max_delay, and stop after the attempts."""
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3, jitter=False)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3, 3, None]


def test_jitter_stays_between_half_and_full_delay() -> None:
    """With jitter a retry never comes sooner than half the back-off, nor later than all of it."""
    policy = RetryPolicy(attempts=100, base_delay=1, max_delay=8)
    for failures in range(1, 60):
        full = min(8.0, 2.0 ** (failures - 1))
        delay = policy.delay(failures)
        assert delay is not None
        assert full / 2 <= delay <= full


def test_retry_after_is_honoured_only_up_to_max_delay() -> None:
    """A server's Retry-After is used as is, unless it is longer than we would ever wait."""
    policy = RetryPolicy(attempts=3, max_delay=8)
    assert policy.delay(1, retry_after=2.5) == 2.5
    assert policy.delay(1, retry_after=9) is None
    assert policy.delay(3, retry_after=1) is None


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"GIF89a...", "image/gif"),
        (b"GIF87a...", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_magic_bytes_decide_the_image_type(data: bytes, mime: str | None) -> None:
    """Only JPEG, PNG, GIF and WebP signatures are accepted."""
    assert sniff_image(data) == mime


def test_text_only_message_is_a_plain_string() -> None:
    """Without images, content is a string, as in the guide."""
    assert ChatMessage("assistant", "hi").to_wire() == {"role": "assistant", "content": "hi"}


def test_image_input_becomes_a_data_url() -> None:
    """Uploaded images travel inline as base64 data: URLs, never as platform links."""
    assert ImageInput(b"\x00\xff", "image/jpeg").data_url() == "data:image/jpeg;base64,AP8="


def test_image_params_send_only_given_fields_with_api_names() -> None:
    """None fields are left out; negative prompt and cfg scale use the API's camelCase."""
    params = ImageParams("cat", "amigo", negative_prompt="dog", cfg_scale=3.5)
    assert params.to_wire() == {
        "model": "amigo",
        "prompt": "cat",
        "negativePrompt": "dog",
        "cfgScale": 3.5,
    }
