"""Parameter validation: one clear sentence per mistake, defaults filled in."""

from __future__ import annotations

import pytest

from bot.errors import ValidationError
from bot.minitoolai.types import ChatParams, ImageParams
from bot.minitoolai.validation import validate_chat, validate_image


def test_known_chat_model_with_defaults_passes() -> None:
    """A known model with no options is valid."""
    validate_chat(ChatParams("gpt-4.1-nano"), has_images=False)


def test_unknown_chat_model_lists_the_valid_ones() -> None:
    """An unknown chat model names every model the user can pick instead."""
    with pytest.raises(ValidationError) as caught:
        validate_chat(ChatParams("gpt-5"), has_images=False)
    message = str(caught.value)
    assert "'gpt-5'" in message
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"):
        assert name in message
    assert caught.value.user_message == message


@pytest.mark.parametrize("temperature", [-0.1, 2.01, float("nan"), float("inf")])
def test_temperature_outside_0_to_2_is_refused(temperature: float) -> None:
    """Temperature must be a finite number from 0 to 2."""
    with pytest.raises(ValidationError, match="Temperature must be a number from 0 to 2"):
        validate_chat(ChatParams("gpt-4o", temperature=temperature), has_images=False)


@pytest.mark.parametrize("temperature", [0, 0.0, 1.5, 2])
def test_temperature_inside_the_range_passes(temperature: float) -> None:
    """The bounds 0 and 2 are allowed."""
    validate_chat(ChatParams("gpt-4o", temperature=temperature), has_images=False)


@pytest.mark.parametrize("tokens", [0, -5, 16_385, True])
def test_max_completion_tokens_must_be_a_sane_positive_int(tokens: int) -> None:
    """max_completion_tokens is a whole number from 1 to the cap."""
    with pytest.raises(ValidationError, match="Max completion tokens must be a whole number"):
        validate_chat(ChatParams("gpt-4o", max_completion_tokens=tokens), has_images=False)


def test_images_only_on_vision_models() -> None:
    """Images with a non-vision model are refused with the vision models named."""
    validate_chat(ChatParams("gpt-4o-mini"), has_images=True)
    with pytest.raises(ValidationError, match="gpt-4o, gpt-4o-mini"):
        validate_chat(ChatParams("gpt-4.1"), has_images=True)


def test_image_defaults_are_filled_in() -> None:
    """Missing image options get the guide's defaults."""
    params = validate_image(ImageParams(prompt="  a red fox  ", model="realvision"))
    assert params == ImageParams(
        prompt="a red fox",
        model="realvision",
        scheduler="DPM++ SDE",
        steps=4,
        cfg_scale=2,
        width=1024,
        height=1024,
    )
    assert params.to_wire() == {
        "model": "realvision",
        "prompt": "a red fox",
        "scheduler": "DPM++ SDE",
        "steps": 4,
        "cfgScale": 2,
        "width": 1024,
        "height": 1024,
    }


def test_names_match_case_insensitively_and_come_back_canonical() -> None:
    """'RealVision' and 'dpm++ 2m  karras' become the API's exact spellings."""
    params = validate_image(ImageParams(prompt="x", model="RealVision", scheduler="dpm++ 2m  karras"))
    assert (params.model, params.scheduler) == ("realvision", "DPM++ 2M Karras")


def test_steps_out_of_range_names_the_given_value() -> None:
    """The message says the range and what the user gave."""
    with pytest.raises(ValidationError) as caught:
        validate_image(ImageParams(prompt="x", model="realvision", steps=12))
    assert str(caught.value) == "Steps must be a whole number from 1 to 8 (you gave 12)."


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"model": "midjourney"}, "Unknown image model 'midjourney'; choose one of realvision"),
        ({"scheduler": "DDIM"}, "Unknown scheduler 'DDIM'; choose one of Euler a"),
        ({"steps": 0}, "Steps must be a whole number from 1 to 8"),
        ({"steps": 2.5}, "Steps must be a whole number from 1 to 8"),
        ({"cfg_scale": 7.5}, "CFG scale must be a number from 1 to 7"),
        ({"cfg_scale": 0.5}, "CFG scale must be a number from 1 to 7"),
        ({"width": 255}, "Width must be a whole number from 256 to 1344"),
        ({"height": 1345}, "Height must be a whole number from 256 to 1344"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"prompt": "x" * 2001}, "The prompt is too long: at most 2000 characters"),
        ({"negative_prompt": "y" * 2001}, "The negative prompt is too long"),
    ],
)
def test_bad_image_parameters_are_refused(change: dict[str, object], fragment: str) -> None:
    """Every out-of-range or unknown image option raises ValidationError."""
    fields: dict[str, object] = {"prompt": "a cat", "model": "realvision", **change}
    with pytest.raises(ValidationError) as caught:
        validate_image(ImageParams(**fields))  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_range_bounds_are_allowed() -> None:
    """The documented bounds themselves are valid."""
    params = validate_image(
        ImageParams(prompt="x" * 2000, model="amigo", steps=8, cfg_scale=7, width=256, height=1344)
    )
    assert (params.steps, params.cfg_scale, params.width, params.height) == (8, 7, 256, 1344)
