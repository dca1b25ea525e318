"""Request and response values of the MiniToolAI API, independent of HTTP.

Everything here is a frozen value; ``to_wire`` methods build the JSON the API expects.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias


@dataclass(frozen=True, slots=True)
class Usage:
    """Exact token counts from the stream's final usage chunk (what billing settles on)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text, in stream order."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The stream finished with ``[DONE]``; ``usage`` is None if the API sent none."""

    finish_reason: str | None
    usage: Usage | None
    model: str | None


ChatEvent: TypeAlias = TextDelta | StreamEnd


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image attached to a chat message, sent inline as a ``data:`` URL.

    Inline data keeps platform file links (a Telegram link contains the bot token)
    from ever leaving the bot.
    """

    data: bytes
    mime: str
    detail: str = "auto"

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


Role: TypeAlias = Literal["developer", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    text: str
    images: tuple[ImageInput, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        if not self.images:
            return {"role": self.role, "content": self.text}
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        for image in self.images:
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": image.data_url(), "detail": image.detail},
                }
            )
        return {"role": self.role, "content": parts}


@dataclass(frozen=True, slots=True)
class ChatParams:
    """Model options of a chat request; None means "the API's default"."""

    model: str
    temperature: float | None = None
    max_completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ImageParams:
    """A text-to-image request; None fields are left out of the request."""

    prompt: str
    model: str
    negative_prompt: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"model": self.model, "prompt": self.prompt}
        optional: dict[str, Any] = {
            "negativePrompt": self.negative_prompt,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "cfgScale": self.cfg_scale,
            "width": self.width,
            "height": self.height,
        }
        wire.update({key: value for key, value in optional.items() if value is not None})
        return wire


@dataclass(frozen=True, slots=True)
class ImageJobRef:
    """A submitted image job; the signature authorises polling it."""

    jobid: str
    signature: str


@dataclass(frozen=True, slots=True)
class JobPending:
    """The job is still running; ``status`` is whatever the API said."""

    status: str


@dataclass(frozen=True, slots=True)
class JobDone:
    """The job finished; download ``image_url`` at once (its lifetime is unknown)."""

    image_url: str


@dataclass(frozen=True, slots=True)
class JobFailedStatus:
    """The API reported the job as failed."""

    message: str


JobStatus: TypeAlias = JobPending | JobDone | JobFailedStatus


@dataclass(frozen=True, slots=True)
class DownloadedImage:
    """The bytes of a finished image and the type its magic bytes show."""

    data: bytes
    mime: str
