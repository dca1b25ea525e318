"""The bundle of core services every adapter receives from the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat.conversations import ConversationService
from bot.commands import Commands
from bot.credits import CreditService
from bot.images.service import ImageService
from bot.payments.service import StarsService
from bot.preferences import Preferences


@dataclass(frozen=True, slots=True)
class Core:
    chat: ConversationService
    credits: CreditService
    prefs: Preferences
    commands: Commands
    images: ImageService
    payments: StarsService
