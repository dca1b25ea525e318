"""Checks request parameters before anything is sent or reserved.

Each failure raises ``ValidationError`` with one sentence a chat user can act on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from bot.errors import ValidationError
from bot.i18n import N_, _
from bot.minitoolai import models
from bot.minitoolai.types import ChatParams, ImageParams


def validate_chat(params: ChatParams, *, has_images: bool) -> None:
    """Raise ``ValidationError`` unless the API would accept these chat options."""
    model = models.CHAT_MODELS.get(params.model)
    if model is None:
        raise ValidationError(
            _(
                "Unknown chat model {model}; choose one of {models}.",
                model=repr(params.model),
                models=_listing(models.CHAT_MODELS),
            )
        )
    if params.temperature is not None:
        _check_temperature(params.temperature)
    if params.max_completion_tokens is not None:
        _check_int(
            N_("Max completion tokens"), params.max_completion_tokens, 1, models.MAX_COMPLETION_TOKENS_CAP
        )
    if has_images and not model.vision:
        vision = [m.name for m in models.CHAT_MODELS.values() if m.vision]
        raise ValidationError(
            _(
                "The model {model} cannot read images; use {models} for images.",
                model=model.name,
                models=_listing(vision),
            )
        )


def validate_image(params: ImageParams) -> ImageParams:
    """Return ``params`` with canonical names and the guide's defaults filled in."""
    prompt = params.prompt.strip()
    if not prompt:
        raise ValidationError(_("Please describe the image you want (the prompt is empty)."))
    _check_length(N_("The prompt"), prompt)
    negative = params.negative_prompt.strip() if params.negative_prompt is not None else None
    if negative is not None:
        _check_length(N_("The negative prompt"), negative)
    model = _canonical(
        N_("Unknown image model {given}; choose one of {allowed}."), params.model, models.IMAGE_MODELS
    )
    scheduler = _canonical(
        N_("Unknown scheduler {given}; choose one of {allowed}."),
        params.scheduler or models.DEFAULT_SCHEDULER,
        models.SCHEDULERS,
    )
    steps = params.steps if params.steps is not None else models.DEFAULT_STEPS
    _check_int(N_("Steps"), steps, *models.STEPS_RANGE)
    cfg = params.cfg_scale if params.cfg_scale is not None else models.DEFAULT_CFG_SCALE
    _check_number(N_("CFG scale"), cfg, *models.CFG_SCALE_RANGE)
    width = params.width if params.width is not None else models.DEFAULT_WIDTH
    height = params.height if params.height is not None else models.DEFAULT_HEIGHT
    _check_int(N_("Width"), width, *models.SIZE_RANGE)
    _check_int(N_("Height"), height, *models.SIZE_RANGE)
    return dataclasses.replace(
        params,
        prompt=prompt,
        model=model,
        negative_prompt=negative or None,
        scheduler=scheduler,
        steps=steps,
        cfg_scale=cfg,
        width=width,
        height=height,
    )


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names)


def _canonical(refusal: str, given: str, allowed: tuple[str, ...]) -> str:
    # Users type "euler a" or "RealVision"; the API wants the exact spelling.
    wanted = " ".join(given.split()).casefold()
    for name in allowed:
        if name.casefold() == wanted:
            return name
    raise ValidationError(_(refusal, given=repr(given), allowed=_listing(allowed)))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(label: str, value: object, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise ValidationError(
            _(
                "{label} must be a whole number from {low} to {high} (you gave {value}).",
                label=_(label),
                low=low,
                high=high,
                value=value,
            )
        )


def _check_number(label: str, value: object, low: float, high: float) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
    if not ok:
        raise ValidationError(
            _(
                "{label} must be a number from {low} to {high} (you gave {value}).",
                label=_(label),
                low=low,
                high=high,
                value=value,
            )
        )


def _check_temperature(value: object) -> None:
    _check_number(N_("Temperature"), value, *models.TEMPERATURE_RANGE)


def _check_length(label: str, text: str) -> None:
    if len(text) > models.MAX_PROMPT_CHARS:
        raise ValidationError(
            _(
                "{label} is too long: at most {limit} characters (yours has {length}).",
                label=_(label),
                limit=models.MAX_PROMPT_CHARS,
                length=len(text),
            )
        )
