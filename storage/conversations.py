"""Conversation turns (``bot.ports.ConversationStore``), written once for both backends.

A conversation row is created on first use and never deleted (``reset`` and ``prune`` delete
turns only), so its id can be cached for the life of the process.
"""

from __future__ import annotations

import hashlib
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

    async def append_turns(
        self, key: ConversationKey, turns: Sequence[Turn], *, keep_pictures: int | None = None
    ) -> list[int]:
        if not turns:
            return []
        async with self._db.write() as tx:
            conversation_id = await self._conversation_id(tx, key)
            ids = [await _insert_turn(tx, conversation_id, turn) for turn in turns]
            if keep_pictures is not None:
                await _keep_newest_pictures(tx, conversation_id, keep_pictures)
        self._remember(key, conversation_id)
        return ids

    async def load_context(
        self,
        key: ConversationKey,
        budget_tokens: int,
        *,
        max_turns: int = 500,
        max_pictures: int | None = None,
    ) -> list[Turn]:
        async with self._db.read() as tx:
            rows = await tx.fetch(_CONTEXT_SQL, *_key_args(key), max(max_turns, 0), budget_tokens)
            counts = {row["id"]: row["image_count"] for row in rows if row["image_count"]}
            images = await _load_images(tx, counts, max_pictures)
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
            # The conversation's own pictures are the only ones its reset can leave unused.
            pictures = await tx.fetch(
                "SELECT DISTINCT r.digest FROM turn_pictures r JOIN turns t ON t.id = r.turn_id"
                f" WHERE t.conversation_id = {_CONVERSATION_ID}",
                *_key_args(key),
            )
            deleted = await tx.execute(
                f"DELETE FROM turns WHERE conversation_id = {_CONVERSATION_ID}", *_key_args(key)
            )
            if pictures:
                await _delete_unused_pictures(tx, [row["digest"] for row in pictures])
            return deleted

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
            if deleted:
                await _delete_unused_pictures(tx)
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
    old = await tx.fetch("DELETE FROM turn_pictures WHERE turn_id = ? RETURNING digest", turn_id)
    await _insert_images(tx, turn_id, turn.images)
    await _delete_unused_pictures(tx, [row["digest"] for row in old])


def picture_digest(image: StoredImage) -> str:
    return image.digest or hashlib.sha256(image.data).hexdigest()


async def _insert_images(tx: Tx, turn_id: int, images: Sequence[StoredImage]) -> None:
    """Each picture once by its content hash (a picture already stored is only referenced)."""
    stored = [image for image in images if image.data]
    if not stored:
        return
    await tx.executemany(
        "INSERT INTO pictures (digest, mime, width, height, size, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
        [
            (picture_digest(i), i.mime, i.width, i.height, len(i.data), i.data, to_utc(utcnow()))
            for i in stored
        ],
    )
    await tx.executemany(
        "INSERT INTO turn_pictures (turn_id, position, digest) VALUES (?, ?, ?)",
        [(turn_id, position, picture_digest(i)) for position, i in enumerate(images) if i.data],
    )


async def _keep_newest_pictures(tx: Tx, conversation_id: int, keep: int) -> None:
    """Forget the bytes of all but the conversation's newest ``keep`` pictures (turns keep their count)."""
    rows = await tx.fetch(
        "SELECT p.turn_id, p.position, p.digest FROM turn_pictures p JOIN turns t ON t.id = p.turn_id"
        " WHERE t.conversation_id = ? ORDER BY p.turn_id DESC, p.position DESC",
        conversation_id,
    )
    dropped = rows[max(keep, 0) :]
    if not dropped:
        return
    await tx.executemany(
        "DELETE FROM turn_pictures WHERE turn_id = ? AND position = ?",
        [(row["turn_id"], row["position"]) for row in dropped],
    )
    await _delete_unused_pictures(tx, [row["digest"] for row in dropped])


async def _delete_unused_pictures(tx: Tx, digests: Sequence[str] | None = None) -> None:
    """Delete pictures no turn refers to: among ``digests``, or all of them (after a bulk delete)."""
    unused = "NOT EXISTS (SELECT 1 FROM turn_pictures r WHERE r.digest = pictures.digest)"
    if digests is None:
        await tx.execute(f"DELETE FROM pictures WHERE {unused}")
        return
    unique = sorted(set(digests))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        await tx.execute(f"DELETE FROM pictures WHERE digest IN ({marks}) AND {unused}", *chunk)


async def _load_images(
    tx: Tx, counts: dict[int, int], max_pictures: int | None
) -> dict[int, tuple[StoredImage, ...]]:
    """Each turn's pictures by position; bytes only for the newest ``max_pictures`` still kept.

    A picture no longer kept, or beyond ``max_pictures``, is a ``StoredImage`` without data.
    """
    if not counts:
        return {}
    marks = ", ".join("?" * len(counts))
    rows = await tx.fetch(
        "SELECT r.turn_id, r.position, p.digest, p.mime, p.width, p.height FROM turn_pictures r"
        f" JOIN pictures p ON p.digest = r.digest WHERE r.turn_id IN ({marks})"
        " ORDER BY r.turn_id DESC, r.position DESC",
        *counts,
    )
    wanted = rows if max_pictures is None else rows[: max(max_pictures, 0)]
    data: dict[str, bytes] = {}
    unique = sorted({row["digest"] for row in wanted})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        found = await tx.fetch(
            f"SELECT digest, data FROM pictures WHERE digest IN ({', '.join('?' * len(chunk))})", *chunk
        )
        data.update((row["digest"], bytes(row["data"])) for row in found)
    loaded = {id(row) for row in wanted}
    by_turn: dict[int, dict[int, StoredImage]] = {}
    for row in rows:
        bytes_ = data.get(row["digest"], b"") if id(row) in loaded else b""
        image = StoredImage(row["mime"], bytes_, row["width"], row["height"], row["digest"])
        by_turn.setdefault(row["turn_id"], {})[row["position"]] = image
    return {
        turn_id: tuple(by_turn.get(turn_id, {}).get(p, StoredImage("", b"")) for p in range(count))
        for turn_id, count in counts.items()
    }
