"""Pictures, albums and documents sent on Telegram, end to end against the fakes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account
from storage import open_store
from tests.e2e.telegram_harness import Harness, running_bot
from tests.fakes.documents import make_jpeg, make_pdf, make_png, picture_size
from tests.fakes.minitoolai import ChatScript, picture_usage


def pictures_sent(body: dict[str, Any]) -> list[tuple[bytes, str]]:
    """(bytes, detail) of every picture in a chat request."""
    found = []
    for message in body["messages"]:
        content = message["content"]
        for part in content if isinstance(content, list) else ():
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                assert url.startswith("data:image/")
                found.append((base64.b64decode(url.partition(",")[2]), part["image_url"]["detail"]))
    return found


def last_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


async def settled(h: Harness, user: dict[str, Any]) -> list[Any]:
    store = await open_store(h.settings.database_url)
    try:
        return await store.settled_reservations(Account("telegram", str(user["id"])), limit=100)
    finally:
        await store.close()


async def test_an_album_is_one_message_to_the_model(tmp_path: Path) -> None:
    """Three photos sent together in a group (the caption, mentioning the bot, on the first) reach
    MiniToolAI as one user message with three pictures, answered once."""
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Album")
        alice = h.tg.user("Alice", "alice")
        photos = [make_png(40 + n, 30, alpha=False) for n in range(3)]
        h.tg.user_album(group, alice, photos, caption="@minitoolai_bot which one is widest?")
        await h.answered(group["id"])
        bodies = h.chat_requests()
    assert 1 == len(bodies)
    assert [(40, 30), (41, 30), (42, 30)] == [picture_size(data) for data, _ in pictures_sent(bodies[0])]
    assert last_text(bodies[0]).endswith("which one is widest?")


async def test_an_album_nobody_addressed_to_the_bot_is_ignored_in_a_group(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("Album")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_album(group, alice, [make_png(8, 8), make_png(9, 9)], caption="holiday")
        h.tg.user_message(group, alice, "@minitoolai_bot hello")
        await h.answered(group["id"])
        bodies = h.chat_requests()
    assert 1 == len(bodies)
    assert [] == pictures_sent(bodies[0])


async def test_documents_become_text_with_their_names(tmp_path: Path) -> None:
    """A source file and a PDF reach the model as text under their file names; a binary file and a
    too-large document get one clear sentence each, and nothing goes upstream for them."""
    async with running_bot(tmp_path, max_document_kb=1) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, document=b"print('hi')\n", document_name="hello.py", caption="Explain")
        await h.answered(chat["id"])
        h.tg.user_message(
            chat, alice, document=make_pdf("Invoice total: 12 EUR"), document_name="invoice.pdf"
        )
        await h.answered(chat["id"], start=len(h.tg.requests))
        h.tg.user_message(chat, alice, document=b"\x00\x01binary", document_name="data.bin")
        h.tg.user_message(chat, alice, document=b"line\n" * 400, document_name="big.log")
        await h.tg.wait_for(
            lambda r: r.method == "sendMessage" and "big.log is too large" in r.params["text"]
        )
        await h.tg.wait_for(
            lambda r: r.method == "sendMessage" and "I can't read data.bin" in r.params["text"]
        )
        bodies = h.chat_requests()
    assert 2 == len(bodies)
    assert "Explain\n\n<document name=\"hello.py\">\nprint('hi')\n\n</document>" == last_text(bodies[0])
    assert (
        'Please read this document.\n\n<document name="invoice.pdf">\nInvoice total: 12 EUR\n</document>'
        == (last_text(bodies[1]))
    )


async def test_a_12_mb_picture_goes_up_much_smaller(tmp_path: Path) -> None:
    """A 12 MB photo sent as a file is scaled to what the model uses and re-encoded: a fraction of the
    bytes go upstream, and the reported usage is what the prepared picture costs."""
    photo = make_jpeg(5200, 3900, quality=97)
    assert len(photo) > 12 * 1024 * 1024
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, document=photo, document_name="huge.jpg", caption="What is it?")
        await h.answered(chat["id"], within=30)
        [(sent, detail)] = pictures_sent(h.chat_requests()[0])
    assert (1024, 768) == picture_size(sent)
    assert len(sent) < len(photo) / 10
    assert "auto" == detail


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini"])
async def test_the_hold_covers_the_reported_usage_for_pictures_of_every_size_and_detail(
    tmp_path: Path, model: str
) -> None:
    """For pictures small, wide, tall and huge, in each detail, the fake reports usage the way the API
    counts pictures; each answer is charged exactly that, and no hold was ever too small."""
    sizes = [(64, 64), (700, 300), (1024, 1024), (600, 2400), (4000, 3000)]
    async with running_bot(tmp_path, default_chat_model=model, context_max_pictures=0) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        expected = []
        for detail in ("auto", "low", "high"):
            h.tg.user_message(chat, alice, f"/detail {detail}")
            await h.tg.wait_for(
                lambda r: r.method == "sendMessage" and "now sent with detail" in r.params["text"]
            )
            for width, height in sizes:
                h.ai.chat_scripts.append(ChatScript(tokens=["Seen."]))
                start = len(h.tg.requests)
                h.tg.user_message(chat, alice, photo=make_jpeg(width, height), caption=f"{width}x{height}?")
                await h.answered(chat["id"], start=start, within=30)
        for body in h.chat_requests():
            [(data, detail)] = pictures_sent(body)
            url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
            expected.append((detail, picture_usage(model, url, detail)))
        usages = h.chat_requests()
    reservations = list(reversed(await settled(h, alice)))
    assert 15 == len(reservations) == len(usages)
    prices = PriceTable()
    for reservation in reservations:
        assert "over_hold" not in reservation.meta
        # The prompt side alone is covered (not only thanks to the unused completion reserve).
        assert reservation.meta["prompt_tokens_estimate"] >= reservation.meta["prompt_tokens"]
        assert reservation.charged <= reservation.amount
        usage = Usage(reservation.meta["prompt_tokens"], reservation.meta["completion_tokens"])
        assert prices.chat_cost(model, usage) == reservation.charged
        assert reservation.meta["exact"] is True
    # Pictures are really counted: the low-detail ones cost the base, the others more.
    assert {"auto", "low", "high"} == {detail for detail, _ in expected}
    assert all(tokens == (85 if model == "gpt-4o" else 2833) for d, tokens in expected if d == "low")
    assert all(tokens > (85 if model == "gpt-4o" else 2833) for d, tokens in expected if d != "low")


async def test_a_long_conversation_with_a_picture_every_turn_resends_at_most_two(tmp_path: Path) -> None:
    """20 turns, each with a new picture: every request carries at most CONTEXT_MAX_PICTURES (2)
    pictures, the older ones as a short placeholder, so the bytes per request stop growing."""
    async with running_bot(tmp_path, max_context_tokens=100_000) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        for turn in range(20):
            start = len(h.tg.requests)
            h.tg.user_message(chat, alice, photo=make_jpeg(900, 700, seed=turn), caption=f"turn {turn}")
            await h.answered(chat["id"], start=start, within=30)
        bodies = h.chat_requests()
    counts = [len(pictures_sent(body)) for body in bodies]
    assert [1] + [2] * 19 == counts
    last = bodies[-1]
    assert 18 == json.dumps(last).count("[an earlier picture, no longer shown]")
    sizes = [len(json.dumps(body)) for body in bodies]
    assert max(sizes[2:]) - min(sizes[2:]) < 0.2 * min(sizes[2:])
