"""The one ``bot.ports.Store`` implementation, parametrised by a backend's :class:`Database`."""

from __future__ import annotations

from bot.ports import ConversationKey
from storage.access import AccessMixin
from storage.conversations import ConversationsMixin
from storage.database import Database
from storage.leases import LeasesMixin
from storage.ledger import LedgerMixin
from storage.payments import PaymentsMixin
from storage.records import RecordsMixin


class SqlStore(ConversationsMixin, LedgerMixin, RecordsMixin, AccessMixin, PaymentsMixin, LeasesMixin):
    """Conversations, settings, credits, image jobs, access rules, Stars payments and process leases over
    one database; close it once.

    ``process_id`` names the process this store works for: the owner stamped on every
    reservation and image job it creates (see ``storage.leases``).
    """

    def __init__(self, db: Database, process_id: str) -> None:
        self._db = db
        self.process_id = process_id
        self._conversation_ids: dict[ConversationKey, int] = {}

    @property
    def database(self) -> Database:
        return self._db

    async def close(self) -> None:
        await self._db.close()
