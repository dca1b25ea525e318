"""The MiniToolAI API client: HTTP, the SSE reader, request/response types,
parameter validation and the price table."""

from bot.minitoolai.client import ClientTimeouts, MiniToolAIClient, RetryPolicy, sniff_image
from bot.minitoolai.models import CHAT_MODELS, IMAGE_MODELS, SCHEDULERS, ChatModel
from bot.minitoolai.prices import (
    ChatPrice,
    PriceOverrides,
    PriceTable,
    as_markup,
    parse_price_overrides,
)
from bot.minitoolai.sse import ChunkParser, SSEDecoder, parse_stream
from bot.minitoolai.types import (
    ChatEvent,
    ChatMessage,
    ChatParams,
    DownloadedImage,
    ImageInput,
    ImageJobRef,
    ImageParams,
    JobDone,
    JobFailedStatus,
    JobPending,
    JobStatus,
    StreamEnd,
    TextDelta,
    Usage,
)
from bot.minitoolai.validation import validate_chat, validate_image

__all__ = [
    "CHAT_MODELS",
    "IMAGE_MODELS",
    "SCHEDULERS",
    "ChatEvent",
    "ChatMessage",
    "ChatModel",
    "ChatParams",
    "ChatPrice",
    "ChunkParser",
    "ClientTimeouts",
    "DownloadedImage",
    "ImageInput",
    "ImageJobRef",
    "ImageParams",
    "JobDone",
    "JobFailedStatus",
    "JobPending",
    "JobStatus",
    "MiniToolAIClient",
    "PriceOverrides",
    "PriceTable",
    "RetryPolicy",
    "SSEDecoder",
    "StreamEnd",
    "TextDelta",
    "Usage",
    "as_markup",
    "parse_price_overrides",
    "parse_stream",
    "sniff_image",
    "validate_chat",
    "validate_image",
]
