"""The bundle of core services every adapter receives from the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.access.service import AccessService
from bot.chat.conversations import ConversationService
from bot.commands import Commands
from bot.credits import CreditService
from bot.images.service import ImageService
from bot.ops.health import Health
from bot.payments.service import StarsService
from bot.preferences import Preferences


@dataclass(frozen=True, slots=True)
class Core:
    chat: ConversationService
    credits: CreditService
    prefs: Preferences
    commands: Commands
    images: ImageService
    access: AccessService
    payments: StarsService
    health: Health = field(default_factory=Health)  # adapters report their connection here
