"""Short replies to interactions, and the one place where errors become sentences for people.

Every handler runs inside :func:`guarded`: a ``UserError`` is shown as it is, any other
``BotError`` by its ``user_message`` (logged as a warning), anything else is logged once with
its traceback and answered with a generic apology. Replies to interactions are ephemeral
when the core says the answer is private, and always when it is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import discord

from bot.display.text import split_message
from bot.errors import BotError, PlatformRateLimited, UserError

logger = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
MAX_MESSAGE = 2000


def user_text(exc: BaseException) -> str:
    """What the person sees for ``exc``."""
    if isinstance(exc, BotError):
        return exc.user_message
    return BotError().user_message


def log_error(exc: BaseException, where: str) -> None:
    """The one error log of the adapter: expected errors briefly, the rest with a traceback."""
    if isinstance(exc, UserError):
        logger.debug("%s: %s", where, exc)
    elif isinstance(exc, BotError):
        logger.warning("%s: %s", where, exc)
    else:
        logger.error("%s failed", where, exc_info=exc)


async def reply(interaction: discord.Interaction, text: str, *, ephemeral: bool) -> None:
    """Answer an interaction (first response or follow-ups), split at 2000 characters."""
    pieces = split_message(text, MAX_MESSAGE) or ["…"]
    for piece in pieces:
        if not interaction.response.is_done():
            await interaction.response.send_message(piece, ephemeral=ephemeral, allowed_mentions=NO_PINGS)
        else:
            await interaction.followup.send(piece, ephemeral=ephemeral, allowed_mentions=NO_PINGS)


async def reply_error(interaction: discord.Interaction, exc: BaseException, where: str) -> None:
    log_error(exc, where)
    try:
        await reply(interaction, user_text(exc), ephemeral=True)
    except discord.HTTPException:
        logger.warning("%s: could not tell the person about the error", where, exc_info=True)


async def guarded(interaction: discord.Interaction, work: Awaitable[None], where: str) -> None:
    """Run a handler; whatever it raises ends as a clear ephemeral reply, never a crash."""
    try:
        await work
    except Exception as exc:
        await reply_error(interaction, exc, where)


def platform_error(exc: Exception) -> Exception:
    """Discord's 429 as the core's ``PlatformRateLimited``; other errors unchanged."""
    if isinstance(exc, discord.RateLimited):
        return PlatformRateLimited(exc.retry_after)
    if isinstance(exc, discord.HTTPException) and exc.status == 429:
        retry_after = getattr(exc.response, "headers", {}).get("Retry-After", "1")
        try:
            return PlatformRateLimited(float(retry_after))
        except ValueError:
            return PlatformRateLimited(1.0)
    return exc
