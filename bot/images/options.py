"""The options of one /imagine request, and how command text becomes them.

Every adapter ends up with an :class:`ImageOptions`: Discord builds it from slash-command
options (with :data:`SIZE_PRESETS` and ``IMAGE_MODELS`` as choices), Telegram and the console
parse their text with :func:`parse_imagine_args`::

    a red fox --model dreamshaper --size 1152x768 --steps 6 --cfg 3 --scheduler "Euler a"

:func:`to_params` turns options plus the model the community allows into validated
``ImageParams`` with the guide's defaults filled in.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bot.errors import ValidationError
from bot.i18n import N_, _
from bot.minitoolai.types import ImageParams
from bot.minitoolai.validation import validate_image

__all__ = [
    "FLAGS",
    "SIZE_PRESETS",
    "ImageOptions",
    "parse_imagine_args",
    "parse_size",
    "to_params",
    "usage_text",
]

SIZE_PRESETS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "square": (1024, 1024),
        "portrait": (896, 1152),
        "landscape": (1152, 896),
        "tall": (768, 1344),
        "wide": (1344, 768),
    }
)


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """What the person asked for; None = the community's default model or the guide's default."""

    prompt: str
    negative_prompt: str | None = None
    model: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ImageOptions:
        """The options of a stored job (its validated ``ImageParams`` as a dict), for regenerating."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


# flag -> (ImageOptions field, takes several words). Single-word flags give the rest of their
# words back to the prompt, so "--steps 6 a red fox" still means what it looks like.
_FIELDS: dict[str, tuple[str, bool]] = {
    "model": ("model", False),
    "size": ("size", False),
    "width": ("width", False),
    "height": ("height", False),
    "steps": ("steps", False),
    "cfg": ("cfg_scale", False),
    "scheduler": ("scheduler", True),
    "negative": ("negative_prompt", True),
}
_ALIASES: dict[str, str] = {
    "m": "model",
    "s": "size",
    "w": "width",
    "h": "height",
    "cfg-scale": "cfg",
    "cfgscale": "cfg",
    "cfg_scale": "cfg",
    "neg": "negative",
    "negative-prompt": "negative",
    "negative_prompt": "negative",
    "no": "negative",
    "sampler": "scheduler",
}
FLAGS: tuple[str, ...] = tuple(f"--{name}" for name in _FIELDS)

# A token is a quoted run ("…", “…”, or '…' closed before a space) or a run of non-spaces,
# so apostrophes inside words ("a fox's den") are plain text, never an open quote.
_TOKEN = re.compile(r"\"[^\"]*\"|“[^”]*”|'[^']*'(?=\s|$)|\S+")
# Phones turn "--" into an em or en dash; accept those too.
_FLAG = re.compile(r"^(?:--|—|–)([A-Za-z][\w-]*)(?:=(.*))?$", re.DOTALL)
_SIZE = re.compile(r"^\s*(\d+)\s*[x×*X]\s*(\d+)\s*$")
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"))


def usage_text() -> str:
    """One paragraph of help for /imagine, listing every flag and preset."""
    presets = ", ".join(f"{name} ({w}×{h})" for name, (w, h) in SIZE_PRESETS.items())
    return _(
        "/imagine <prompt> [--model NAME] [--size WxH or preset] [--steps 1-8] [--cfg 1-7] "
        '[--scheduler "NAME"] [--negative "what to leave out"] [--width N] [--height N]. '
        "Size presets: {presets}.",
        presets=presets,
    )


def parse_size(text: str) -> tuple[int, int]:
    """``"1152x768"`` (also ``×`` or ``*``) or a preset name such as ``"portrait"``."""
    preset = SIZE_PRESETS.get(text.strip().casefold())
    if preset is not None:
        return preset
    match = _SIZE.match(text)
    if match is None:
        raise ValidationError(
            _(
                "I can't read the size {size}: give WIDTHxHEIGHT such as 1152x768, or one of {presets}.",
                size=repr(text),
                presets=", ".join(SIZE_PRESETS),
            )
        )
    return int(match.group(1)), int(match.group(2))


def parse_imagine_args(text: str) -> ImageOptions:
    """Options from command text: the prompt first, then ``--flag value`` pairs.

    Raises ``ValidationError`` for an unknown flag (naming it and listing the valid ones),
    a flag without a value, a flag given twice, or a value that is not a number.
    """
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    flag_at = [i for i, (_, _, tok) in enumerate(tokens) if _FLAG.match(tok)]
    if not flag_at:
        return ImageOptions(prompt=_unquote(text.strip()))
    prompt_parts = [text[: tokens[flag_at[0]][0]].strip()]
    values: dict[str, str] = {}
    for n, i in enumerate(flag_at):
        match = _FLAG.match(tokens[i][2])
        assert match is not None  # flag_at holds only matching tokens
        name = _canonical_flag(match.group(1))
        end = flag_at[n + 1] if n + 1 < len(flag_at) else len(tokens)
        words = tokens[i + 1 : end]
        inline = match.group(2)
        if inline is not None:  # --steps=6: everything after it belongs to the prompt or a next flag
            value, rest = inline, words
        elif not words:
            raise ValidationError(
                _("--{name} needs a value, for example {example}.", name=name, example=_example(name))
            )
        elif _FIELDS[name][1]:
            value, rest = text[words[0][0] : words[-1][1]], []
        else:
            value, rest = words[0][2], words[1:]
        if name in values:
            raise ValidationError(_("--{name} was given twice; give it once.", name=name))
        values[name] = _unquote(value.strip())
        if rest:
            prompt_parts.append(text[rest[0][0] : rest[-1][1]])
    prompt = " ".join(p for p in prompt_parts if p)
    return _build(_unquote(prompt), values)


def to_params(options: ImageOptions, model: str) -> ImageParams:
    """Validated request parameters (the guide's defaults filled in) for ``model``."""
    params = ImageParams(
        prompt=options.prompt,
        model=model,
        negative_prompt=options.negative_prompt,
        scheduler=options.scheduler,
        steps=options.steps,
        cfg_scale=options.cfg_scale,
        width=options.width,
        height=options.height,
    )
    return validate_image(params)


# ---------------------------------------------------------------- helpers


def _canonical_flag(given: str) -> str:
    name = given.casefold()
    name = _ALIASES.get(name, name)
    if name not in _FIELDS:
        raise ValidationError(
            _(
                "I don't know the option --{option}. Valid options: {options}.",
                option=given,
                options=", ".join(FLAGS),
            )
        )
    return name


def _example(name: str) -> str:
    examples = {
        "model": "--model dreamshaper",
        "size": _("--size 1152x768 or --size portrait"),
        "width": "--width 1152",
        "height": "--height 768",
        "steps": "--steps 6",
        "cfg": "--cfg 3",
        "scheduler": '--scheduler "Euler a"',
        "negative": '--negative "blurry"',
    }
    return examples[name]


def _unquote(value: str) -> str:
    for opening, closing in _QUOTES:
        if len(value) >= 2 and value.startswith(opening) and value.endswith(closing):
            return value[1:-1].strip()
    return value


def _number(label: str, value: str, convert: Callable[[str], Any]) -> Any:
    try:
        return convert(value)
    except ValueError:
        if convert is int:
            raise ValidationError(
                _("{label} must be a whole number (you gave {value}).", label=_(label), value=repr(value))
            ) from None
        raise ValidationError(
            _("{label} must be a number (you gave {value}).", label=_(label), value=repr(value))
        ) from None


def _build(prompt: str, values: dict[str, str]) -> ImageOptions:
    width = height = None
    if "size" in values:
        if "width" in values or "height" in values:
            raise ValidationError(_("Give either --size or --width/--height, not both."))
        width, height = parse_size(values["size"])
    if "width" in values:
        width = _number(N_("Width"), values["width"], int)
    if "height" in values:
        height = _number(N_("Height"), values["height"], int)
    return ImageOptions(
        prompt=prompt,
        negative_prompt=values.get("negative"),
        model=values.get("model"),
        scheduler=values.get("scheduler"),
        steps=_number(N_("Steps"), values["steps"], int) if "steps" in values else None,
        cfg_scale=_number(N_("CFG scale"), values["cfg"], float) if "cfg" in values else None,
        width=width,
        height=height,
    )
