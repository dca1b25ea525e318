"""Telegram chat end to end: the real composition root and python-telegram-bot against the fakes.

Private chats stream through drafts (or edits when drafts are refused), groups answer only
when addressed, forum topics keep their own conversations, and answers are valid HTML.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.telegram_harness import SCALE, TOKEN, running_bot
from tests.fakes.minitoolai import ChatScript
from tests.fakes.telegram import FakeTelegram, RecordedRequest


def _final_sends(requests: list[RecordedRequest], chat_id: int) -> list[RecordedRequest]:
    return [r for r in requests if r.method == "sendMessage" and r.ok and r.params["chat_id"] == chat_id]


async def test_private_answer_streams_as_drafts_then_one_final_message(tmp_path: Path) -> None:
    """In a private chat the answer grows in drafts, then arrives once as a real message with Regenerate."""
    tokens = [f"word{i} " for i in range(30)]
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.005))
        alice = h.tg.user("Alice", "alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "Tell me a story")

        await h.answered(chat["id"])

        drafts = h.tg.calls("sendMessageDraft")
        sends = _final_sends(h.tg.requests, chat["id"])
        edits = h.tg.calls("editMessageText")
    assert drafts and all(d.ok for d in drafts)
    assert drafts[0].params["text"].endswith("▌")
    assert 1 == len(sends)
    assert "".join(tokens).strip() == sends[0].result["text"]
    assert [] == edits
    assert ["".join(tokens).strip()] == h.bot_texts(chat["id"])
    # The Regenerate button came with the final message: no request of its own.
    assert "regen" in str(sends[0].params.get("reply_markup"))
    assert [] == h.tg.calls("editMessageReplyMarkup")


async def test_private_answer_falls_back_to_edits_when_drafts_are_refused(tmp_path: Path) -> None:
    """A Bot API server without sendMessageDraft: the answer is sent once and edited instead."""
    tokens = [f"part{i} " for i in range(30)]

    def fake() -> FakeTelegram:
        return FakeTelegram(token=TOKEN, time_scale=SCALE, drafts_supported=False)

    async with running_bot(tmp_path, fake=fake) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.005))
        h.ai.chat_scripts.append(ChatScript(tokens=["Second."]))
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "Tell me a story")
        await h.answered(chat["id"])
        mark = len(h.tg.requests)
        h.tg.user_message(chat, alice, "And another")
        await h.answered(chat["id"], start=mark)

        drafts = h.tg.calls("sendMessageDraft")
        edits = [r for r in h.tg.calls("editMessageText") if r.ok]
    assert 1 == len(drafts), "drafts are tried once, then the bot remembers they are refused"
    assert edits
    assert ["".join(tokens).strip(), "Second."] == h.bot_texts(chat["id"])
    assert "regen" in str(edits[-1].params.get("reply_markup")), "the button comes with the final text"
    assert [] == h.tg.calls("editMessageReplyMarkup")
    assert 0 == len(h.tg.violations)


async def test_group_answers_only_a_mention_a_reply_to_the_bot_or_ask(tmp_path: Path) -> None:
    """Group chatter is ignored; a mention, a reply to the bot and /ask each get one answer."""
    async with running_bot(tmp_path) as h:
        for text in ("First answer.", "Second answer.", "Third answer."):
            h.ai.chat_scripts.append(ChatScript(tokens=[text]))
        group = h.tg.supergroup("Friends")
        alice, bob = h.tg.user("Alice", "alice"), h.tg.user("Bob", "bob")
        gid = group["id"]

        h.tg.user_message(group, alice, "hello everyone")
        first = h.tg.user_message(group, bob, "@minitoolai_bot what is 2+2?")
        await h.answered(gid)
        bot_message = h.tg.messages(gid)[-1]
        assert bot_message.from_bot and bot_message.reply_to == first["message_id"]
        h.tg.user_message(group, alice, "just chatting", reply_to=first)
        mark = len(h.tg.requests)
        h.tg.user_message(group, alice, "and why?", reply_to=bot_message.message_id)
        await h.answered(gid, start=mark)
        mark = len(h.tg.requests)
        h.tg.user_message(group, bob, "/ask what about 3+3?")
        await h.answered(gid, start=mark)
        h.tg.user_message(group, bob, "/ask")
        hint = await h.tg.wait_for(lambda r: r.method == "sendMessage" and "/ask What" in r.params["text"])

        prompts = [body["messages"][-1]["content"] for body in h.chat_requests()]
    assert hint.ok
    assert 3 == len(prompts)
    assert "what is 2+2?" in prompts[0] and "@minitoolai_bot" not in prompts[0]
    assert "[Bob]" in prompts[0], "in groups the model is told who is speaking"
    assert "and why?" in prompts[1]
    assert "what about 3+3?" in prompts[2]
    assert ["First answer.", "Second answer.", "Third answer."] == [
        t for t in h.bot_texts(gid) if t.endswith("answer.")
    ]


async def test_forum_topic_keeps_its_own_conversation_and_answers_there(tmp_path: Path) -> None:
    """Each forum topic is a conversation of its own, and its answers land in that topic."""
    async with running_bot(tmp_path) as h:
        forum = h.tg.forum("Team")
        fid = forum["id"]
        cooking, travel = h.tg.create_topic(forum, "Cooking"), h.tg.create_topic(forum, "Travel")
        alice = h.tg.user("Alice", "alice")
        h.ai.chat_scripts.extend(ChatScript(tokens=[t]) for t in ("Pasta!", "Lisbon!", "Boil water."))

        for topic, text in ((cooking, "@minitoolai_bot a dinner idea?"), (travel, "@minitoolai_bot a city?")):
            mark = len(h.tg.requests)
            h.tg.user_message(forum, alice, text, thread_id=topic)
            await h.answered(fid, start=mark)
        mark = len(h.tg.requests)
        h.tg.user_message(forum, alice, "@minitoolai_bot and how do I start?", thread_id=cooking)
        await h.answered(fid, start=mark)

        third = h.chat_requests()[2]["messages"]
    contents = " ".join(str(m["content"]) for m in third)
    assert "Pasta!" in contents and "dinner" in contents
    assert "Lisbon!" not in contents and "city" not in contents
    assert ["Pasta!", "Boil water."] == h.bot_texts(fid, cooking)
    assert ["Lisbon!"] == h.bot_texts(fid, travel)


async def test_markdown_is_valid_html_in_every_partial_edit(tmp_path: Path) -> None:
    """Bold, inline code and a code block split across tokens: every send and edit parses as HTML."""
    answer = (
        "Here is **bold** and `x < y` & more.\n\n"
        "```python\nfor i in range(3):\n    print(i < 2 and 'a&b')\n```\n"
        "Done with *style*."
    )
    tokens = [answer[i : i + 3] for i in range(0, len(answer), 3)]
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.003))
        group = h.tg.supergroup("Devs")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(group, alice, "@minitoolai_bot show me code")
        await h.answered(group["id"])

        texts = [r for r in h.tg.requests if r.method in ("sendMessage", "editMessageText")]
        final = h.tg.messages(group["id"])[-1]
    assert len(texts) >= 3
    assert all(r.ok for r in texts), [r.description for r in texts if not r.ok]
    assert all(r.params.get("parse_mode") == "HTML" for r in texts)
    kinds = {e["type"]: e for e in final.entities}
    assert {"bold", "code", "pre", "italic"} <= set(kinds)
    assert "python" == kinds["pre"].get("language")
    assert "print(i < 2 and 'a&b')" in (final.text or "")


async def test_markup_telegram_refuses_falls_back_to_plain_text(tmp_path: Path) -> None:
    """If Telegram still refuses the HTML, the answer goes out as plain text instead of failing."""
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=["Some **bold** words."]))
        h.tg.fail_next("sendMessage", 400, "Bad Request: can't parse entities: unsupported start tag")
        group = h.tg.supergroup("Plain")
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(group, alice, "@minitoolai_bot hi")
        await h.answered(group["id"])

        sends = h.tg.calls("sendMessage")
    assert not sends[0].ok
    assert sends[1].ok and sends[1].params.get("parse_mode") is None
    assert ["Some **bold** words."] == h.bot_texts(group["id"])


async def test_answer_over_4096_characters_continues_in_new_messages(tmp_path: Path) -> None:
    """A 10,000-character answer arrives in three or more messages, each within Telegram's limit."""
    paragraph = "This sentence is part of a very long answer. " * 20 + "\n\n"
    answer = (paragraph * 12).strip()
    tokens = [answer[i : i + 200] for i in range(0, len(answer), 200)]
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.002))
        alice = h.tg.user("Alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "Write a lot")
        await h.answered(chat["id"], within=10)

        texts = h.bot_texts(chat["id"])
        too_long = [r for r in h.tg.requests if r.description and "too long" in r.description]
    assert len(answer) > 2 * 4096
    assert len(texts) >= 3
    assert all(len(t) <= 4096 for t in texts)
    assert answer.split() == " ".join(texts).split()
    assert [] == too_long
