"""Conversation turns (``bot.ports.ConversationStore``), written once for both backends.

A conversation row is created on first use and never deleted (``reset`` and ``prune`` delete
turns only), so its id can be cached for the life of the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.ports import ConversationKey, StoredImage, Turn
from storage.common import dump_json, to_utc, turn_from_row, utcnow
from storage.database import Database, Tx

_CACHE_LIMIT = 50_000

_TURN_COLUMNS = "id, role, text, tokens, author_id, message_ids, image_count, status, created_at"

_CONVERSATION_ID = (
    "(SELECT id FROM conversations WHERE platform = ? AND scope = ? AND channel = ? AND owner = ?)"
)

# The newest ``max_turns`` ids and token counts come from the (conversation_id, id DESC, tokens)
# index alone; a running sum finds the oldest turn that still fits (token counts are never
# negative, so what fits is always a run of the newest turns), and only those rows are read.
_CONTEXT_SQL = f"""
WITH conversation AS {_CONVERSATION_ID},
recent AS (
    SELECT id, tokens FROM turns WHERE conversation_id = (SELECT id FROM conversation)
    ORDER BY id DESC LIMIT ?
),
running AS (
    SELECT id, SUM(tokens) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS total FROM recent
)
SELECT {_TURN_COLUMNS} FROM turns
WHERE conversation_id = (SELECT id FROM conversation)
  AND id >= (SELECT MIN(id) FROM running WHERE total <= ?)
ORDER BY id
"""


def _key_args(key: ConversationKey) -> tuple[str, str, str, str]:
    return key.platform, key.scope, key.channel, key.owner


class ConversationsMixin:
    _db: Database
    _conversation_ids: dict[ConversationKey, int]

    async def append_turns(self, key: ConversationKey, turns: Sequence[Turn]) -> list[int]:
        if not turns:
            return []
        async with self._db.write() as tx:
            conversation_id = await self._conversation_id(tx, key)
            ids = [await _insert_turn(tx, conversation_id, turn) for turn in turns]
        self._remember(key, conversation_id)
        return ids

    async def load_context(
        self, key: ConversationKey, budget_tokens: int, *, max_turns: int = 500
    ) -> list[Turn]:
        async with self._db.read() as tx:
            rows = await tx.fetch(_CONTEXT_SQL, *_key_args(key), max(max_turns, 0), budget_tokens)
            images = await _load_images(tx, [row["id"] for row in rows if row["image_count"]])
        return [turn_from_row(row, images.get(row["id"], ())) for row in rows]

    async def replace_last_assistant(self, key: ConversationKey, turn: Turn) -> int:
        async with self._db.write() as tx:
            conversation_id = await self._conversation_id(tx, key)
            last = await tx.fetchval(
                "SELECT id FROM turns WHERE conversation_id = ? AND role = 'assistant' "
                "ORDER BY id DESC LIMIT 1",
                conversation_id,
            )
            if last is None:
                turn_id = await _insert_turn(tx, conversation_id, turn)
            else:
                turn_id = last
                await _overwrite_turn(tx, turn_id, turn)
        self._remember(key, conversation_id)
        return int(turn_id)

    async def reset(self, key: ConversationKey) -> int:
        async with self._db.write() as tx:
            return await tx.execute(
                f"DELETE FROM turns WHERE conversation_id = {_CONVERSATION_ID}", *_key_args(key)
            )

    async def prune(self, *, older_than: datetime | None = None, keep_last: int | None = None) -> int:
        deleted = 0
        async with self._db.write() as tx:
            if older_than is not None:
                deleted += await tx.execute("DELETE FROM turns WHERE created_at < ?", to_utc(older_than))
            if keep_last is not None:
                deleted += await tx.execute(
                    "DELETE FROM turns WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
                    "(PARTITION BY conversation_id ORDER BY id DESC) AS newest FROM turns) AS ranked "
                    "WHERE newest > ?)",
                    max(keep_last, 0),
                )
        return deleted

    async def _conversation_id(self, tx: Tx, key: ConversationKey) -> int:
        cached = self._conversation_ids.get(key)
        if cached is not None:
            return cached
        args = _key_args(key)
        found = await tx.fetchval(f"SELECT {_CONVERSATION_ID}", *args)
        if found is None:
            # DO UPDATE (a no-op) rather than DO NOTHING so RETURNING also yields a row another
            # process inserted a moment ago.
            found = await tx.fetchval(
                "INSERT INTO conversations (platform, scope, channel, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (platform, scope, channel, owner) DO UPDATE SET owner = excluded.owner "
                "RETURNING id",
                *args,
            )
        return int(found)

    def _remember(self, key: ConversationKey, conversation_id: int) -> None:
        # Only after a commit: an id from a rolled-back insert must not be reused.
        if len(self._conversation_ids) >= _CACHE_LIMIT:
            self._conversation_ids.clear()
        self._conversation_ids[key] = conversation_id


async def _insert_turn(tx: Tx, conversation_id: int, turn: Turn) -> int:
    turn_id = await tx.fetchval(
        "INSERT INTO turns (conversation_id, role, text, tokens, author_id, message_ids, image_count,"
        " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        conversation_id,
        turn.role,
        turn.text,
        turn.tokens,
        turn.author_id,
        dump_json(list(turn.message_ids)),
        len(turn.images),
        turn.status,
        to_utc(turn.created_at or utcnow()),
    )
    await _insert_images(tx, int(turn_id), turn.images)
    return int(turn_id)


async def _overwrite_turn(tx: Tx, turn_id: int, turn: Turn) -> None:
    await tx.execute(
        "UPDATE turns SET role = ?, text = ?, tokens = ?, author_id = ?, message_ids = ?, image_count = ?,"
        " status = ?, created_at = ? WHERE id = ?",
        turn.role,
        turn.text,
        turn.tokens,
        turn.author_id,
        dump_json(list(turn.message_ids)),
        len(turn.images),
        turn.status,
        to_utc(turn.created_at or utcnow()),
        turn_id,
    )
    await tx.execute("DELETE FROM turn_images WHERE turn_id = ?", turn_id)
    await _insert_images(tx, turn_id, turn.images)


async def _insert_images(tx: Tx, turn_id: int, images: Sequence[StoredImage]) -> None:
    if images:
        await tx.executemany(
            "INSERT INTO turn_images (turn_id, position, mime, data) VALUES (?, ?, ?, ?)",
            [(turn_id, position, image.mime, image.data) for position, image in enumerate(images)],
        )


async def _load_images(tx: Tx, turn_ids: list[int]) -> dict[int, tuple[StoredImage, ...]]:
    if not turn_ids:
        return {}
    marks = ", ".join("?" * len(turn_ids))
    rows = await tx.fetch(
        f"SELECT turn_id, mime, data FROM turn_images WHERE turn_id IN ({marks}) ORDER BY turn_id, position",
        *turn_ids,
    )
    found: dict[int, list[StoredImage]] = {}
    for row in rows:
        found.setdefault(row["turn_id"], []).append(StoredImage(row["mime"], bytes(row["data"])))
    return {turn_id: tuple(images) for turn_id, images in found.items()}
