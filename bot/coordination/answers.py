"""One answer at a time per conversation across processes, and Stop reaching the writing process.

    acquire   the conversation's row in ``answers`` (``AnswerStore.take_answer``), held while this
              process's lease lives; if another live process holds it, wait for its "done" signal
              (or re-check every ``recheck`` seconds: a dead process sends none, its lease expires)
    release   delete the row, signal "done" so a process waiting for that conversation goes on
    Stop      pressed where the answer is not being written: signal the writing process, which
              stops it as if pressed there (same rules: the asker or an admin) and replies

Signals are PostgreSQL ``LISTEN/NOTIFY`` (``storage.postgres.signals``). Nothing here decides
from one process's memory what another does: the rows are the truth, signals only wake waiters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from bot.ports import Account, AnswerStore, ConversationKey, Place

logger = logging.getLogger(__name__)

DONE = "minitoolai_answer_done"
STOP = "minitoolai_stop"
STOPPED = "minitoolai_stopped"


class Signals(Protocol):
    """Messages between processes (PostgreSQL LISTEN/NOTIFY); delivery is best effort."""

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None: ...

    async def notify(self, channel: str, payload: str) -> None: ...


LocalStop = Callable[[Place, Account, bool], bool]


class SharedAnswers:
    """The :class:`bot.ports.AnswerGate` for several processes on one database."""

    def __init__(
        self,
        store: AnswerStore,
        signals: Signals,
        process_id: str,
        *,
        recheck: float = 1.0,
        reply_timeout: float = 5.0,
    ) -> None:
        self._store = store
        self._signals = signals
        self._process_id = process_id
        self._recheck = recheck
        self._reply_timeout = reply_timeout
        self._done: dict[str, asyncio.Event] = {}
        self._replies: dict[str, asyncio.Future[bool]] = {}
        self._local_stop: LocalStop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, local_stop: LocalStop) -> None:
        """Listen for "done" and stop requests; ``local_stop`` stops an answer of this process."""
        self._local_stop = local_stop
        await self._signals.listen(DONE, self._on_done)
        await self._signals.listen(STOP, self._on_stop)
        await self._signals.listen(STOPPED, self._on_stopped)

    # ------------------------------------------------------------ one answer per conversation

    async def acquire(self, key: ConversationKey) -> None:
        name = _key_name(key)
        waited = False
        while True:
            done = self._done.setdefault(name, asyncio.Event())
            done.clear()  # before asking: a "done" arriving after the refusal is not missed
            if await self._store.take_answer(key):
                return
            if not waited:
                waited = True
                logger.info("conversation %s: waiting for the answer another process is writing", name)
            try:
                async with asyncio.timeout(self._recheck):
                    await done.wait()
            except TimeoutError:
                pass

    async def release(self, key: ConversationKey) -> None:
        try:
            await self._store.end_answer(key)
            await self._signals.notify(DONE, _key_name(key))
        except Exception:
            # The row outlives us only until this process's lease ends; waiters re-check.
            logger.warning("could not release the answer lock of %s", key, exc_info=True)

    def _on_done(self, payload: str) -> None:
        done = self._done.get(payload)
        if done is not None:
            done.set()

    # ------------------------------------------------------------ Stop across processes

    async def answering_elsewhere(self, place: Place) -> bool:
        return any(p != self._process_id for p in await self._store.answering_processes(place))

    async def stop_elsewhere(self, place: Place, user: Account, *, is_admin: bool) -> bool:
        for process in await self._store.answering_processes(place):
            if process == self._process_id:
                continue
            request = uuid.uuid4().hex
            reply: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._replies[request] = reply
            try:
                message = {
                    "id": request,
                    "to": process,
                    "from": self._process_id,
                    "place": [place.platform, place.scope, place.channel],
                    "user": [user.platform, user.holder],
                    "admin": is_admin,
                }
                await self._signals.notify(STOP, json.dumps(message))
                async with asyncio.timeout(self._reply_timeout):
                    if await reply:
                        return True
            except TimeoutError:
                logger.warning("process %s did not answer a stop request for %s", process, place)
            finally:
                self._replies.pop(request, None)
        return False

    def _on_stop(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("to") != self._process_id or self._local_stop is None:
                return
            platform, scope, channel = message["place"]
            user = Account(*message["user"])
            stopped = self._local_stop(Place(platform, scope, channel), user, bool(message["admin"]))
            reply = json.dumps({"id": message["id"], "to": message["from"], "stopped": stopped})
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed stop request")
            return
        task = asyncio.create_task(self._signals.notify(STOPPED, reply), name="stop-reply")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_stopped(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            reply = self._replies.get(message["id"]) if message.get("to") == self._process_id else None
        except (ValueError, KeyError, TypeError):
            return
        if reply is not None and not reply.done():
            reply.set_result(bool(message.get("stopped")))


def _key_name(key: ConversationKey) -> str:
    return json.dumps([key.platform, key.scope, key.channel, key.owner])
