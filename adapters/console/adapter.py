"""The console adapter: lines from standard input become chat messages and commands.

The answer streams in place (each edit prints only what is new); ``/imagine`` saves the
picture to a file and prints its path. Standard input closing (Ctrl-D) ends the bot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bot.chat.attachments import MAX_UPLOAD_BYTES, Upload
from bot.chat.conversations import MAX_FILES_PER_MESSAGE, ChatRequest, View
from bot.commands import help_text
from bot.core import Core
from bot.display.streaming import Outcome, PacingPolicy
from bot.errors import BotError, UserError
from bot.i18n import _
from bot.i18n.catalog import set_voice
from bot.images.options import parse_imagine_args
from bot.minitoolai.types import DownloadedImage
from bot.ports import Account, Actor, ImageJob, Place

logger = logging.getLogger(__name__)

PLATFORM = "console"
PLACE = Place(PLATFORM, "dm:owner", "terminal")
OWNER = Account(PLATFORM, "owner")
# A terminal takes any number of writes; the pace only keeps output smooth.
POLICY = PacingPolicy(
    min_interval=0.05, max_length=1_000_000, burst=1, typing_indicator="", close_markup=False
)


class ConsoleSurface:
    """Prints an answer as it grows: every edit writes only the characters not yet shown."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown: dict[str, str] = {}

    async def send(self, text: str, *, final: bool) -> str:
        handle = str(len(self._shown))
        self._shown[handle] = ""
        self._write(handle, text)
        return handle

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        self._write(handle, text)

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        self._out.write("\n\n")
        self._out.flush()

    def _write(self, handle: str, text: str) -> None:
        shown = self._shown[handle]
        if text.startswith(shown):
            self._out.write(text[len(shown) :])
        else:  # a rewrite (a note was added, say): show the new text on its own
            self._out.write("\n" + text)
        self._shown[handle] = text
        self._out.flush()


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class ConsoleImages:
    """Image progress as printed lines; finished pictures saved under ``folder``."""

    caption_limit = 4000

    def __init__(self, out: TextIO, folder: Path) -> None:
        self._out = out
        self._folder = folder

    async def show_progress(self, text: str) -> str:
        self._say(text)
        return "progress"

    async def edit_progress(self, handle: str, text: str) -> None:
        self._say(text)

    async def post_image(
        self, image: DownloadedImage, caption: str, job_id: str, *, reply_to: str | None
    ) -> str:
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{job_id}.{_EXTENSIONS.get(image.mime, 'img')}"
        path.write_bytes(image.data)
        self._say(_("Saved {path}", path=str(path)) + f"\n{caption}")
        return str(path)

    async def delete(self, handle: str) -> None:
        """Progress lines stay in the terminal's scrollback; saved pictures are the owner's to keep."""

    def for_job(self, job: ImageJob) -> ConsoleImages:
        return self

    def _say(self, text: str) -> None:
        self._out.write(f"[image] {text}\n")
        self._out.flush()


class ConsoleAdapter:
    name = "console"

    def __init__(
        self,
        core: Core,
        *,
        stdin: asyncio.StreamReader | None = None,
        out: TextIO = sys.stdout,
        image_folder: Path = Path("generated-images"),
    ) -> None:
        self._core = core
        self._stdin = stdin
        self._out = out
        self._actor = Actor(OWNER, is_platform_admin=True)
        self._images = ConsoleImages(out, image_folder)
        self._attached: list[Upload] = []  # files from /attach, sent with the next message

    async def run(self, stop: asyncio.Event) -> None:
        self._core.images.register_platform(PLATFORM, self._images)
        await self._core.images.resume(PLATFORM)
        reader = self._stdin or await _stdin_reader()
        await self._speak()
        self._print(
            _("MiniToolAI Bot in your terminal. Type a message, /help for commands, Ctrl-D to quit.") + "\n"
        )
        while not stop.is_set():
            self._out.write("you> ")
            self._out.flush()
            line_task = asyncio.ensure_future(reader.readline())
            stop_task = asyncio.ensure_future(stop.wait())
            done, _pending = await asyncio.wait({line_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if line_task not in done:
                line_task.cancel()
                break
            raw = line_task.result()
            if not raw:  # end of input
                stop.set()
                break
            line = raw.decode("utf-8", "replace").strip()
            if line:
                await self._speak()  # a /language of the line before applies
                await self._handle(line)

    async def _speak(self) -> None:
        """The terminal's language: /language, else the shell's locale (LANG), else DEFAULT_LANGUAGE."""
        hint = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG")
        set_voice(await self._core.commands.languages.voice(OWNER, PLACE, hint))

    async def _handle(self, line: str) -> None:
        try:
            if line.startswith("/"):
                await self._command(line)
            else:
                await self._chat(line)
        except UserError as exc:
            self._print(f"! {exc.user_message}\n")
        except BotError as exc:
            logger.warning("console request failed: %s", exc)
            self._print(f"! {exc.user_message}\n")

    async def _chat(self, text: str) -> None:
        files, self._attached = tuple(self._attached), []
        self._out.write("bot> ")
        request = ChatRequest(user=OWNER, place=PLACE, text=text, files=files)
        await self._core.chat.answer(request, View(ConsoleSurface(self._out), POLICY))

    async def _attach(self, rest: str) -> None:
        """``/attach FILE [question]``: a picture or document from disk, asked about now or with the
        next message."""
        try:
            words = shlex.split(rest)
        except ValueError:
            words = rest.split(" ", 1)
        if not words:
            raise UserError(_("Use /attach FILE, or /attach FILE your question (quote a path with spaces)."))
        if len(self._attached) >= MAX_FILES_PER_MESSAGE:
            raise UserError(_("At most {n} files go with one message.", n=MAX_FILES_PER_MESSAGE))
        upload = await asyncio.to_thread(_read_file, words[0])
        self._attached.append(upload)
        question = " ".join(words[1:])
        if question:
            await self._chat(question)
        else:
            self._print(
                _(
                    "Attached {name} ({size} KB): it goes with your next message.",
                    name=upload.name,
                    size=max(1, len(upload.data) // 1024),
                )
                + "\n"
            )

    async def _command(self, line: str) -> None:
        name, _sep, rest = line[1:].partition(" ")
        name, rest = name.lower(), rest.strip()
        commands, actor = self._core.commands, self._actor
        if name in ("quit", "exit"):
            raise SystemExit(0)
        if name == "imagine":
            options = parse_imagine_args(rest)
            await self._core.images.submit(OWNER, PLACE, options, self._images, is_admin=True)
            # One person at a terminal: wait for the picture before the next prompt.
            await self._core.images.wait_idle()
            return
        if name == "attach":
            await self._attach(rest)
            return
        if name in ("regenerate", "again"):
            self._out.write("bot> ")
            await self._core.chat.regenerate(PLACE, OWNER, View(ConsoleSurface(self._out), POLICY))
            return
        simple = {
            "reset": lambda: commands.reset(actor, PLACE),
            "model": lambda: commands.model(actor, PLACE, rest),
            "system": lambda: commands.system(actor, PLACE, rest),
            "temperature": lambda: commands.temperature(actor, PLACE, rest),
            "context": lambda: commands.context(actor, PLACE, rest),
            "detail": lambda: commands.detail(actor, PLACE, rest),
            "credits": lambda: commands.credits(actor, PLACE),
            "usage": lambda: commands.usage(actor, PLACE),
            "prices": lambda: commands.prices(),
            "language": lambda: commands.language(actor, PLACE, rest),
        }
        if name in simple:
            reply = await simple[name]()
            self._print(reply.text + "\n")
        elif name in ("grant", "take", "setbalance"):
            await self._admin(name, rest)
        elif name == "help" or name == "start":
            self._print(
                help_text()
                + _("In the terminal: /attach FILE [question] sends a picture or document from disk.")
                + "\n"
            )
        else:
            self._print("! " + _("I don't know /{command}. Type /help for the list.", command=name) + "\n")

    async def _admin(self, name: str, rest: str) -> None:
        parts = shlex.split(rest)
        if len(parts) != 2:
            raise UserError(_("Use /{command} <user id> <amount>.", command=name))
        target = Account(PLATFORM, parts[0])
        commands, actor = self._core.commands, self._actor
        action = {"grant": commands.grant, "take": commands.take, "setbalance": commands.set_balance}[name]
        reply = await action(actor, target, parts[1])
        self._print(reply.text + "\n")

    def _print(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _read_file(typed: str) -> Upload:
    path = Path(typed).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise UserError(
                _(
                    "{name} is too large ({size} MB; at most {limit} MB).",
                    name=path.name,
                    size=size // 1024 // 1024,
                    limit=MAX_UPLOAD_BYTES // 1024 // 1024,
                )
            )
        return Upload(path.name, path.read_bytes())
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise UserError(
            _("I can't read {path}: {reason}.", path=str(path), reason=exc.strerror or _("no such file"))
        ) from None


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader
