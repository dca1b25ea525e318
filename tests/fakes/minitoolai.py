"""A fake MiniToolAI API: a real aiohttp server on 127.0.0.1:0, scriptable per test.

    async with FakeMiniToolAI() as fake:
        fake.chat_scripts.append(ChatScript(tokens=["Hel", "lo"]))
        client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)

Chat answers are streamed in exactly the chunk format of MINITOOLAI_API.md (also under
``POST /v1/chat/completions`` so the official ``openai`` SDK can check the format).
Image jobs stay pending for a set number of polls and/or a set time after submission, then
succeed with an ``image_url`` served by the fake itself, or fail; :meth:`FakeMiniToolAI.image_jobs`
tells when each job was submitted and became ready. Every request is recorded with a
monotonic time.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import math
import secrets
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from PIL import Image

from bot.minitoolai.types import Usage

_COMPUTED: Any = object()  # ChatScript.usage default: derive realistic usage from the request
_BATCH = 512  # chunks per write when streaming without delay


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float  # time.monotonic()


@dataclass(slots=True)
class ChatScript:
    """How the next chat request is answered."""

    tokens: list[str]
    delay: float = 0.0  # seconds between content chunks
    usage: Usage | dict[str, Any] | None = _COMPUTED
    include_usage: bool = True
    finish_reason: str = "stop"
    status: int = 200
    error_body: str | dict[str, Any] | None = None
    retry_after: float | None = None
    cut_after: int | None = None  # close the connection abruptly after N content chunks
    error_chunk: dict[str, Any] | None = None  # sent after the tokens, then the stream ends
    wait_event: asyncio.Event | None = None  # pause before the first token until set
    hold_after: int = 0  # with hold_event: pause after this many content chunks until it is set
    hold_event: asyncio.Event | None = None
    chunk_bytes_split: int | None = None  # write the body in pieces of this many bytes
    model: str | None = None  # the model named in chunks; default: the requested one, dated
    keepalive_comments: bool = False  # interleave ": keep-alive" comment lines


@dataclass(slots=True)
class ImageScript:
    """How the next image job behaves.

    A job is pending while it has had at most ``pending_polls`` polls or while less than
    ``pending_for`` seconds (``time.monotonic``) have passed since it was submitted: a
    number of polls for exact tests, a duration for benchmarks of the real poll back-off.
    """

    pending_polls: int = 0
    pending_for: float = 0.0
    outcome: Literal["success", "failed", "never"] = "success"
    image: Literal["png", "not_image", "huge"] = "png"
    submit_status: Literal["success", "error"] = "success"
    http_status: int = 200


@dataclass(slots=True)
class _Fault:
    status: int
    body: str | dict[str, Any]
    times: int
    retry_after: float | None
    path: str | None


@dataclass(frozen=True, slots=True)
class ImageJobRecord:
    """What the fake knows about one submitted image job (times are ``time.monotonic``)."""

    jobid: str
    prompt: str
    submitted_at: float
    ready_at: float  # when ``pending_for`` ran out (a job with pending polls may answer later)
    polls: int


@dataclass(slots=True)
class _Job:
    script: ImageScript
    signature: str
    prompt: str
    submitted_at: float
    polls: int = 0

    @property
    def ready_at(self) -> float:
        return self.submitted_at + self.script.pending_for

    def pending(self, now: float) -> bool:
        script = self.script
        return script.outcome == "never" or self.polls <= script.pending_polls or now < self.ready_at


def make_png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small valid PNG, built by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG_BYTES = make_png()
NOT_IMAGE_BYTES = b"<html><body>This is not an image.</body></html>"


class FakeMiniToolAI:
    """The fake server; use as ``async with FakeMiniToolAI() as fake``."""

    def __init__(self, *, api_key: str = "test-key-0123456789", huge_bytes: int = 64 * 1024**2):
        self.api_key = api_key
        self.huge_bytes = huge_bytes
        self.chat_scripts: deque[ChatScript] = deque()
        self.image_scripts: deque[ImageScript] = deque()
        self.requests: list[RecordedRequest] = []
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.huge_bytes_sent = 0
        self.base_url = ""
        self._faults: deque[_Fault] = deque()
        self._jobs: dict[str, _Job] = {}
        self._jobids = itertools.count(12345678)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeMiniToolAI:
        app = web.Application()
        app.router.add_post("/api/chat-completions/", self._chat)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/api/texttoimage/", self._submit)
        app.router.add_post("/api/texttoimage/jobs/", self._poll)
        app.router.add_get("/files/{name}", self._file)
        # handler_cancellation: a client that goes away cancels its handler at once,
        # which is how the fake notices a stopped stream.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -------------------------------------------------------------- scripting

    def fail_next(
        self,
        status: int,
        body: str | dict[str, Any] = "",
        *,
        times: int = 1,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, or to any endpoint) with an error."""
        self._faults.append(_Fault(status, body, times, retry_after, path))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def image_jobs(self) -> list[ImageJobRecord]:
        """Every image job submitted so far, in submission order."""
        return [
            ImageJobRecord(jobid, job.prompt, job.submitted_at, job.ready_at, job.polls)
            for jobid, job in self._jobs.items()
        ]

    async def wait_requests(self, path: str, count: int) -> None:
        """Wait until ``count`` requests to ``path`` have arrived."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.requests_to(path)) >= count)

    async def wait_cancelled(self, count: int = 1) -> None:
        """Wait until ``count`` streams have seen their client go away."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.cancelled_streams >= count)

    # -------------------------------------------------------------- helpers

    async def _record(self, request: web.Request) -> Any:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), body, time.monotonic())
        )
        await self._notify()
        return body

    def _take_fault(self, path: str) -> web.Response | None:
        for fault in self._faults:
            if fault.path is None or fault.path == path:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return _error_response(fault.status, fault.body, fault.retry_after)
        return None

    def _refuse_key(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "")
        if given == f"Bearer {self.api_key}":
            return None
        # Like real APIs, echo what was sent: the client must scrub it from its errors.
        shown = given.removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {shown}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        return web.json_response({"error": error}, status=401)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ----------------------------------------------------------------- chat

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        refusal = self._take_fault(request.path) or self._refuse_key(request)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error_response(400, {"error": {"message": "messages is required"}}, None)
        script = self.chat_scripts.popleft() if self.chat_scripts else _default_script(body)
        if script.status != 200:
            return _error_response(script.status, script.error_body or "", script.retry_after)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            await self._stream(request, response, body, script)
        except (asyncio.CancelledError, ConnectionError):
            self.cancelled_streams += 1
            await asyncio.shield(self._notify())
            raise
        self.completed_streams += 1
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: dict[str, Any],
        script: ChatScript,
    ) -> None:
        encoder = ChunkEncoder(script.model or _dated(str(body.get("model", "gpt-4o-mini"))))
        tokens = script.tokens if script.cut_after is None else script.tokens[: script.cut_after]
        content = [encoder.content(t) for t in tokens]
        if script.keepalive_comments:
            content = [b": keep-alive\n\n" + c for c in content]
        if script.wait_event is not None:
            await script.wait_event.wait()
        if script.hold_event is not None:
            await self._write_chunks(response, content[: script.hold_after], script)
            await script.hold_event.wait()
            content = content[script.hold_after :]
        await self._write_chunks(response, content, script)
        if script.cut_after is not None:
            # Abrupt end: no terminating chunk, no [DONE]; the client sees a broken stream.
            assert request.transport is not None
            request.transport.close()
            return
        if script.error_chunk is not None:
            await response.write(_event(json.dumps(script.error_chunk)))
            await response.write_eof()
            return
        tail = [encoder.finish(script.finish_reason)]
        if script.include_usage and script.usage is not None:
            tail.append(encoder.usage(_usage_dict(script, body, len(tokens))))
        tail.append(b"data: [DONE]\n\n")
        await self._write_chunks(response, tail, script, paced=False)
        await response.write_eof()

    async def _write_chunks(
        self,
        response: web.StreamResponse,
        chunks: list[bytes],
        script: ChatScript,
        *,
        paced: bool = True,
    ) -> None:
        if script.chunk_bytes_split:
            step = script.chunk_bytes_split
            data = b"".join(chunks)
            for start in range(0, len(data), step):
                await response.write(data[start : start + step])
                await asyncio.sleep(0)  # let each piece leave as its own segment
            return
        if paced and script.delay > 0:
            for chunk in chunks:
                await response.write(chunk)
                await asyncio.sleep(script.delay)
            return
        for start in range(0, len(chunks), _BATCH):
            await response.write(b"".join(chunks[start : start + _BATCH]))

    # --------------------------------------------------------------- images

    async def _submit(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refusal = self._take_fault(request.path) or self._refuse_key(request)
        if refusal is not None:
            return refusal
        if not isinstance(body, dict) or not body.get("model") or not body.get("prompt"):
            return _error_response(400, {"status": "error", "message": "model and prompt"}, None)
        script = self.image_scripts.popleft() if self.image_scripts else ImageScript(1)
        if script.http_status != 200:
            return _error_response(script.http_status, {"status": "error"}, None)
        if script.submit_status == "error":
            return web.json_response({"status": "error", "jobid": None, "signature": None})
        jobid = next(self._jobids)
        job = _Job(script, secrets.token_hex(8), str(body["prompt"]), time.monotonic())
        self._jobs[str(jobid)] = job
        return web.json_response({"status": "success", "jobid": jobid, "signature": job.signature})

    async def _poll(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        fault = self._take_fault(request.path)
        if fault is not None:
            return fault
        if not isinstance(body, dict):
            return _error_response(400, {"status": "error", "message": "bad body"}, None)
        job = self._jobs.get(str(body.get("jobid")))
        if job is None:
            return _error_response(404, {"status": "error", "message": "no such job"}, None)
        if body.get("signature") != job.signature:
            return _error_response(403, {"status": "error", "message": "bad signature"}, None)
        job.polls += 1
        if job.pending(time.monotonic()):
            return web.json_response({"status": "processing", "message": "processing"})
        if job.script.outcome == "failed":
            return web.json_response({"status": "failed", "message": "generation failed"})
        url = f"{self.base_url}/files/{body['jobid']}.png"
        return web.json_response({"status": "success", "image_url": url, "message": "success"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        fault = self._take_fault(request.path)
        if fault is not None:
            return fault
        job = self._jobs.get(request.match_info["name"].removesuffix(".png"))
        if job is None:
            return _error_response(404, "not found", None)
        if job.script.image == "png":
            return web.Response(body=PNG_BYTES, content_type="image/png")
        if job.script.image == "not_image":
            return web.Response(body=NOT_IMAGE_BYTES, content_type="image/png")
        return await self._huge(request)

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: the client has to count and stop by itself.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        piece = PNG_BYTES[:8] + bytes(64 * 1024 - 8)
        filler = bytes(64 * 1024)
        try:
            while self.huge_bytes_sent < self.huge_bytes:
                await response.write(piece if self.huge_bytes_sent == 0 else filler)
                self.huge_bytes_sent += len(filler)
        except (asyncio.CancelledError, ConnectionError):
            self.cancelled_streams += 1
            await asyncio.shield(self._notify())
            raise
        await response.write_eof()
        return response


class ChunkEncoder:
    """Pre-encodes chunks in the API's exact format (compact JSON, UTF-8)."""

    def __init__(self, model: str) -> None:
        head = {
            "id": f"chatcmpl-{secrets.token_urlsafe(21)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": f"fp_{secrets.token_hex(5)}",
        }
        self._head = _dumps(head)[:-1]  # without the closing brace
        self._content_prefix = ("data: " + self._head + ',"choices":[{"index":0,"delta":{"content":').encode()
        self._content_suffix = b'},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'

    def content(self, token: str) -> bytes:
        return self._content_prefix + _dumps(token).encode() + self._content_suffix

    def finish(self, reason: str) -> bytes:
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
        return self._chunk(f'"choices":[{_dumps(choice)}],"usage":null')

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._chunk(f'"choices":[],"usage":{_dumps(usage)}')

    def _chunk(self, rest: str) -> bytes:
        return _event(f"{self._head},{rest}}}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def _dated(model: str) -> str:
    dates = {"gpt-4o-mini": "2024-07-18", "gpt-4o": "2024-08-06", "gpt-4.1": "2025-04-14"}
    return f"{model}-{dates[model]}" if model in dates else model


def _usage_dict(script: ChatScript, body: dict[str, Any], completion: int) -> dict[str, Any]:
    usage = script.usage
    if isinstance(usage, dict):
        return usage
    if isinstance(usage, Usage):
        prompt, completion, cached = usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
    else:
        prompt, cached = _prompt_tokens(body), 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    """About 4 characters a token, plus every picture as OpenAI bills it for the model and detail."""
    text = max(1, sum(len(_message_text(m)) for m in body["messages"]) // 4)
    return text + sum(picture_usage(body.get("model", ""), url, detail) for url, detail in _pictures(body))


def _pictures(body: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part["image_url"]
                found.append((image["url"], image.get("detail", "auto")))
    return found


# The picture counting OpenAI documents (vision guide, "Calculating costs"), written here apart from
# bot.chat.vision so the bot's estimate is checked against an independent reading: low detail is the
# base; otherwise fit in 2048 x 2048, shrink (never enlarge) to a shortest side of 768, count 512 px tiles.
PICTURE_RATES = {"gpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4o-mini": (2833, 5667)}


def picture_usage(model: str, url: str, detail: str) -> int:
    base, per_tile = PICTURE_RATES[model]
    if detail == "low":
        return base
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:40]
    with Image.open(io.BytesIO(base64.b64decode(payload))) as picture:
        width, height = picture.size
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = round(width * scale), round(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return base + per_tile * math.ceil(width / 512) * math.ceil(height / 512)


def _default_script(body: dict[str, Any]) -> ChatScript:
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    last = _message_text(users[-1]) if users else ""
    words = f"You said: {last[:60]}. That is an interesting thought!".split(" ")
    return ChatScript(tokens=[w if i == 0 else " " + w for i, w in enumerate(words)])


def _error_response(status: int, body: str | dict[str, Any], retry_after: float | None) -> web.Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    if isinstance(body, dict):
        return web.json_response(body, status=status, headers=headers)
    return web.Response(text=body, status=status, headers=headers)
