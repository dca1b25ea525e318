"""Parsing /imagine text into ImageOptions, and turning options into validated parameters."""

from __future__ import annotations

import pytest

from bot.errors import ValidationError
from bot.images.options import (
    SIZE_PRESETS,
    ImageOptions,
    parse_imagine_args,
    parse_size,
    to_params,
    usage_text,
)
from bot.minitoolai.types import ImageParams


def test_the_issue_example_parses_every_flag() -> None:
    """The issue's example gives the prompt, model, size and steps."""
    expected = ImageOptions(prompt="a red fox", model="dreamshaper", steps=6, width=1152, height=768)
    assert expected == parse_imagine_args("a red fox --model dreamshaper --size 1152x768 --steps 6")


def test_quoted_multi_word_values_and_cfg() -> None:
    """Quoted scheduler and negative prompt keep their spaces; --cfg is a float."""
    options = parse_imagine_args('a red fox --cfg 3 --scheduler "Euler a" --negative "blurry, dark"')
    assert ("Euler a", "blurry, dark", 3.0) == (options.scheduler, options.negative_prompt, options.cfg_scale)


def test_unquoted_multi_word_values_run_to_the_next_flag() -> None:
    """Without quotes, --scheduler and --negative take every word up to the next flag."""
    options = parse_imagine_args("a fox --scheduler DPM++ 2M Karras --negative blurry, low quality --steps 5")
    assert ("DPM++ 2M Karras", "blurry, low quality", 5) == (
        options.scheduler,
        options.negative_prompt,
        options.steps,
    )


def test_apostrophes_in_the_prompt_are_plain_text() -> None:
    """A fox's den (an unbalanced apostrophe) stays exactly as typed."""
    options = parse_imagine_args("a fox's den at dusk, it's cosy --steps 3")
    assert ("a fox's den at dusk, it's cosy", 3) == (options.prompt, options.steps)


def test_text_without_flags_is_all_prompt() -> None:
    """Text with no flags is the prompt, quotes and all inner spacing kept."""
    assert ImageOptions(prompt='the "best"  cat') == parse_imagine_args('  the "best"  cat ')


def test_words_after_a_single_word_flag_go_back_to_the_prompt() -> None:
    """ "--steps 6 a red fox" means steps 6 and the prompt "a red fox"."""
    assert ImageOptions(prompt="a red fox", steps=6) == parse_imagine_args("--steps 6 a red fox")


def test_phone_dashes_and_equals_and_aliases_are_accepted() -> None:
    """An em dash for "--", --flag=value and short aliases all work."""
    expected = ImageOptions(prompt="owl", model="juggernaut", width=896, height=1152, cfg_scale=2.5)
    assert expected == parse_imagine_args("owl —model juggernaut --s=portrait --cfg-scale 2.5")


@pytest.mark.parametrize(
    ("text", "size"), [*SIZE_PRESETS.items(), ("1152×768", (1152, 768)), ("512*512", (512, 512))]
)
def test_sizes_accept_presets_and_width_by_height(text: str, size: tuple[int, int]) -> None:
    """--size takes a preset name or WxH with x, × or *."""
    assert size == parse_size(text)


def test_unknown_flag_is_named_and_the_valid_ones_listed() -> None:
    """An unknown flag raises ValidationError naming it and listing every valid flag."""
    with pytest.raises(ValidationError) as caught:
        parse_imagine_args("a fox --ar 16:9")
    message = str(caught.value)
    assert "--ar" in message
    assert all(
        flag in message for flag in ("--model", "--size", "--steps", "--cfg", "--scheduler", "--negative")
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("a fox --steps", "--steps needs a value"),
        ("a fox --steps 3 --steps 4", "given twice"),
        ("a fox --steps six", "Steps must be a whole number"),
        ("a fox --cfg high", "CFG scale must be a number"),
        ("a fox --size huge", "I can't read the size"),
        ("a fox --size square --width 512", "either --size or --width"),
    ],
)
def test_bad_flag_values_are_refused_with_a_sentence(text: str, complaint: str) -> None:
    """Missing, repeated, non-numeric or conflicting values raise ValidationError saying what is wrong."""
    with pytest.raises(ValidationError, match=complaint):
        parse_imagine_args(text)


def test_to_params_fills_the_guides_defaults() -> None:
    """Unset options get the guide's defaults: DPM++ SDE, 4 steps, cfg 2, 1024x1024."""
    expected = ImageParams(
        prompt="a fox",
        model="dreamshaper",
        scheduler="DPM++ SDE",
        steps=4,
        cfg_scale=2,
        width=1024,
        height=1024,
    )
    assert expected == to_params(ImageOptions(prompt=" a fox "), "dreamshaper")


def test_to_params_canonicalises_names_and_validates_ranges() -> None:
    """Scheduler spelling is made canonical; out-of-range values raise ValidationError."""
    assert "Euler a" == to_params(ImageOptions(prompt="x", scheduler="euler A"), "realvision").scheduler
    with pytest.raises(ValidationError, match="Width must be a whole number from 256 to 1344"):
        to_params(ImageOptions(prompt="x", width=2048), "realvision")
    with pytest.raises(ValidationError, match="prompt is empty"):
        to_params(parse_imagine_args("--steps 3"), "realvision")


def test_from_params_round_trips_stored_parameters() -> None:
    """A stored job's params become the same options again (for Regenerate)."""
    import dataclasses

    params = to_params(ImageOptions(prompt="owl", steps=7, negative_prompt="blur"), "amigo")
    options = ImageOptions.from_params(dataclasses.asdict(params))
    assert params == to_params(options, str(options.model))


def test_usage_text_lists_flags_and_presets() -> None:
    """The help paragraph names each flag and each size preset."""
    text = usage_text()
    assert all(word in text for word in ("--model", "--negative", *SIZE_PRESETS))
