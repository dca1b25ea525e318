"""What the MiniToolAI guide says about its models, schedulers and defaults.

The data lives here once so validation, prices and help texts agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatModel:
    """A chat model the API accepts."""

    name: str
    context_window: int
    # The guide's default for ``max_completion_tokens`` when a request leaves it out.
    default_max_output: int
    # Only gpt-4o and gpt-4o-mini are shown with image input in the guide.
    vision: bool


CHAT_MODELS: dict[str, ChatModel] = {
    m.name: m
    for m in (
        ChatModel("gpt-4o", 128_000, 1000, vision=True),
        ChatModel("gpt-4o-mini", 128_000, 1000, vision=True),
        ChatModel("gpt-4.1", 1_047_576, 1000, vision=False),
        ChatModel("gpt-4.1-mini", 1_047_576, 1000, vision=False),
        ChatModel("gpt-4.1-nano", 1_047_576, 1000, vision=False),
    )
}

# A ceiling on one answer's length: keeps worst-case reservations sane.
MAX_COMPLETION_TOKENS_CAP = 16_384

IMAGE_MODELS: tuple[str, ...] = (
    "realvision",
    "juggernaut",
    "autismmix",
    "dreamshaper",
    "valhalla",
    "mixrealistic",
    "campursari",
    "reality",
    "extrarealistic",
    "realism",
    "realgirls",
    "realityreborn",
    "amigo",
    "simplemix",
    "beautifulrealistic",
)

SCHEDULERS: tuple[str, ...] = (
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM fast",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Karras",
)

DEFAULT_SCHEDULER = "DPM++ SDE"
DEFAULT_STEPS = 4
DEFAULT_CFG_SCALE = 2
DEFAULT_WIDTH = 1024
DEFAULT_HEIGHT = 1024

STEPS_RANGE = (1, 8)
CFG_SCALE_RANGE = (1, 7)
SIZE_RANGE = (256, 1344)
TEMPERATURE_RANGE = (0, 2)
MAX_PROMPT_CHARS = 2000
