"""How many input tokens a picture costs, per model and ``detail``, before it is sent.

The MiniToolAI guide does not say how pictures are counted, but its answers name OpenAI model
versions, and ``usage.prompt_tokens`` follows OpenAI's documented counting (see "Open points" in
MINITOOLAI_API.md). The formulas are OpenAI's, from the vision guide's "Calculating costs" section
(platform.openai.com/docs/guides/images-vision, "GPT-4o, GPT-4.1, GPT-4o-mini ... image tokens"):

- ``detail: "low"``: a fixed base, whatever the size.
- ``"high"`` (and ``"auto"``, which may choose high): the picture is fitted inside 2048 x 2048,
  then scaled so its shortest side is 768 px; it is counted in 512 px tiles:
  ``base + per_tile * tiles``.
- gpt-4o (and gpt-4.1, which the guide counts the same way): base 85, 170 per tile; the documented
  examples are 1024 x 1024 high -> 765 tokens, 2048 x 4096 high -> 1,105, any size low -> 85.
- gpt-4o-mini: base 2,833, 5,667 per tile (1024 x 1024 high -> 25,501; low -> 2,833), so that its
  price per picture is close to gpt-4o's.

Whether a picture whose shortest side is under 768 px is scaled *up* first is not documented;
:func:`reserve_tokens` counts both readings and takes the larger, :func:`billed_tokens` is the
plain reading (no upscaling) that the API is observed to bill. Pictures are prepared to the size the
model uses (``bot.chat.attachments``), so for most pictures the two agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

Detail: TypeAlias = Literal["low", "high", "auto"]
DETAILS: tuple[Detail, ...] = ("auto", "low", "high")

FIT_SIDE = 2048  # first fitted inside FIT_SIDE x FIT_SIDE
SHORT_SIDE = 768  # then the shortest side scaled to this
TILE = 512
LOW_SIDE = 512  # what the model sees of a low-detail picture (fitted inside 512 x 512)
# After both scalings a picture is at most 768 x 2048: 2 x 4 tiles.
MAX_TILES = math.ceil(SHORT_SIDE / TILE) * math.ceil(FIT_SIDE / TILE)


@dataclass(frozen=True, slots=True)
class TileCost:
    """One model's picture price in tokens: ``base`` for every picture, ``per_tile`` per 512 px tile."""

    base: int
    per_tile: int


# Source: OpenAI's vision guide, "Calculating costs" (gpt-4o / gpt-4.1 and gpt-4o-mini rows).
TILE_COSTS: dict[str, TileCost] = {
    "gpt-4o": TileCost(85, 170),
    "gpt-4.1": TileCost(85, 170),
    "gpt-4o-mini": TileCost(2833, 5667),
}
# A model the table does not know is counted as the dearest one in tokens (never under-reserve).
UNKNOWN_MODEL = TileCost(2833, 5667)


def tile_cost(model: str) -> TileCost:
    return TILE_COSTS.get(model, UNKNOWN_MODEL)


def fit_within(width: int, height: int, side: int) -> tuple[int, int]:
    """Scale down (never up) so both sides are at most ``side``, keeping the aspect ratio."""
    if width <= side and height <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def high_detail_size(width: int, height: int, *, upscale: bool = False) -> tuple[int, int]:
    """The size the model looks at with high detail: fitted in 2048 x 2048, shortest side 768.

    Without ``upscale`` a picture whose shortest side is already under 768 keeps its size.
    """
    width, height = fit_within(width, height, FIT_SIDE)
    short = min(width, height)
    if short > SHORT_SIDE or (upscale and short < SHORT_SIDE):
        scale = SHORT_SIDE / short
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        # An upscaled long, thin picture would grow past the first fit again; the model cannot
        # use more than 2048 on a side.
        width, height = min(width, FIT_SIDE), min(height, FIT_SIDE)
    return width, height


def tiles(width: int, height: int) -> int:
    return math.ceil(width / TILE) * math.ceil(height / TILE)


def billed_tokens(model: str, width: int, height: int, detail: Detail) -> int:
    """The tokens the API reports for one picture of this size (``auto`` counted as ``high``)."""
    cost = tile_cost(model)
    if detail == "low":
        return cost.base
    if width <= 0 or height <= 0:
        return cost.base + cost.per_tile * MAX_TILES
    return cost.base + cost.per_tile * tiles(*high_detail_size(width, height))


def reserve_tokens(model: str, width: int, height: int, detail: Detail) -> int:
    """What to reserve for one picture: the larger of both readings of the undocumented upscaling.

    An unknown size (0) is counted at the most any picture can cost.
    """
    cost = tile_cost(model)
    if detail == "low":
        return cost.base
    if width <= 0 or height <= 0:
        return cost.base + cost.per_tile * MAX_TILES
    upscaled = tiles(*high_detail_size(width, height, upscale=True))
    return cost.base + cost.per_tile * max(upscaled, tiles(*high_detail_size(width, height)))


def max_picture_tokens(model: str) -> int:
    """The most one picture can cost on ``model`` (for help texts and estimates)."""
    cost = tile_cost(model)
    return cost.base + cost.per_tile * MAX_TILES


def prepared_size(width: int, height: int, detail: Detail) -> tuple[int, int]:
    """The largest size the model can use for ``detail``: sending more pixels buys nothing."""
    if detail == "low":
        return fit_within(width, height, LOW_SIDE)
    return high_detail_size(width, height)


def context_tokens(width: int, height: int, detail: Detail) -> int:
    """How much of the context window a picture fills (gpt-4o's count: the real tile tokens).

    gpt-4o-mini *bills* a picture at about 33 times these tokens so that its price matches
    gpt-4o's; the window it fills is the same picture. Budgets use this; money uses the billed count.
    """
    return reserve_tokens("gpt-4o", width, height, detail)
