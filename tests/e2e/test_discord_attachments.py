"""Pictures and documents attached on Discord (several per message), end to end against the fakes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account
from storage import open_store
from tests.e2e.discord_harness import DiscordWorld, has_button
from tests.fakes.discord_models import MEMBER_PERMISSIONS, FakeAttachment, SentMessage, attachment_payload
from tests.fakes.documents import make_jpeg, make_pdf, make_png, picture_size
from tests.fakes.minitoolai import ChatScript


def pictures_sent(body: dict[str, Any]) -> list[bytes]:
    content = body["messages"][-1]["content"]
    return [
        base64.b64decode(part["image_url"]["url"].partition(",")[2])
        for part in (content if isinstance(content, list) else ())
        if part.get("type") == "image_url"
    ]


def answer_to(world: DiscordWorld, asked: SentMessage) -> SentMessage | None:
    """The bot's finished answer (with its Regenerate button) to the message ``asked``."""
    for message in world.dc.bot_messages(world.general):
        reference = message.message_reference or {}
        if str(reference.get("message_id")) == str(asked.id) and has_button(message, "regen"):
            return message
    return None


def text_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


async def test_a_message_with_pictures_and_documents_is_one_message_to_the_model(tmp_path: Path) -> None:
    """Two pictures, a CSV and a PDF on one mention: both pictures as data URLs, both documents as text."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.ai.chat_scripts.append(ChatScript(tokens=["Got them all."]))
        files = [
            FakeAttachment("a.png", make_png(30, 20), "image/png"),
            FakeAttachment("b.jpg", make_jpeg(2000, 1000), "image/jpeg"),
            FakeAttachment("data.csv", b"name,score\nalice,3\n", "text/csv"),
            FakeAttachment("spec.pdf", make_pdf("Section 1: be nice"), "application/pdf"),
        ]
        async with world.bot():
            await dc.message_create(
                world.general, world.alice, f"<@{dc.bot_user.id}> compare", attachments=files
            )
            answer = await world.finished_answer(world.general)
        body = world.chat_requests()[0]
    assert "Got them all." == answer.content
    assert [(30, 20), (1536, 768)] == [picture_size(p) for p in pictures_sent(body)]
    text = text_of(body)
    assert '<document name="data.csv">\nname,score\nalice,3\n\n</document>' in text
    assert '<document name="spec.pdf">\nSection 1: be nice\n</document>' in text


async def test_a_file_that_is_neither_picture_nor_text_gets_one_sentence(tmp_path: Path) -> None:
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            await dc.message_create(
                world.general,
                world.alice,
                f"<@{dc.bot_user.id}> what is this",
                attachments=[
                    FakeAttachment("app.exe", b"MZ\x90\x00\x03\x00binary", "application/octet-stream")
                ],
            )
            reply = await world.find(
                lambda: next(
                    (m for m in dc.bot_messages(world.general) if "I can't read app.exe" in m.content), None
                )
            )
    assert "I read pictures, text files" in reply.content
    assert [] == world.chat_requests()


async def test_chat_command_with_a_document_option(tmp_path: Path) -> None:
    """/chat with its file option: the document's text goes with the prompt."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        scratch = dc.text_channel(world.guild, "uploads")
        world.ai.chat_scripts.append(ChatScript(tokens=["It prints hi."]))
        async with world.bot():
            upload = await dc.message_create(
                scratch, world.alice, "", attachments=[FakeAttachment("main.go", b'fmt.Println("hi")\n', "")]
            )
            stored = upload.attachments[0]
            options = [
                {"name": "prompt", "type": 3, "value": "What does it print?"},
                {"name": "file", "type": 11, "value": str(stored.id)},
            ]
            resolved = {"attachments": {str(stored.id): attachment_payload(stored, scratch.id, dc.base_url)}}
            interaction = await dc.slash_command(
                world.guild, world.general, world.alice, "chat", options, resolved=resolved
            )
            await world.original_with(interaction, "regen")
        body = world.chat_requests()[0]
    assert text_of(body).endswith(
        'What does it print?\n\n<document name="main.go">\nfmt.Println("hi")\n\n</document>'
    )


async def test_a_12_mb_picture_goes_up_much_smaller(tmp_path: Path) -> None:
    photo = make_jpeg(5200, 3900, quality=97)
    assert len(photo) > 12 * 1024 * 1024
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot():
            await dc.message_create(
                world.general,
                world.alice,
                f"<@{dc.bot_user.id}> what is it",
                attachments=[FakeAttachment("huge.jpg", photo, "image/jpeg")],
            )
            await world.finished_answer(world.general)
        [sent] = pictures_sent(world.chat_requests()[0])
    assert (1024, 768) == picture_size(sent)
    assert len(sent) < len(photo) / 10


async def test_the_hold_covers_the_reported_usage_for_pictures_in_each_detail(tmp_path: Path) -> None:
    """gpt-4o-mini (which bills a picture at many times gpt-4o's tokens): for pictures of several sizes
    in each detail, the prompt reserved covers the prompt the fake reports, and the charge is exact."""
    sizes = [(50, 40), (1024, 1024), (3000, 900)]
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(default_chat_model="gpt-4o-mini", context_max_pictures=0):
            for detail in ("low", "high", "auto"):
                interaction = await dc.slash_command(
                    world.guild,
                    world.general,
                    world.alice,
                    "detail",
                    [{"name": "level", "type": 3, "value": detail}],
                    permissions=MEMBER_PERMISSIONS | (1 << 5),  # Manage Server: may change settings
                )
                await world.find(
                    lambda i=interaction: (o := world.original(i)) is not None and "now sent" in o.content
                )
                for width, height in sizes:
                    asked = await dc.message_create(
                        world.general,
                        world.alice,
                        f"<@{dc.bot_user.id}> {width}x{height}",
                        attachments=[FakeAttachment("p.jpg", make_jpeg(width, height), "image/jpeg")],
                    )
                    await world.find(lambda a=asked: answer_to(world, a))
        store = await open_store(world.settings().database_url)
        try:
            reservations = await store.settled_reservations(
                Account("discord", str(world.alice.id)), limit=100
            )
        finally:
            await store.close()
    assert 9 == len(reservations)
    for reservation in reservations:
        assert reservation.meta["prompt_tokens_estimate"] >= reservation.meta["prompt_tokens"]
        assert reservation.charged == PriceTable().chat_cost(
            "gpt-4o-mini", Usage(reservation.meta["prompt_tokens"], reservation.meta["completion_tokens"])
        )
    assert min(r.meta["prompt_tokens"] for r in reservations) > 2833  # the picture was counted
