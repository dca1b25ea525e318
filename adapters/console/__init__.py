"""A terminal chat on the same core as the platforms: for trying the bot with only an API key."""

from adapters.console.adapter import ConsoleAdapter

__all__ = ["ConsoleAdapter"]
