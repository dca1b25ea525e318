"""The async MiniToolAI API client: streamed chat, image jobs and image downloads.

It speaks only HTTP through an ``aiohttp.ClientSession`` handed in from outside, and
turns every failure into a ``bot.errors.MiniToolAIError``. The API key goes only into
the ``Authorization`` header of requests to ``base_url``; it is scrubbed from every
body kept in an exception and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from bot.errors import (
    AuthenticationError,
    BadImage,
    InvalidRequest,
    JobFailed,
    MiniToolAIError,
    PartialAnswer,
    PaymentRequired,
    RateLimited,
    ServiceUnavailable,
    StreamInterrupted,
)
from bot.minitoolai.sse import ChunkParser, SSEDecoder, error_from_body
from bot.minitoolai.types import (
    ChatEvent,
    ChatMessage,
    ChatParams,
    DownloadedImage,
    ImageJobRef,
    ImageParams,
    JobDone,
    JobFailedStatus,
    JobPending,
    JobStatus,
    StreamEnd,
    TextDelta,
)
from bot.minitoolai.validation import validate_chat, validate_image
from bot.ops import metrics

logger = logging.getLogger(__name__)

CHAT_PATH = "/api/chat-completions/"
IMAGE_PATH = "/api/texttoimage/"
JOBS_PATH = "/api/texttoimage/jobs/"

_MAX_ERROR_BODY = 64 * 1024
_MAX_JSON_BODY = 1024 * 1024
_T = TypeVar("_T")
_rng = random.Random()


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds. ``first_token`` runs from sending a chat request to its first text;
    ``idle`` is the longest silence between reads after that; ``total`` bounds a whole
    call, retries included."""

    connect: float = 10
    first_token: float = 60
    idle: float = 60
    total: float = 600


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off for transient failures; ``attempts`` counts the first try."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8
    jitter: bool = True

    def delay(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after ``failures`` failed tries, or None to give up."""
        if failures >= self.attempts:
            return None
        if retry_after is not None:
            # A server asking for longer than we would ever wait: give up and tell the user.
            return retry_after if retry_after <= self.max_delay else None
        delay = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        if self.jitter:
            # Half fixed, half random: spreads retries of many users without ever
            # retrying sooner than half the back-off.
            delay = delay / 2 + _rng.uniform(0, delay / 2)
        return delay


@dataclass(slots=True)
class _Progress:
    """What one chat call has streamed so far (text kept as parts: no re-joining)."""

    parts: list[str] = field(default_factory=list)

    def partial(self) -> PartialAnswer:
        return PartialAnswer(text="".join(self.parts))


Pace = Callable[[], Awaitable[None]]  # awaited before reading more of a stream (see stream_chat)


class _ReadTimer:
    """Bounds each wait for stream data with one timer per stream, not a timeout scope per read.

    Before a read, :meth:`wait_until` sets how long that wait may last (first token, idle gap,
    total deadline); after it, :meth:`done` marks it over. The timer only moves when a wait
    must end sooner than it is set for, so a steady stream costs a few timers, not one per
    chunk. A wait that overruns gets ``TimeoutError`` from the read, as a timeout scope would.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, content: aiohttp.StreamReader) -> None:
        self._loop = loop
        self._content = content
        self._limit = float("inf")
        self._waiting = False
        self._handle: asyncio.TimerHandle | None = None

    def wait_until(self, limit: float) -> None:
        self._limit, self._waiting = limit, True
        if self._handle is not None and self._handle.when() <= limit:
            return  # it fires sooner and will look again then
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(limit, self._check)

    def done(self) -> None:
        self._waiting = False

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if not self._waiting:
            return  # the next wait sets it again
        if self._loop.time() < self._limit:
            self._handle = self._loop.call_at(self._limit, self._check)
            return
        self._content.set_exception(TimeoutError())


class _Transient(Exception):
    """Internal: a failure that is safe to retry; wraps the error to raise otherwise."""

    def __init__(self, error: MiniToolAIError) -> None:
        super().__init__(str(error))
        self.error = error


class MiniToolAIClient:
    """Calls the MiniToolAI API at ``base_url`` with ``api_key``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        timeouts: ClientTimeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._timeouts = timeouts or ClientTimeouts()
        self._retry = retry or RetryPolicy()

    def __repr__(self) -> str:  # never show the key
        return f"MiniToolAIClient(base_url={self._base!r})"

    # ----------------------------------------------------------------- chat

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: ChatParams, *, pace: Pace | None = None
    ) -> AsyncGenerator[ChatEvent, None]:
        """Stream an answer: ``TextDelta`` events, then exactly one ``StreamEnd``.

        Validates at once (raising ``ValidationError`` before anything is sent). Close
        the generator (``aclose()``, or ``contextlib.aclosing`` around a loop you may
        ``break``) to stop: the HTTP response is closed right away.

        ``pace``, once text has come, is awaited before each read: a consumer that shows text
        only now and then (a paced chat) lets the bytes gather meanwhile and takes them in one
        read, instead of waking for every token. Timeouts count only the waits for data.
        """
        validate_chat(params, has_images=any(m.images for m in messages))
        body: dict[str, Any] = {
            "model": params.model,
            "messages": [m.to_wire() for m in messages],
            "temperature": params.temperature,
            "max_completion_tokens": params.max_completion_tokens,
            "stream": True,
        }
        return self._stream_chat(body, pace)

    async def _stream_chat(self, body: dict[str, Any], pace: Pace | None) -> AsyncGenerator[ChatEvent, None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.total
        progress = _Progress()
        failures = 0
        logger.debug("chat request model=%s messages=%d", body["model"], len(body["messages"]))
        while True:
            try:
                # aclosing: when our consumer stops, the attempt (and its response) closes now,
                # not whenever the garbage collector finalises it.
                async with contextlib.aclosing(self._chat_attempt(body, deadline, progress, pace)) as events:
                    async for event in events:
                        yield event
            except _Transient as transient:
                failures += 1
                error = transient.error
                if progress.parts:  # never re-send once the user has seen tokens
                    raise self._interrupted(progress, error) from error
                await self._back_off(failures, error, deadline)
            except TimeoutError:
                metrics.upstream_error("timeout")
                if progress.parts:
                    raise self._interrupted(progress, "the stream timed out") from None
                raise ServiceUnavailable(
                    "MiniToolAI sent no answer in time.",
                    user_message="The AI service took too long to start answering. "
                    "Please try again in a moment.",
                ) from None
            except MiniToolAIError as error:
                if progress.parts:
                    raise self._interrupted(progress, error) from error
                raise
            else:
                return

    async def _chat_attempt(
        self, body: dict[str, Any], deadline: float, progress: _Progress, pace: Pace | None
    ) -> AsyncGenerator[ChatEvent, None]:
        """One request; raises ``_Transient`` for failures a retry may cure."""
        loop = asyncio.get_running_loop()
        first_deadline = min(deadline, loop.time() + self._timeouts.first_token)
        async with asyncio.timeout_at(first_deadline):
            response = await self._send("POST", CHAT_PATH, body, auth=True, accept="text/event-stream")
        timer = _ReadTimer(loop, response.content)
        try:
            await self._check_status(response, first_deadline)
            idle = self._timeouts.idle
            decoder = SSEDecoder()
            parser = ChunkParser()
            parts = progress.parts
            content = response.content
            while True:
                try:
                    chunk = b""
                    if pace is not None and parts:
                        await pace()
                        chunk = content.read_nowait()  # whatever gathered meanwhile
                    if not chunk:
                        timer.wait_until(min(deadline, loop.time() + idle) if parts else first_deadline)
                        try:
                            chunk = await content.readany()
                        finally:
                            timer.done()
                except aiohttp.ClientError as exc:
                    raise _Transient(ServiceUnavailable(f"The chat stream broke: {exc}")) from exc
                if not chunk:
                    raise _Transient(ServiceUnavailable("The chat stream ended before [DONE]."))
                for payload in decoder.feed(chunk):
                    text = self._parse(parser, payload)
                    if text is not None:
                        parts.append(text)
                        yield TextDelta(text)
                    elif parser.done:
                        yield self._finished(parser, parts)
                        return
        finally:
            # Also runs on aclose(): an unfinished stream's connection is dropped at once.
            timer.cancel()
            response.close()

    def _parse(self, parser: ChunkParser, payload: str) -> str | None:
        try:
            return parser.parse(payload)
        except (RateLimited, ServiceUnavailable) as error:
            raise _Transient(self._scrubbed(error)) from error
        except MiniToolAIError as error:
            raise self._scrubbed(error) from None

    def _finished(self, parser: ChunkParser, parts: list[str]) -> StreamEnd:
        end = parser.end()
        logger.info(
            "chat finished model=%s finish_reason=%s usage=%s chars=%d",
            end.model,
            end.finish_reason,
            end.usage,
            sum(map(len, parts)),
        )
        return end

    def _interrupted(self, progress: _Progress, cause: MiniToolAIError | str) -> StreamInterrupted:
        partial = progress.partial()
        metrics.upstream_error("interrupted")
        logger.warning(
            "chat stream interrupted after %d chars: %s", len(partial.text), self._scrub(str(cause))
        )
        body = cause.body if isinstance(cause, MiniToolAIError) else ""
        return StreamInterrupted(
            f"The chat stream broke after {len(partial.text)} characters: {self._scrub(str(cause))}",
            partial=partial,
            body=body,
        )

    async def _back_off(self, failures: int, error: MiniToolAIError, deadline: float) -> None:
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        delay = self._retry.delay(failures, retry_after)
        loop = asyncio.get_running_loop()
        if delay is None or loop.time() + delay >= deadline:
            raise error
        logger.warning("MiniToolAI try %d failed (%s); retrying in %.2fs", failures, error, delay)
        await asyncio.sleep(delay)

    # --------------------------------------------------------------- images

    async def submit_image(self, params: ImageParams) -> ImageJobRef:
        """Start an image job. Retried only when the request never reached the server."""
        body = validate_image(params).to_wire()
        answer = await self._json_call(IMAGE_PATH, body, retry_when=_never_sent)
        jobid, signature = answer.get("jobid"), answer.get("signature")
        if answer.get("status") != "success" or jobid is None or not isinstance(signature, str):
            raise JobFailed("MiniToolAI refused the image job.", body=self._dump(answer))
        logger.info("image job submitted jobid=%s model=%s", jobid, body["model"])
        return ImageJobRef(jobid=str(jobid), signature=signature)

    async def poll_job(self, job: ImageJobRef) -> JobStatus:
        """Ask how a job is doing; any status but success/error/failed means pending."""
        body = {"jobid": job.jobid, "signature": job.signature}
        answer = await self._json_call(JOBS_PATH, body, retry_when=_transient)
        status = str(answer.get("status") or "")
        if status == "success":
            url = answer.get("image_url")
            if not isinstance(url, str) or not url:
                raise JobFailed("The finished job has no image_url.", body=self._dump(answer))
            return JobDone(image_url=url)
        if status.lower() in ("error", "failed"):
            return JobFailedStatus(message=str(answer.get("message") or status))
        return JobPending(status=status or "pending")

    async def download_image(
        self,
        url: str,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        timeout: float = 30,  # noqa: ASYNC109 - one deadline for the whole download, by design
    ) -> DownloadedImage:
        """Fetch a finished image (without our key), capped at ``max_bytes``."""
        if not url.lower().startswith(("http://", "https://")):
            raise BadImage(f"Refusing to download an image from a non-HTTP URL {url[:80]!r}.")
        try:
            async with asyncio.timeout(timeout):
                data = await self._download(url, max_bytes)
        except TimeoutError:
            raise ServiceUnavailable("The image download took too long.") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable(f"The image download failed: {exc}") from exc
        mime = sniff_image(data)
        if mime is None:
            raise BadImage(
                f"The downloaded file ({len(data)} bytes) is not a JPEG, PNG, WebP or GIF image.",
                body=repr(data[:64]),
            )
        return DownloadedImage(data=data, mime=mime)

    async def _download(self, url: str, max_bytes: int) -> bytes:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect)
        async with self._session.get(url, timeout=timeout) as response:
            if response.status != 200:
                text = await self._read_error_body(response)
                raise BadImage(
                    f"The image download answered HTTP {response.status}.",
                    status=response.status,
                    body=text,
                )
            if response.content_length is not None and response.content_length > max_bytes:
                response.close()
                raise BadImage(f"The image is too large ({response.content_length} bytes).")
            data = bytearray()
            async for chunk in response.content.iter_any():
                data += chunk
                if len(data) > max_bytes:
                    response.close()  # stop reading now, not after the rest arrives
                    raise BadImage(f"The image is larger than {max_bytes} bytes.")
            return bytes(data)

    # ---------------------------------------------------------------- HTTP

    async def _send(
        self, method: str, path: str, body: dict[str, Any], *, auth: bool, accept: str
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": accept}
        if auth:
            headers["Authorization"] = f"Bearer {self._key}"
        # sock_connect only: waiting for a free pooled connection is not a failure to connect.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeouts.connect)
        try:
            return await self._session.request(
                method, self._base + path, json=body, headers=headers, timeout=timeout
            )
        except aiohttp.ClientError as exc:
            metrics.upstream_error("connection")
            error = ServiceUnavailable(f"Could not reach MiniToolAI: {self._scrub(str(exc))}")
            error.__cause__ = exc
            raise _Transient(error) from exc

    async def _check_status(self, response: aiohttp.ClientResponse, deadline: float | None) -> None:
        if response.status == 200 and response.content_type != "application/json":
            return
        async with asyncio.timeout_at(deadline):
            text = await self._read_error_body(response)
        error = self._status_error(response, text)
        metrics.upstream_error(type(error).__name__)
        logger.warning("MiniToolAI answered HTTP %d: %s", response.status, text)
        if isinstance(error, RateLimited | ServiceUnavailable):
            raise _Transient(error)
        raise error

    async def _read_error_body(self, response: aiohttp.ClientResponse) -> str:
        try:
            raw = await response.content.read(_MAX_ERROR_BODY)
        except aiohttp.ClientError:
            raw = b""
        return self._scrub(raw.decode("utf-8", "replace").strip())

    def _status_error(self, response: aiohttp.ClientResponse, text: str) -> MiniToolAIError:
        status = response.status
        parsed = _loads(text)
        if status == 200:  # a JSON answer where a stream was expected
            detail = parsed.get("error", parsed) if isinstance(parsed, dict) else text
            return error_from_body(detail, text, status=status)
        message = f"MiniToolAI answered HTTP {status}."
        if status in (401, 403):
            return AuthenticationError(message, status=status, body=text)
        if status == 402:
            return PaymentRequired(message, status=status, body=text)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"), parsed)
            return RateLimited(message, retry_after=retry_after, status=status, body=text)
        if status >= 500:
            return ServiceUnavailable(message, status=status, body=text)
        return InvalidRequest(message, status=status, body=text)

    async def _json_call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        retry_when: Callable[[BaseException], bool],
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.total
        return await self._retrying(lambda: self._json_once(path, body), retry_when, deadline)

    async def _json_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeouts.first_token):
                response = await self._send("POST", path, body, auth=True, accept="application/json")
                try:
                    if response.status != 200:
                        await self._check_status(response, None)
                    raw = await response.content.read(_MAX_JSON_BODY)
                finally:
                    response.close()
        except TimeoutError:
            raise ServiceUnavailable("MiniToolAI did not answer in time.") from None
        except aiohttp.ClientError as exc:
            raise _Transient(ServiceUnavailable(f"MiniToolAI connection broke: {exc}")) from exc
        answer = _loads(raw.decode("utf-8", "replace"))
        if not isinstance(answer, dict):
            raise ServiceUnavailable(
                "MiniToolAI sent an answer that is not a JSON object.",
                body=self._scrub(raw[:2000].decode("utf-8", "replace")),
            )
        return answer

    async def _retrying(
        self,
        call: Callable[[], Awaitable[_T]],
        retry_when: Callable[[BaseException], bool],
        deadline: float,
    ) -> _T:
        failures = 0
        while True:
            try:
                return await call()
            except _Transient as transient:
                failures += 1
                if not retry_when(transient):
                    raise transient.error from transient.error.__cause__
                await self._back_off(failures, transient.error, deadline)

    def _scrubbed(self, error: MiniToolAIError) -> MiniToolAIError:
        """The error with our key removed from its message and body (servers echo keys)."""
        error.args = tuple(self._scrub(str(arg)) for arg in error.args)
        error.body = self._scrub(error.body)
        return error

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[api key]") if self._key else text

    def _dump(self, answer: dict[str, Any]) -> str:
        return self._scrub(json.dumps(answer)[:2000])


def _transient(exc: BaseException) -> bool:
    return True


def _never_sent(exc: BaseException) -> bool:
    """True only when the request provably never reached the server."""
    cause = exc.error.__cause__ if isinstance(exc, _Transient) else None
    return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _retry_after(header: str | None, body: Any) -> float | None:
    """Seconds from a Retry-After header (seconds or HTTP date) or a JSON body."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if isinstance(body, dict):
        for holder in (body, body.get("error"), body.get("parameters")):
            if isinstance(holder, dict):
                value = holder.get("retry_after")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return max(0.0, float(value))
    return None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(data: bytes) -> str | None:
    """The MIME type the magic bytes show, if it is a JPEG, PNG, WebP or GIF."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
