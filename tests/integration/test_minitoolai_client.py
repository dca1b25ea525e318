"""The MiniToolAI client against the fake server, through the base-URL setting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.errors import (
    AuthenticationError,
    BadImage,
    InvalidRequest,
    JobFailed,
    MiniToolAIError,
    PaymentRequired,
    RateLimited,
    ServiceUnavailable,
    StreamInterrupted,
    ValidationError,
)
from bot.minitoolai import (
    ChatEvent,
    ChatMessage,
    ChatParams,
    ClientTimeouts,
    ImageInput,
    ImageParams,
    JobDone,
    JobFailedStatus,
    JobPending,
    MiniToolAIClient,
    RetryPolicy,
    StreamEnd,
    TextDelta,
    Usage,
)
from tests.fakes.minitoolai import PNG_BYTES, ChatScript, FakeMiniToolAI, ImageScript

CHAT = "/api/chat-completions/"
JOBS = "/api/texttoimage/jobs/"
SUBMIT = "/api/texttoimage/"
HELLO = [ChatMessage("developer", "Be brief."), ChatMessage("user", "Hello there")]
PARAMS = ChatParams("gpt-4o-mini", temperature=0.5, max_completion_tokens=200)
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.5, jitter=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMiniToolAI]:
    async with FakeMiniToolAI() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make_client(
    fake: FakeMiniToolAI,
    session: aiohttp.ClientSession,
    *,
    key: str | None = None,
    timeouts: ClientTimeouts | None = None,
    retry: RetryPolicy = FAST_RETRY,
) -> MiniToolAIClient:
    return MiniToolAIClient(
        session,
        base_url=fake.base_url,
        api_key=fake.api_key if key is None else key,
        timeouts=timeouts,
        retry=retry,
    )


@pytest.fixture
def client(fake: FakeMiniToolAI, session: aiohttp.ClientSession) -> MiniToolAIClient:
    return make_client(fake, session)


async def collect(client: MiniToolAIClient, params: ChatParams = PARAMS) -> list[ChatEvent]:
    return [event async for event in client.stream_chat(HELLO, params)]


def text_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# ------------------------------------------------------------------ streaming


async def test_stream_yields_deltas_then_one_end_with_usage(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """Deltas arrive in order, then exactly one StreamEnd with the exact usage."""
    fake.chat_scripts.append(ChatScript(tokens=["Hé", "llo", " 🙂"], usage=Usage(12, 3, 4)))
    events = await collect(client)
    assert events == [
        TextDelta("Hé"),
        TextDelta("llo"),
        TextDelta(" 🙂"),
        StreamEnd("stop", Usage(12, 3, 4), "gpt-4o-mini-2024-07-18"),
    ]


async def test_request_carries_key_body_and_stream_flag(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """The POST has the Bearer key and the documented JSON fields with stream: true."""
    await collect(client)
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", CHAT)
    assert request.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ],
        "temperature": 0.5,
        "max_completion_tokens": 200,
        "stream": True,
    }


async def test_images_are_sent_inline_as_data_urls(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """An attached image becomes an image_url part with a base64 data: URL."""
    message = ChatMessage("user", "What is this?", (ImageInput(PNG_BYTES, "image/png", "low"),))
    events = [e async for e in client.stream_chat([message], ChatParams("gpt-4o"))]
    assert isinstance(events[-1], StreamEnd)
    content = fake.requests[0].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["detail"] == "low"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")


async def test_default_answer_echoes_and_counts_usage(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """With no script the fake answers about the last user message with realistic usage."""
    events = await collect(client)
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert "Hello there" in text_of(events)
    assert end.usage == Usage(prompt_tokens=(9 + 11) // 4, completion_tokens=len(events) - 1)


async def test_trailing_slash_on_base_url_is_tolerated(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """'http://host/' and 'http://host' reach the same paths."""
    client = MiniToolAIClient(session, base_url=fake.base_url + "/", api_key=fake.api_key)
    await collect(client)
    assert fake.requests[0].path == CHAT


async def test_missing_usage_ends_with_usage_none(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """[DONE] without a usage chunk still ends the stream, with usage=None."""
    fake.chat_scripts.append(ChatScript(tokens=["a"], include_usage=False, finish_reason="length"))
    assert (await collect(client))[-1] == StreamEnd("length", None, "gpt-4o-mini-2024-07-18")


async def test_tiny_network_pieces_and_keepalives_change_nothing(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """Bytes written 3 at a time with keep-alive comments decode to the same answer."""
    tokens = ["Grüße", ", ", "世界", "\n", '"q"']
    fake.chat_scripts.append(ChatScript(tokens=tokens, chunk_bytes_split=3, keepalive_comments=True))
    events = await collect(client)
    assert text_of(events) == "".join(tokens)
    assert isinstance(events[-1], StreamEnd)


async def test_invalid_params_fail_before_any_request(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """Validation raises at call time; nothing is sent."""
    with pytest.raises(ValidationError):
        client.stream_chat(HELLO, ChatParams("gpt-5"))
    with pytest.raises(ValidationError):
        await client.submit_image(ImageParams("cat", "realvision", steps=12))
    assert fake.requests == []


# ---------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (402, PaymentRequired),
        (400, InvalidRequest),
        (404, InvalidRequest),
        (422, InvalidRequest),
    ],
)
async def test_http_errors_map_to_distinct_exceptions_without_retry(
    fake: FakeMiniToolAI, client: MiniToolAIClient, status: int, kind: type[MiniToolAIError]
) -> None:
    """Each client-side status raises its own error, keeps the body and is not retried."""
    fake.fail_next(status, {"error": {"message": f"nope {status}"}})
    with pytest.raises(kind) as caught:
        await collect(client)
    assert caught.value.status == status
    assert f"nope {status}" in caught.value.body
    assert len(fake.requests) == 1


async def test_5xx_is_retried_then_reported_as_unavailable(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """A server error is retried up to the attempt limit, then ServiceUnavailable."""
    fake.fail_next(503, "overloaded", times=5)
    with pytest.raises(ServiceUnavailable) as caught:
        await collect(client)
    assert caught.value.status == 503
    assert caught.value.body == "overloaded"
    assert len(fake.requests) == 3


async def test_429_before_first_token_is_retried_once_and_succeeds(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """A rate limit before any token is retried after Retry-After: exactly 2 requests."""
    fake.fail_next(429, {"error": {"message": "slow down"}}, retry_after=0.05)
    events = await collect(client)
    assert isinstance(events[-1], StreamEnd)
    first, second = fake.requests_to(CHAT)
    assert len(fake.requests) == 2
    assert second.at - first.at >= 0.05  # the client waited what the server asked


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        (30.0, "busy", 30.0),
        (None, {"error": {"message": "busy", "retry_after": 12}}, 12.0),
        (None, {"retry_after": 7.5}, 7.5),
        (None, "busy", None),
    ],
)
async def test_429_reports_retry_after_from_header_or_body(
    fake: FakeMiniToolAI,
    session: aiohttp.ClientSession,
    header: float | None,
    body: str | dict[str, object],
    expected: float | None,
) -> None:
    """RateLimited.retry_after comes from the Retry-After header or the JSON body."""
    client = make_client(fake, session, retry=RetryPolicy(attempts=1))
    fake.fail_next(429, body, retry_after=header)
    with pytest.raises(RateLimited) as caught:
        await collect(client)
    assert caught.value.retry_after == expected


async def test_429_asking_for_longer_than_max_delay_is_not_retried(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """A Retry-After beyond what we would wait gives up at once instead of hanging."""
    fake.fail_next(429, "busy", retry_after=60)
    with pytest.raises(RateLimited):
        await collect(client)
    assert len(fake.requests) == 1


# ------------------------------------------------------- broken streams, timeouts


async def test_cut_after_tokens_raises_interrupted_with_partial_and_no_retry(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """Once tokens streamed, a cut connection is never re-sent: the partial text is kept."""
    fake.chat_scripts.append(ChatScript(tokens=["Par", "tial", " never"], cut_after=2))
    seen: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for event in client.stream_chat(HELLO, PARAMS):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
    assert seen == ["Par", "tial"]
    assert caught.value.partial.text == "Partial"
    assert len(fake.requests) == 1


async def test_cut_before_any_token_is_retried(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """A stream that breaks before its first token is safely retried."""
    fake.chat_scripts.append(ChatScript(tokens=["lost"], cut_after=0))
    fake.chat_scripts.append(ChatScript(tokens=["ok"]))
    assert text_of(await collect(client)) == "ok"
    assert len(fake.requests) == 2


async def test_error_chunk_after_tokens_is_an_interruption(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """An error object mid-stream ends the answer as StreamInterrupted with the partial text."""
    error = {"error": {"message": "model overloaded", "type": "server_error"}}
    fake.chat_scripts.append(ChatScript(tokens=["So", " far"], error_chunk=error))
    with pytest.raises(StreamInterrupted) as caught:
        await collect(client)
    assert caught.value.partial.text == "So far"
    assert "model overloaded" in str(caught.value)
    assert len(fake.requests) == 1


async def test_error_chunk_before_tokens_raises_its_own_error(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """An invalid-request error chunk before any text raises InvalidRequest, unretried."""
    error = {"error": {"message": "bad model", "type": "invalid_request_error"}}
    fake.chat_scripts.append(ChatScript(tokens=[], error_chunk=error))
    with pytest.raises(InvalidRequest, match="bad model"):
        await collect(client)
    assert len(fake.requests) == 1


async def test_first_token_timeout_is_service_unavailable(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """No token within first_token seconds: ServiceUnavailable, the request is dropped."""
    never = asyncio.Event()
    fake.chat_scripts.append(ChatScript(tokens=["late"], wait_event=never))
    client = make_client(fake, session, timeouts=ClientTimeouts(first_token=0.2))
    with pytest.raises(ServiceUnavailable, match="no answer in time"):
        await collect(client)
    async with asyncio.timeout(5):
        await fake.wait_cancelled(1)
    assert len(fake.requests) == 1  # a slow server is not hammered with retries


async def test_idle_timeout_after_tokens_keeps_the_partial_text(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """A stream silent for longer than idle after its first token is interrupted."""
    fake.chat_scripts.append(ChatScript(tokens=["first", " second"], delay=30))
    client = make_client(fake, session, timeouts=ClientTimeouts(idle=0.2))
    with pytest.raises(StreamInterrupted) as caught:
        await collect(client)
    assert caught.value.partial.text == "first"
    async with asyncio.timeout(5):
        await fake.wait_cancelled(1)


async def test_a_slow_reader_of_a_steady_stream_is_not_timed_out_as_idle(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """Idle counts only the waits for data: a consumer slower than ``idle`` between events
    (while the server keeps sending) reads the whole answer. The pause models slow work."""
    tokens = [f"t{i} " for i in range(10)]
    fake.chat_scripts.append(ChatScript(tokens=tokens, delay=0.02))
    client = make_client(fake, session, timeouts=ClientTimeouts(idle=0.15))
    texts = []
    async for event in client.stream_chat(HELLO, PARAMS):
        if isinstance(event, TextDelta):
            texts.append(event.text)
            await asyncio.sleep(0.2)  # longer than idle; more tokens arrive meanwhile
    assert "".join(tokens) == "".join(texts)


async def test_a_paced_reader_gets_every_token_in_few_reads(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """``pace`` (a consumer showing text every 0.2 s) is awaited only once text has come; the
    tokens gathered meanwhile come in one read, so there are far fewer paces than tokens."""
    tokens = [f"t{i} " for i in range(40)]
    fake.chat_scripts.append(ChatScript(tokens=tokens, delay=0.01))
    client = make_client(fake, session, timeouts=ClientTimeouts(idle=0.15))
    paces = 0
    texts: list[str] = []

    async def pace() -> None:
        nonlocal paces
        paces += 1
        assert texts, "paced before the first text"
        await asyncio.sleep(0.2)  # the consumer's next show; longer than idle on purpose

    async for event in client.stream_chat(HELLO, PARAMS, pace=pace):
        if isinstance(event, TextDelta):
            texts.append(event.text)
    assert "".join(tokens) == "".join(texts)
    assert 1 <= paces <= len(tokens) // 3


async def test_total_timeout_bounds_a_slow_but_steady_stream(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession
) -> None:
    """Tokens that keep trickling in cannot outlast the total deadline."""
    fake.chat_scripts.append(ChatScript(tokens=["t"] * 10_000, delay=0.01))
    client = make_client(fake, session, timeouts=ClientTimeouts(idle=5, total=0.3))
    with pytest.raises(StreamInterrupted) as caught:
        await collect(client)
    assert caught.value.partial.text.startswith("t")


async def test_aclose_releases_the_connection_at_once(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """Stopping the generator early closes the HTTP response: the fake sees the client leave."""
    fake.chat_scripts.append(ChatScript(tokens=["tok"] * 10_000, delay=0.01))
    stream = client.stream_chat(HELLO, PARAMS)
    assert await anext(stream) == TextDelta("tok")
    await stream.aclose()
    async with asyncio.timeout(5):
        await fake.wait_cancelled(1)
    assert fake.completed_streams == 0


async def test_break_inside_aclosing_releases_the_connection(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """The documented Stop pattern (break inside contextlib.aclosing) drops the stream."""
    fake.chat_scripts.append(ChatScript(tokens=["tok"] * 10_000, delay=0.01))
    async with contextlib.aclosing(client.stream_chat(HELLO, PARAMS)) as stream:
        async for _event in stream:
            break
    async with asyncio.timeout(5):
        await fake.wait_cancelled(1)


async def test_refused_connection_is_service_unavailable(
    session: aiohttp.ClientSession,
) -> None:
    """Nothing listening at base_url: ServiceUnavailable after the retries."""
    async with FakeMiniToolAI() as gone:
        url = gone.base_url
    client = MiniToolAIClient(session, base_url=url, api_key="k", retry=FAST_RETRY)
    with pytest.raises(ServiceUnavailable, match="Could not reach MiniToolAI"):
        await collect(client)
    with pytest.raises(ServiceUnavailable, match="Could not reach MiniToolAI"):
        await client.submit_image(ImageParams("cat", "realvision"))


# --------------------------------------------------------------------- secrets


async def test_the_key_never_appears_in_errors_or_logs(
    fake: FakeMiniToolAI, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused key echoed back by the server is scrubbed from exceptions and log records."""
    secret = "sk-very-secret-key-42"
    client = make_client(fake, session, key=secret)
    caplog.set_level(logging.DEBUG)
    errors: list[MiniToolAIError] = []
    for call in (
        lambda: collect(client),
        lambda: client.submit_image(ImageParams("cat", "realvision")),
    ):
        with pytest.raises(AuthenticationError) as caught:
            await call()
        errors.append(caught.value)
    assert secret in fake.requests[0].headers["Authorization"]  # it was really sent
    assert "Incorrect API key" in errors[0].body  # and the echo really came back
    # A 5xx body quoting the key.
    fake.fail_next(500, f"upstream rejected Bearer {secret}", times=3)
    with pytest.raises(ServiceUnavailable) as caught_5xx:
        await collect(client)
    errors.append(caught_5xx.value)
    # An error chunk after tokens quoting the (accepted) key.
    quoting = {"error": {"message": f"key {fake.api_key} over quota", "type": "server_error"}}
    fake.chat_scripts.append(ChatScript(tokens=["so far"], error_chunk=quoting))
    with pytest.raises(StreamInterrupted) as caught_cut:
        await collect(make_client(fake, session))
    errors.append(caught_cut.value)
    for error in errors:
        chained: BaseException | None = error
        while chained is not None:  # the whole chain an exc_info log line would print
            texts = [str(chained), repr(chained), getattr(chained, "body", "")]
            for text in [*texts, getattr(chained, "user_message", "")]:
                assert secret not in text
                assert fake.api_key not in text
            chained = chained.__cause__ or chained.__context__
    assert caplog.records  # the failures were logged ...
    for record in caplog.records:
        assert secret not in record.getMessage()  # ... without the key
        assert fake.api_key not in record.getMessage()
    assert secret not in repr(client)


# ---------------------------------------------------------------------- images


async def test_image_job_succeeds_after_pending_polls_and_downloads(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """Submit, two pending polls, success, then the PNG bytes from image_url."""
    fake.image_scripts.append(ImageScript(pending_polls=2))
    job = await client.submit_image(ImageParams("a red fox", "RealVision", steps=6))
    assert fake.requests_to(SUBMIT)[0].json == {
        "model": "realvision",
        "prompt": "a red fox",
        "scheduler": "DPM++ SDE",
        "steps": 6,
        "cfgScale": 2,
        "width": 1024,
        "height": 1024,
    }
    statuses = [await client.poll_job(job) for _ in range(3)]
    assert statuses[:2] == [JobPending("processing"), JobPending("processing")]
    done = statuses[2]
    assert isinstance(done, JobDone)
    image = await client.download_image(done.image_url)
    assert (image.data, image.mime) == (PNG_BYTES, "image/png")
    polls = fake.requests_to(JOBS)
    assert polls[0].json == {"jobid": job.jobid, "signature": job.signature}
    download = fake.requests[-1]
    assert "Authorization" not in download.headers  # the key never goes to image_url


async def test_failed_job_reports_failed_status(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """A job the API marks as failed comes back as JobFailedStatus."""
    fake.image_scripts.append(ImageScript(outcome="failed"))
    job = await client.submit_image(ImageParams("x", "amigo"))
    assert await client.poll_job(job) == JobFailedStatus("generation failed")


async def test_refused_submit_raises_job_failed(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """{"status":"error"} on submit raises JobFailed."""
    fake.image_scripts.append(ImageScript(submit_status="error"))
    with pytest.raises(JobFailed):
        await client.submit_image(ImageParams("x", "amigo"))


async def test_submit_is_not_retried_once_it_reached_the_server(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """A 503 on submit may have started a job: it is reported, not re-sent."""
    fake.fail_next(503, "busy", path=SUBMIT)
    with pytest.raises(ServiceUnavailable):
        await client.submit_image(ImageParams("x", "amigo"))
    assert len(fake.requests_to(SUBMIT)) == 1


async def test_poll_retries_transient_errors(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """A 502 while polling is retried (polling is idempotent)."""
    job = await client.submit_image(ImageParams("x", "amigo"))
    fake.fail_next(502, "bad gateway", path=JOBS)
    assert await client.poll_job(job) == JobPending("processing")
    assert len(fake.requests_to(JOBS)) == 2


async def test_poll_with_a_wrong_signature_is_refused(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """The fake checks signatures; a forged one maps to AuthenticationError."""
    job = await client.submit_image(ImageParams("x", "amigo"))
    with pytest.raises(AuthenticationError):
        await client.poll_job(type(job)(job.jobid, "forged"))


async def test_download_that_is_not_an_image_is_bad_image(
    fake: FakeMiniToolAI, client: MiniToolAIClient
) -> None:
    """HTML served as image/png is caught by its magic bytes."""
    fake.image_scripts.append(ImageScript(image="not_image"))
    job = await client.submit_image(ImageParams("x", "amigo"))
    done = await client.poll_job(job)
    assert isinstance(done, JobDone)
    with pytest.raises(BadImage, match="not a JPEG, PNG, WebP or GIF"):
        await client.download_image(done.image_url)


async def test_too_large_download_is_aborted_early(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """A body past max_bytes raises BadImage and the download stops long before the end."""
    fake.image_scripts.append(ImageScript(image="huge"))
    job = await client.submit_image(ImageParams("x", "amigo"))
    done = await client.poll_job(job)
    assert isinstance(done, JobDone)
    with pytest.raises(BadImage, match="larger than 1048576 bytes"):
        await client.download_image(done.image_url, max_bytes=1024 * 1024)
    async with asyncio.timeout(5):
        await fake.wait_cancelled(1)
    assert fake.huge_bytes_sent < fake.huge_bytes


async def test_download_refuses_non_http_urls(client: MiniToolAIClient) -> None:
    """file:, ftp: and data: URLs are never fetched."""
    for url in ("file:///etc/passwd", "ftp://x/y.png", "data:image/png;base64,AA=="):
        with pytest.raises(BadImage, match="non-HTTP"):
            await client.download_image(url)


async def test_missing_image_is_bad_image(fake: FakeMiniToolAI, client: MiniToolAIClient) -> None:
    """A 404 on image_url (expired link) raises BadImage with the status."""
    with pytest.raises(BadImage) as caught:
        await client.download_image(f"{fake.base_url}/files/999.png")
    assert caught.value.status == 404
