"""The one ``bot.ports.Store`` implementation, parametrised by a backend's :class:`Database`."""

from __future__ import annotations

from bot.ports import ConversationKey
from storage.access import AccessMixin
from storage.conversations import ConversationsMixin
from storage.database import Database
from storage.ledger import LedgerMixin
from storage.payments import PaymentsMixin
from storage.records import RecordsMixin


class SqlStore(ConversationsMixin, LedgerMixin, RecordsMixin, AccessMixin, PaymentsMixin):
    """Conversations, settings, credits, image jobs, access rules and Stars payments over one database; close it once."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conversation_ids: dict[ConversationKey, int] = {}

    @property
    def database(self) -> Database:
        return self._db

    async def close(self) -> None:
        await self._db.close()
