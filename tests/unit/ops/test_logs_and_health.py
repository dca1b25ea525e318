"""JSON log lines with scrubbed secrets and request ids; the request context; readiness."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging
from bot.ops import context
from bot.ops.health import Health, LinkState
from tests.fakes.memory_store import MemoryStore

SECRET = "sk-live-0123456789abcdef"
TG_URL = "https://api.telegram.org/file/bot123456:AAbbCCddEE_ff/photos/1.jpg"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_scrub_secrets_in_messages_and_tracebacks(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each record is one JSON object; a key, a Telegram file URL and a traceback holding the key
    come out as ***; the request id set for the task is on the line."""
    configure_logging("INFO", [SECRET], "json")
    log = logging.getLogger("bot.test")

    def emit() -> None:
        context.begin("telegram", request_id="req-1")
        log.info("calling with %s and %s", SECRET, TG_URL)
        try:
            raise RuntimeError(f"refused key {SECRET}")
        except RuntimeError:
            log.exception("it failed")

    contextvars.copy_context().run(emit)
    log.warning("outside a request")

    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert 3 == len(entries)
    assert SECRET not in "\n".join(lines) and "AAbbCCddEE" not in "\n".join(lines)
    assert "calling with *** and https://api.telegram.org/file/bot***/photos/1.jpg" == entries[0]["message"]
    assert ["req-1", "req-1", "-"] == [e["request_id"] for e in entries]
    assert "RuntimeError: refused key ***" in entries[1]["exc"]
    assert "INFO" == entries[0]["level"] and "bot.test" == entries[0]["logger"]


def test_an_answer_joins_the_request_its_event_began_once() -> None:
    """The adapter begins a request, the first answer claims it; a second answer in the same
    task (the terminal chat) gets a new id."""

    def run() -> tuple[str, str, str]:
        event = context.begin("telegram")
        first = context.begin("telegram", claim=True)
        second = context.begin("telegram", claim=True)
        return event.id, first.id, second.id

    event, first, second = contextvars.copy_context().run(run)
    assert event == first
    assert second != first


async def test_readiness_names_each_platform_not_connected_and_a_failing_database() -> None:
    """Ready only when the database answers and every registered platform is connected."""
    health = Health()
    store = MemoryStore()
    health.database_check = lambda: store.get_meta("ping")
    telegram, discord = health.platform("telegram"), health.platform("discord")

    assert ["telegram: connecting", "discord: connecting"] == await health.readiness()
    telegram.connected()
    discord.connected()
    assert [] == await health.readiness()
    discord.disconnected("the gateway connection closed")
    assert ["discord: disconnected: the gateway connection closed"] == await health.readiness()

    async def broken() -> None:
        raise OSError("connection refused")

    health.database_check = broken
    discord.connected()
    assert ["database: OSError"] == await health.readiness()


async def test_links_are_saved_for_the_status_command() -> None:
    """record_links writes each link's state as it changes; LinkState reads it back."""
    health = Health()
    store = MemoryStore()
    stop = asyncio.Event()
    link = health.platform("telegram")
    link.connected()
    recorder = asyncio.create_task(health.record_links(store, stop))
    link.disconnected("Telegram answered HTTP 502")
    stop.set()
    await recorder
    await health.save(store)

    text = await store.get_meta("ops.platform.telegram")
    assert text is not None
    state = LinkState.from_json(text)
    assert "disconnected" == state.status
    assert "Telegram answered HTTP 502" == state.reason
    assert state.last_connected is not None
