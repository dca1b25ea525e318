"""Telegram in Turkish and Norwegian: the member's app language, /language, a group's language,
and the command menu and descriptions registered per language_code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.telegram_harness import Harness, running_bot
from tests.fakes.minitoolai import ImageScript
from tests.fakes.telegram import RecordedRequest

FAST_JOBS: dict[str, Any] = {
    "image_poll_initial_seconds": 0.01,
    "image_poll_max_seconds": 0.02,
    "image_progress_interval_seconds": 0.0,
}
DEFAULT_SCOPE = json.dumps({"type": "default"}, sort_keys=True)


async def _said(h: Harness, chat_id: int, start: int) -> str:
    """The next text the bot sends to ``chat_id`` from request ``start`` on."""
    sent = await h.tg.wait_for(
        lambda r: r.method == "sendMessage" and r.ok and r.params.get("chat_id") == chat_id, 10, start=start
    )
    return str(sent.params["text"])


async def _ask(
    h: Harness, chat: dict[str, Any], user: dict[str, Any], text: str, to: int | None = None
) -> str:
    start = len(h.tg.requests)
    h.tg.user_message(chat, user, text)
    return await _said(h, chat["id"] if to is None else to, start)


def _texts(requests: list[RecordedRequest], chat_id: int) -> list[str]:
    return [
        str(r.params["text"])
        for r in requests
        if r.method in ("sendMessage", "editMessageText") and r.params.get("chat_id") == chat_id
    ]


async def test_a_turkish_client_hears_turkish_everywhere(tmp_path: Path) -> None:
    """/start, /help, /credits, an image's progress and a refusal, all in Turkish for a tr-TR app."""
    async with running_bot(tmp_path, **FAST_JOBS) as h:
        ayse = h.tg.user("Ayşe", language_code="tr")
        chat = h.tg.private_chat(ayse)
        start = await _ask(h, chat, ayse, "/start")
        helped = await _ask(h, chat, ayse, "/help")
        credits = await _ask(h, chat, ayse, "/credits")
        h.ai.image_scripts.append(ImageScript(pending_polls=2))
        before = len(h.tg.requests)
        h.tg.user_message(chat, ayse, "/imagine a red fox")
        await h.tg.wait_for(lambda r: r.method == "sendPhoto", 10, start=before)
        progress = _texts(h.tg.requests[before:], chat["id"])
        refused = await _ask(h, chat, ayse, "/temperature 7")
    assert start.startswith("Merhaba! Ben bir MiniToolAI asistanıyım.")
    assert "/reset: bu sohbeti unut" in start
    assert helped.startswith("Bana yaz, cevaplayayım")
    # Telegram's command names cannot be translated: the Turkish help keeps /credits, not Discord's /kredi
    assert "/credits: bakiyen ve harcamaların" in helped and "/kredi:" not in helped
    assert "Bakiye: $5,00" in credits  # the decimal comma, the dollar kept
    assert "Bugün harcanan: $0,00" in credits
    turkish = ("Başlıyor…", "Sırada", "Oluşturuluyor…", "Görsel indiriliyor…")
    assert progress and all(t.startswith(turkish) for t in progress), progress
    assert any(t.startswith("Oluşturuluyor…") for t in progress)
    assert "Sıcaklık 0 ile 2 arasında olmalı (sen 7.0 yazdın)." == refused


async def test_a_norwegian_client_hears_norwegian_and_a_refusal_too(tmp_path: Path) -> None:
    async with running_bot(tmp_path, grant="0") as h:
        kari = h.tg.user("Kari", language_code="nb")  # Telegram's Norwegian apps send "nb" (or "no")
        ola = h.tg.user("Ola", language_code="no")
        chat, other = h.tg.private_chat(kari), h.tg.private_chat(ola)
        start = await _ask(h, chat, kari, "/start")
        credits = await _ask(h, other, ola, "/credits")
        refused = await _ask(h, chat, kari, "Hei, hva er klokka?")
    assert start.startswith("Hei! Jeg er en MiniToolAI-assistent.")
    assert "Saldo: $0,00" in credits
    assert refused.startswith("Dette kan koste opptil $")
    assert "men saldoen din er $0,00." in refused
    assert not h.chat_requests()


async def test_language_switches_and_survives_a_restart(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice", language_code="en")
        chat = h.tg.private_chat(alice)
        english = await _ask(h, chat, alice, "/help")
        switched = await _ask(h, chat, alice, "/language tr")
        turkish = await _ask(h, chat, alice, "/help")
        alice_id = alice["id"]
    assert english.startswith("Talk to me and I answer")
    assert "Tamam, bundan sonra seninle Türkçe konuşuyorum." == switched
    assert turkish.startswith("Bana yaz, cevaplayayım")
    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice", language_code="en")
        assert alice_id == alice["id"]  # the same person (a fresh fake numbers users alike)
        chat = h.tg.private_chat(alice)
        after = await _ask(h, chat, alice, "/help")
        status = await _ask(h, chat, alice, "/language")
        back = await _ask(h, chat, alice, "/language auto")
        english_again = await _ask(h, chat, alice, "/help")
        unknown = await _ask(h, chat, alice, "/language fr")
    assert after.startswith("Bana yaz, cevaplayayım")
    assert status.startswith("Dilin: Türkçe.")
    assert "Done: I choose your language myself again." == back
    assert english_again.startswith("Talk to me and I answer")
    assert unknown.startswith("I don't speak “fr” yet.")


async def test_a_turkish_group_speaks_turkish_while_a_members_private_replies_follow_their_choice(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as h:
        group = h.tg.supergroup("İstanbul")
        admin = h.tg.user("Mehmet", language_code="tr")
        kari = h.tg.user("Kari", language_code="en")
        h.tg.make_admin(group, admin)
        kari_chat = h.tg.private_chat(kari)
        refused = await _ask(h, group, kari, "/language community tr")
        await _ask(h, kari_chat, kari, "/language nb")
        set_by_admin = await _ask(h, group, admin, "/language community tr")
        public_help = await _ask(h, group, kari, "/help")
        start = len(h.tg.requests)
        h.tg.user_message(group, kari, "/credits")
        private = await _said(h, kari_chat["id"], start)
        notice = await _said(h, group["id"], start)
        own_chat = await _ask(h, kari_chat, kari, "/help")
    assert refused.startswith("Only admins of this server or group can change this community's language.")
    assert "Tamam, bundan sonra burada Türkçe konuşuyorum." == set_by_admin
    assert public_help.startswith("Bana yaz, cevaplayayım")  # the group's language, not Kari's
    assert private.startswith("Saldo: $5,00")  # Kari's own choice, in her private chat
    assert "Ayrıntıları sana özel mesajla gönderdim." == notice  # the group's language
    assert own_chat.startswith("Skriv til meg, så svarer jeg")


async def test_the_command_menu_and_descriptions_are_registered_per_language(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as h:
        await h.tg.wait_for(
            lambda r: r.method == "setMyShortDescription" and r.params.get("language_code") == "nn", 10
        )
        menus = {
            code: h.tg.commands.get((DEFAULT_SCOPE, code)) for code in ("", "en", "tr", "nb", "no", "nn")
        }
        descriptions = dict(h.tg.descriptions)
        shorts = dict(h.tg.short_descriptions)

    def described(code: str) -> dict[str, str]:
        menu = menus[code]
        assert menu is not None, code
        return {c["command"]: c["description"] for c in menu}

    assert "Your balance and spending" == described("")["credits"] == described("en")["credits"]
    assert "Bakiyen ve harcamaların" == described("tr")["credits"]
    assert all("Saldoen og forbruket ditt" == described(code)["credits"] for code in ("nb", "no", "nn"))
    assert described("tr").keys() == described("").keys()  # the same commands, described in Turkish
    assert "language" in described("tr")
    assert descriptions["tr"].startswith("Ben bir MiniToolAI asistanıyım")
    assert descriptions["no"].startswith("Jeg er en MiniToolAI-assistent")
    assert descriptions[""].startswith("I'm a MiniToolAI assistant")
    assert "MiniToolAI-chat og bilder, på engelsk, tyrkisk og norsk." == shorts["nb"]
