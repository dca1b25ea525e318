"""The Telegram adapter: python-telegram-bot in the bot's event loop, answering chats and groups.

``adapter`` runs the Application (long polling or a webhook); ``handlers`` turns updates into
core calls; ``surface`` shows streaming answers (drafts in private chats, paced edits in groups);
``render`` turns the model's markdown into Telegram HTML; ``images`` posts /imagine results;
``pacing`` keeps every chat within Telegram's flood limits.
"""

from adapters.telegram.adapter import TelegramAdapter, TelegramConfig

__all__ = ["TelegramAdapter", "TelegramConfig"]
