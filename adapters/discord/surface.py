"""Where a streamed answer shows on Discord: an interaction's response, or a channel message.

:class:`InteractionSurface` streams into the deferred response (``@original``) and continues
in follow-ups past 2000 characters. An interaction token lives 15 minutes: once the window
is over (by our clock, or because Discord refuses the token) every further message is a
plain channel message, and a message that can no longer be edited is continued as one.
:class:`ChannelSurface` answers a mention, reply or DM with a reply and edits; it is a
:class:`bot.display.streaming.GatedSurface`, so under the bot-wide limit the text is picked when its
request can go, and the first words of a new answer go before everything else.

Every message goes out with mentions disabled, so model output can never ping anyone. A
Stop button sits on the first message while the answer streams; Regenerate replaces it, in the
final edit itself when the answer is one message (``FoldingSurface``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import discord

from adapters.discord.pacing import GlobalGate, Ticket, making
from adapters.discord.replies import NO_PINGS, platform_error
from adapters.discord.views import regenerate_view, stop_view
from bot.display.streaming import Outcome, Urgency, show_unfolded

logger = logging.getLogger(__name__)

T = TypeVar("T")
_EXPIRED_CODES = {50027, 10015}  # invalid webhook token, unknown webhook
TYPING_AFTER = 1.0  # seconds without text before a channel answer shows "typing…"


async def _call(request: Awaitable[T]) -> T:
    """One REST call; Discord's 429 becomes the core's ``PlatformRateLimited``."""
    try:
        return await request
    except (discord.RateLimited, discord.HTTPException) as exc:
        mapped = platform_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _expired(exc: discord.HTTPException) -> bool:
    return exc.status == 401 or exc.code in _EXPIRED_CODES


class Deferral:
    """An interaction's "thinking…" answer (its 3-second deadline) on its way while the answer is
    prepared: the upstream request need not wait for Discord's reply to the defer."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self._task = asyncio.ensure_future(interaction.response.defer(thinking=True))

    async def done(self) -> bool:
        """Wait for Discord's reply; False if it refused the defer (logged; e.g. the interaction's
        3 seconds were over): the answer then goes to the channel as plain messages."""
        try:
            await asyncio.shield(self._task)
        except discord.HTTPException as exc:
            logger.warning(
                "could not defer an interaction (%s %s): answering in the channel", exc.status, exc.code
            )
            return False
        except Exception as exc:  # the connection to Discord failed
            logger.warning(
                "could not defer an interaction (%s): answering in the channel", type(exc).__name__
            )
            return False
        return True


@dataclass(frozen=True, slots=True)
class _Target:
    kind: Literal["original", "followup", "channel"]
    message_id: int = 0


class ChannelSurface:
    """Answers in a channel, thread or DM: the first message replies to the asker's message.

    Every request waits for its turn at the bot-wide gate with its urgency: the answer's first
    message, then final texts (and the buttons' swap), then intermediate edits. "typing…" only
    goes after ``typing_after`` seconds without text, and only when the gate is idle.
    """

    def __init__(
        self,
        channel: discord.abc.Messageable,
        channel_id: int,
        asker_id: int,
        *,
        reply_to: discord.Message | None,
        gate: GlobalGate,
        typing_after: float = TYPING_AFTER,
    ) -> None:
        self._channel = channel
        self._channel_id = channel_id
        self._asker_id = asker_id
        self._reply_to = reply_to
        self._gate = gate  # every channel write counts toward Discord's bot-wide limit
        self._turn: Ticket | None = None
        self._typing_after = typing_after
        self.shown = False

    async def turn(self, urgency: Urgency) -> None:
        """Wait for a turn under the bot-wide limit; the next send or edit uses it."""
        self._turn = await self._gate.wait(urgency)

    async def _go(self, urgency: Urgency) -> Ticket:
        ticket, self._turn = self._turn, None
        return ticket if ticket is not None else await self._gate.wait(urgency)

    async def typing(self) -> None:
        # The first words usually come sooner: a "typing…" then would only spend the budget.
        if self._typing_after > 0:
            await asyncio.sleep(self._typing_after)
            self._typing_after = 0
        if self.shown:
            return
        ticket = self._gate.try_now()
        if ticket is None:
            return  # the gate is busy with text: skip it (the presenter tries again later)
        with making(ticket):
            await self._channel.typing()

    async def send(self, text: str, *, final: bool) -> str:
        if not self.shown:
            return await self._post(text, stop_view(self._channel_id, self._asker_id))
        with making(await self._go(Urgency.FINAL if final else Urgency.EDIT)):
            message = await _call(self._channel.send(text, allowed_mentions=NO_PINGS))
        return str(message.id)

    async def _post(self, text: str, view: discord.ui.View) -> str:
        """The answer's first message: a reply to the question, with the buttons."""
        reference = self._reply_to.to_reference(fail_if_not_exists=False) if self._reply_to else None
        with making(await self._go(Urgency.FIRST)):
            message = await _call(
                self._channel.send(
                    text,
                    allowed_mentions=NO_PINGS,
                    reference=reference,  # type: ignore[arg-type]
                    view=view,
                )
            )
        self.shown = True
        return str(message.id)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        partial = self._channel.get_partial_message(int(handle))  # type: ignore[attr-defined]
        with making(await self._go(Urgency.FINAL if final else Urgency.EDIT)):
            await _call(partial.edit(content=text, allowed_mentions=NO_PINGS))

    async def show_last(
        self, handle: str | None, text: str, earlier: Sequence[str], outcome: Outcome
    ) -> tuple[str, bool]:
        if earlier:  # the buttons sit on the first message: a request of their own
            return await show_unfolded(self, handle, text)
        view = regenerate_view(self._channel_id, self._asker_id)
        if handle is None:
            return await self._post(text, view), True
        partial = self._channel.get_partial_message(int(handle))  # type: ignore[attr-defined]
        with making(await self._go(Urgency.FINAL)):
            await _call(partial.edit(content=text, allowed_mentions=NO_PINGS, view=view))
        return handle, True

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        if handles:
            partial = self._channel.get_partial_message(int(handles[0]))  # type: ignore[attr-defined]
            with making(await self._go(Urgency.FINAL)):
                await _call(partial.edit(view=regenerate_view(self._channel_id, self._asker_id)))


class InteractionSurface:
    """Streams into a deferred interaction response, then follow-ups, then the channel."""

    def __init__(
        self,
        interaction: discord.Interaction,
        asker_id: int,
        *,
        window: float,
        deferral: Deferral | None = None,
    ) -> None:
        self._interaction = interaction
        self._channel_id = interaction.channel_id or 0
        self._asker_id = asker_id
        self._deadline = time.monotonic() + window
        self._expired = False
        self._targets: dict[str, _Target] = {}
        self._deferral = deferral  # every request waits for the defer's reply first

    async def ready(self) -> None:
        """The interaction is deferred (or its defer failed): its response may be written."""
        if self._deferral is not None:
            if not await self._deferral.done():
                self._expired = True  # no response to write into: the channel it is
            self._deferral = None

    @property
    def shown(self) -> bool:
        return bool(self._targets)

    def _live(self) -> bool:
        if not self._expired and time.monotonic() >= self._deadline:
            logger.info(
                "interaction window over in channel %s: continuing as channel messages", self._channel_id
            )
            self._expired = True
        return not self._expired

    def _channel(self) -> discord.abc.Messageable:
        channel = self._interaction.channel
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            return self._interaction.client.get_partial_messageable(self._channel_id)
        return channel

    async def send(self, text: str, *, final: bool) -> str:
        await self.ready()
        handle = str(len(self._targets))
        first = not self._targets
        if self._live():
            try:
                self._targets[handle] = await self._send_webhook(text, first=first)
            except discord.HTTPException as exc:
                if not _expired(exc):
                    raise
                self._expired = True
                logger.info(
                    "interaction token refused in channel %s: continuing in the channel", self._channel_id
                )
        if handle not in self._targets:
            self._targets[handle] = await self._send_channel(text, first=first)
        return handle

    async def _send_webhook(self, text: str, *, first: bool) -> _Target:
        interaction = self._interaction
        if first:
            await _call(
                interaction.edit_original_response(
                    content=text, view=stop_view(self._channel_id, self._asker_id), allowed_mentions=NO_PINGS
                )
            )
            return _Target("original")
        message = await _call(interaction.followup.send(text, wait=True, allowed_mentions=NO_PINGS))
        return _Target("followup", message.id)

    async def _send_channel(self, text: str, *, first: bool) -> _Target:
        view = stop_view(self._channel_id, self._asker_id) if first else None
        message = await _call(self._channel().send(text, allowed_mentions=NO_PINGS, view=view))  # type: ignore[arg-type]
        return _Target("channel", message.id)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        await self.ready()
        target = self._targets[handle]
        if target.kind != "channel" and self._live():
            try:
                await self._edit_webhook(target, text)
            except discord.HTTPException as exc:
                if not _expired(exc):
                    raise
                self._expired = True
            else:
                return
        if target.kind != "channel":
            # That message can no longer be edited: the answer goes on in a channel message.
            self._targets[handle] = await self._send_channel(text, first=handle == "0")
            return
        partial = self._channel().get_partial_message(target.message_id)  # type: ignore[attr-defined]
        await _call(partial.edit(content=text, allowed_mentions=NO_PINGS))

    async def _edit_webhook(self, target: _Target, text: str) -> None:
        if target.kind == "original":
            await _call(self._interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS))
        else:
            await _call(
                self._interaction.followup.edit_message(
                    target.message_id, content=text, allowed_mentions=NO_PINGS
                )
            )

    async def show_last(
        self, handle: str | None, text: str, earlier: Sequence[str], outcome: Outcome
    ) -> tuple[str, bool]:
        await self.ready()
        first = handle or "0"
        if earlier or not self._live() or self._targets.get(first, _Target("original")).kind != "original":
            return await show_unfolded(self, handle, text)  # the buttons need a request of their own
        view = regenerate_view(self._channel_id, self._asker_id)
        try:
            await _call(
                self._interaction.edit_original_response(content=text, view=view, allowed_mentions=NO_PINGS)
            )
        except discord.HTTPException as exc:
            if not _expired(exc):
                raise
            self._expired = True
            return await show_unfolded(self, handle, text)  # continues as a channel message
        self._targets[first] = _Target("original")
        return first, True

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        await self.ready()
        if not handles:
            return
        target = self._targets[handles[0]]
        view = regenerate_view(self._channel_id, self._asker_id)
        if target.kind == "original" and self._live():
            try:
                await _call(self._interaction.edit_original_response(view=view))
            except discord.HTTPException as exc:
                if not _expired(exc):
                    raise
                logger.info("interaction token expired before the Regenerate button could be added")
            return
        if target.kind == "channel":
            partial = self._channel().get_partial_message(target.message_id)  # type: ignore[attr-defined]
            await _call(partial.edit(view=view))

    async def discard(self) -> None:
        """Remove the "thinking…" placeholder of an answer that never started."""
        await self.ready()
        if not self._targets and self._live():
            try:
                await self._interaction.delete_original_response()
            except discord.HTTPException:
                logger.debug("could not delete the placeholder", exc_info=True)
