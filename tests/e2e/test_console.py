"""The real ``python -m bot`` process, driven through its standard input, against the fake MiniToolAI."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

from tests.fakes.documents import make_jpeg, make_pdf, picture_size
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI, ImageScript

TIMEOUT = 60


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    prefixes = ("MINITOOLAI_", "TELEGRAM_", "DISCORD_", "LC_ALL", "LC_MESSAGES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        LANG="C.UTF-8",  # the terminal speaks the shell's language: English unless a test says otherwise
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    env.update(extra)
    return env


async def start_bot(tmp_path: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """``python -m bot`` as its own process, with pipes for its standard streams."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,  # no .env there: only what the test sets
    )


async def run_bot(tmp_path: Path, env: dict[str, str], stdin: str, *args: str) -> tuple[int, str, str]:
    process = await start_bot(tmp_path, env, *args)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_without_an_api_key_the_bot_says_what_to_put_in_env(tmp_path: Path) -> None:
    """No MINITOOLAI_API_KEY: exit code 2 and the exact .env line to add, no traceback."""
    code, out, err = await run_bot(tmp_path, bot_env(tmp_path), "")

    assert 2 == code
    assert "MINITOOLAI_API_KEY=" in err
    assert ".env" in err
    assert "Traceback" not in err + out


async def test_a_malformed_setting_is_named_without_its_value(tmp_path: Path) -> None:
    """A bad setting stops the bot with one message naming the variable; secrets are never echoed."""
    env = bot_env(tmp_path, MINITOOLAI_API_KEY="sk-very-secret-value", MINITOOLAI_BASE_URL="ftp://nowhere")
    env["TELEGRAM_TOKEN"] = "123:also-secret"
    env["MAX_COMPLETION_TOKENS"] = "lots"

    code, out, err = await run_bot(tmp_path, env, "")

    assert 2 == code
    assert "MINITOOLAI_BASE_URL" in err
    assert "MAX_COMPLETION_TOKENS" in err
    assert "secret" not in err + out
    assert "Traceback" not in err


async def test_console_chat_streams_the_answer_and_remembers_it(tmp_path: Path) -> None:
    """Two messages and /credits through stdin: answers printed, the second request carries the first exchange."""
    async with FakeMiniToolAI() as fake:
        fake.chat_scripts.append(ChatScript(tokens=["Hello", ", ", "world", "!"]))
        fake.chat_scripts.append(ChatScript(tokens=["Second", " answer."]))
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY=fake.api_key,
            MINITOOLAI_BASE_URL=fake.base_url,
            STARTING_GRANT_USD="1",
        )

        code, out, err = await run_bot(tmp_path, env, "Hi there\nAnd again\n/credits\n")

        chats = fake.requests_to("/api/chat-completions/")
    assert 0 == code, err
    assert "Hello, world!" in out
    assert "Second answer." in out
    assert "balance" in out.lower()
    assert 2 == len(chats)
    second = chats[1].json["messages"]
    assert ["developer", "user", "assistant", "user"] == [m["role"] for m in second]
    assert "Hello, world!" == second[2]["content"]
    assert fake.api_key not in out + err


async def test_console_reset_forgets_and_survives_restart(tmp_path: Path) -> None:
    """The conversation is stored: a restarted bot remembers it until /reset."""
    async with FakeMiniToolAI() as fake:
        env = bot_env(tmp_path, MINITOOLAI_API_KEY=fake.api_key, MINITOOLAI_BASE_URL=fake.base_url)
        fake.chat_scripts.append(ChatScript(tokens=["First."]))
        await run_bot(tmp_path, env, "Remember me\n")
        fake.chat_scripts.append(ChatScript(tokens=["Still here."]))
        fake.chat_scripts.append(ChatScript(tokens=["Fresh."]))

        code, out, err = await run_bot(tmp_path, env, "After restart\n/reset\nAfter reset\n")

        chats = fake.requests_to("/api/chat-completions/")
    assert 0 == code, err
    assert ["developer", "user", "assistant", "user"] == [m["role"] for m in chats[1].json["messages"]]
    assert ["developer", "user"] == [m["role"] for m in chats[2].json["messages"]]
    assert "forgot" in out


async def test_console_imagine_saves_the_picture_and_charges_once(tmp_path: Path) -> None:
    """/imagine with options: the picture is saved under generated-images/, its path printed, one image charged."""
    async with FakeMiniToolAI() as fake:
        fake.image_scripts.append(ImageScript(pending_polls=2))
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY=fake.api_key,
            MINITOOLAI_BASE_URL=fake.base_url,
            IMAGE_POLL_INITIAL_SECONDS="0.01",
            IMAGE_POLL_MAX_SECONDS="0.02",
            STARTING_GRANT_USD="1",
        )

        code, out, err = await run_bot(
            tmp_path,
            env,
            '/imagine a red fox --model juggernaut --size landscape --steps 6 --negative "blurry"\n/usage\n/credits\n',
        )

        submits = fake.requests_to("/api/texttoimage/")
    assert 0 == code, err
    saved = list((tmp_path / "generated-images").iterdir())
    assert 1 == len(saved)
    assert saved[0].read_bytes().startswith(b"\x89PNG")
    assert str(saved[0].name) in out
    assert 1 == len(submits)
    body = submits[0].json
    assert ("juggernaut", 1152, 896, 6, "blurry") == (
        body["model"],
        body["width"],
        body["height"],
        body["steps"],
        body["negativePrompt"],
    )
    charges = out.split("Your latest charges:")[1]
    assert 1 == charges.count("image juggernaut")
    assert "Balance: $0.9985" in out  # $1 less exactly one $0.0015 image


async def test_an_unreachable_api_is_explained_once_and_nothing_is_charged(tmp_path: Path) -> None:
    """MiniToolAI down: one polite sentence in the chat, no traceback, and the balance untouched."""
    async with FakeMiniToolAI() as fake:
        # Every try before the first token fails (the client retries twice).
        fake.fail_next(503, "overloaded", times=3, path="/api/chat-completions/")
        env = bot_env(tmp_path, MINITOOLAI_API_KEY=fake.api_key, MINITOOLAI_BASE_URL=fake.base_url)

        code, out, err = await run_bot(tmp_path, env, "Hello?\n/credits\n")

    assert 0 == code, err
    assert 1 == out.count("The AI service is unavailable right now")
    assert "Balance: $0.2500" in out
    assert "Traceback" not in out + err


async def test_the_terminal_chat_keeps_info_logs_out_of_the_conversation(tmp_path: Path) -> None:
    """LOG_LEVEL unset: the terminal chat logs warnings only; set to INFO, it logs as asked."""
    env = bot_env(tmp_path, MINITOOLAI_API_KEY="sk-test-key-123")
    del env["LOG_LEVEL"]
    _, _, quiet = await run_bot(tmp_path, env, "/prices\n")

    env["LOG_LEVEL"] = "INFO"
    _, _, chatty = await run_bot(tmp_path, env, "/prices\n")

    assert " INFO " not in quiet
    assert " INFO " in chatty


async def test_the_person_at_the_terminal_is_its_owner(tmp_path: Path) -> None:
    """/grant, /take and /setbalance typed into the terminal chat work: whoever runs the bot owns it there."""
    env = bot_env(tmp_path, MINITOOLAI_API_KEY="sk-test-key-123", STARTING_GRANT_USD="1")

    code, out, err = await run_bot(
        tmp_path, env, "/grant owner 2\n/take owner 0.5\n/credits\n/setbalance friend 3\n"
    )

    assert 0 == code, err
    assert "Only" not in out
    assert "Balance: $2.50" in out
    assert "User friend" in out and "$3.00" in out


async def test_console_attach_sends_a_picture_and_a_document_and_refuses_a_binary(tmp_path: Path) -> None:
    """/attach FILE: a photo goes up as a data URL (prepared), a document as text under its name;
    a missing file and a binary file are one clear line each and the bot keeps going."""
    (tmp_path / "photo.jpg").write_bytes(make_jpeg(3000, 2000, exif=True))
    (tmp_path / "notes.pdf").write_bytes(make_pdf("Quarterly numbers: 42"))
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    async with FakeMiniToolAI() as fake:
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY=fake.api_key,
            MINITOOLAI_BASE_URL=fake.base_url,
            STARTING_GRANT_USD="1",
        )
        stdin = (
            "/attach photo.jpg What is this?\n"
            "/attach notes.pdf\n"
            "Summarise it\n"
            "/attach missing.txt\n"
            "/attach blob.bin what is it\n"
            "/detail low\n"
            "/detail\n"
        )
        code, out, err = await run_bot(tmp_path, env, stdin)
        chats = fake.requests_to("/api/chat-completions/")
    assert 0 == code, err
    assert 2 == len(chats)
    first = chats[0].json["messages"][-1]["content"]
    assert "What is this?" == first[0]["text"]
    url = first[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.partition(",")[2])
    assert (1152, 768) == picture_size(sent)
    assert b"SecretCam" not in sent
    assert "Attached notes.pdf" in out
    second = chats[1].json["messages"][-1]["content"]
    assert isinstance(second, str)
    assert 'Summarise it\n\n<document name="notes.pdf">\nQuarterly numbers: 42\n</document>' == second
    assert "! I can't read missing.txt: No such file or directory." in out
    assert "I can't read blob.bin: I read pictures, text files" in out
    assert "Picture detail here: low." in out
    assert "Traceback" not in out + err


async def test_the_terminal_speaks_the_shells_language_and_switches(tmp_path: Path) -> None:
    """LANG=tr_TR.UTF-8: greeting and /help in Turkish; /language nb switches, and it is kept."""
    async with FakeMiniToolAI() as fake:
        env = bot_env(tmp_path, MINITOOLAI_API_KEY=fake.api_key, MINITOOLAI_BASE_URL=fake.base_url)
        env["LANG"] = "tr_TR.UTF-8"
        code, out, err = await run_bot(tmp_path, env, "/help\n/language nb\n/credits\n")
        again, later, _err = await run_bot(tmp_path, env, "/help\n")
    assert 0 == code, err
    assert "Terminalinde MiniToolAI Bot." in out
    assert "Bana yaz, cevaplayayım" in out
    assert "Greit – fra nå av snakker jeg Norsk bokmål med deg." in out
    assert "Saldo: $" in out
    assert 0 == again
    assert "MiniToolAI Bot i terminalen din." in later
    assert "Skriv til meg, så svarer jeg" in later
