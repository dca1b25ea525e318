"""/imagine in Telegram end to end: progress, the photo with its caption and buttons, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.telegram_harness import running_bot
from tests.fakes.minitoolai import ImageScript

FAST_JOBS: dict[str, Any] = {
    "image_poll_initial_seconds": 0.01,
    "image_poll_max_seconds": 0.02,
    "image_progress_interval_seconds": 0.0,
}


def _buttons(markup: object) -> list[str]:
    assert isinstance(markup, dict)
    return [button["callback_data"] for row in markup["inline_keyboard"] for button in row]


async def test_imagine_posts_a_photo_with_a_short_caption_and_buttons(tmp_path: Path) -> None:
    """/imagine with options: one job upstream with them, then a photo captioned within 1024 characters."""
    prompt = "a red fox " + "in the snow " * 120
    async with running_bot(tmp_path, **FAST_JOBS) as h:
        h.ai.image_scripts.append(ImageScript(pending_polls=1))
        group = h.tg.supergroup("Artists")
        alice = h.tg.user("Alice")
        h.tg.user_message(
            group,
            alice,
            f'/imagine {prompt} --model dreamshaper --size 1152x768 --steps 6 --negative "blurry"',
        )
        photo = await h.tg.wait_for(lambda r: r.method == "sendPhoto", 10)
        # The progress message goes once the photo is up.
        await h.tg.wait_for(lambda r: r.method == "deleteMessage" and r.ok, 10)

        submitted = h.ai.requests_to("/api/texttoimage/")[0].json
        posted = h.tg.messages(group["id"])[-1]
    assert photo.ok
    assert "dreamshaper" == submitted["model"]
    assert (1152, 768, 6, "blurry") == (
        submitted["width"],
        submitted["height"],
        submitted["steps"],
        submitted["negativePrompt"],
    )
    caption = photo.params["caption"]
    assert len(caption) <= 1024
    assert caption.startswith("a red fox in the snow")
    assert posted.photo is not None
    data = _buttons(photo.params["reply_markup"])
    assert 2 == len(data)
    assert all(len(d.encode()) <= 64 for d in data)


async def test_imagine_image_buttons_delete_and_regenerate(tmp_path: Path) -> None:
    """Delete removes the posted picture; Regenerate makes a new one with the same options."""
    async with running_bot(tmp_path, **FAST_JOBS) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/imagine a lighthouse --steps 4")
        first = await h.tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok, 10)
        regenerate, delete = _buttons(first.params["reply_markup"])

        h.tg.callback_query(alice, first.result, regenerate)
        second = await h.tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok and r is not first, 10)
        h.tg.callback_query(alice, first.result, delete)
        photo_id = first.result["message_id"]
        await h.tg.wait_for(lambda r: r.method == "deleteMessage" and r.params["message_id"] == photo_id, 10)

        jobs = [r.json for r in h.ai.requests_to("/api/texttoimage/")]
        remaining = [m.message_id for m in h.tg.messages(chat["id"]) if m.photo]
    assert 2 == len(jobs)
    assert jobs[0]["prompt"] == jobs[1]["prompt"] and 4 == jobs[1]["steps"]
    assert [second.result["message_id"]] == remaining


async def test_imagine_with_bad_arguments_gets_a_short_reply_and_no_job(tmp_path: Path) -> None:
    """An unknown option is named in a one-line reply; nothing is submitted."""
    async with running_bot(tmp_path, **FAST_JOBS) as h:
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/imagine a cat --colour blue")
        reply = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)

    assert "--colour" in reply.params["text"]
    assert [] == h.ai.requests_to("/api/texttoimage/")


async def test_a_picture_telegram_refuses_as_a_photo_is_sent_as_a_document(tmp_path: Path) -> None:
    """sendPhoto refused (dimensions): the same picture goes out with sendDocument, caption and buttons."""
    async with running_bot(tmp_path, **FAST_JOBS) as h:
        h.tg.fail_next("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "/imagine a very wide banner")
        document = await h.tg.wait_for(lambda r: r.method == "sendDocument", 10)
        await h.tg.wait_for(lambda r: r.method == "deleteMessage" and r.ok, 10)

    assert document.ok
    assert document.files["document"].data.startswith(b"\x89PNG")
    assert document.params["caption"].startswith("a very wide banner")
    assert 2 == len(_buttons(document.params["reply_markup"]))
