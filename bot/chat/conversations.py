"""The chat heart of the bot: context under a token budget, one answer at a time per conversation.

``ConversationService.answer`` takes a :class:`ChatRequest` from an adapter and a Surface to
show the answer on. It builds the prompt from the stored turns that fit the model's budget,
reserves the worst-case cost, streams the answer through the presenter, stores the exchange
with exact token counts and settles the reservation to the exact usage.

What happens to money and memory in each ending:

=================  ==================================  ===============================
ending             conversation                        credits
=================  ==================================  ===============================
complete           user turn + answer stored           settled to the usage chunk
stopped            partial answer stored as stopped    usage if any, else a count of
                                                       what streamed
cut mid-stream     partial answer stored, interrupted  same
error, no text     nothing stored                      released
bot shutting down  partial answer stored as stopped    same as stopped
=================  ==================================  ===============================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from bot.access.rates import RateLimits
from bot.access.service import AccessService
from bot.chat import vision
from bot.chat.attachments import Document, PicturePreparer, Upload, classify, read_document
from bot.chat.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, TokenCounter
from bot.credits import CreditService, Hold
from bot.display.streaming import Outcome, PacingPolicy, StreamPresenter, Surface, TokenBucket
from bot.errors import MiniToolAIError, StreamInterrupted, ValidationError
from bot.i18n import N_, _, integer
from bot.minitoolai.models import CHAT_MODELS
from bot.minitoolai.types import ChatEvent, ChatMessage, ChatParams, ImageInput, TextDelta, Usage
from bot.minitoolai.validation import validate_chat
from bot.ops import metrics
from bot.ports import (
    Account,
    AnswerGate,
    ConversationKey,
    ConversationStore,
    Place,
    StoredImage,
    Turn,
    TurnStatus,
)
from bot.preferences import Effective, Preferences, usable_chat_model

logger = logging.getLogger(__name__)

# Answers reading their settings and context and holding credit at once (bench/discord_load.py:
# 8-16 start the median answer soonest; unbounded, 200 answers all start together, late).
PREPARING_AT_ONCE = 16
MAX_IMAGES_PER_MESSAGE = 10  # a Telegram album or a Discord message holds up to 10
MAX_FILES_PER_MESSAGE = 10  # a Telegram album holds up to 10
DETAIL_KEY = "detail"  # in a channel's ChannelSettings.extra: "low", "high" or "auto"
EARLIER_PICTURE = "[an earlier picture, no longer shown]"
RESTARTING = N_("Interrupted: the bot is restarting.")
MAX_USER_TEXT_CHARS = 16_000
_TURN_STATUS: dict[Outcome, TurnStatus] = {
    "complete": "complete",
    "stopped": "stopped",
    "failed": "interrupted",
}


class ChatClient(Protocol):
    """The part of the MiniToolAI client the conversation service uses."""

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        *,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[ChatEvent, None]: ...


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Owner settings that bound every answer."""

    max_completion_tokens: int = 1000
    context_margin: int = 256
    max_context_tokens: int = 16_000
    context_max_pictures: int = 2  # pictures of a conversation sent again (the newest); older: a placeholder
    max_document_bytes: int = 200 * 1024


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One message that asks for an answer, as an adapter hands it to the core."""

    user: Account
    place: Place
    text: str
    images: tuple[StoredImage, ...] = ()
    quoted_text: str | None = None  # the message this one replies to, when it is not ours
    # Files of any kind (pictures, text files, PDFs): what each is, the core decides by content.
    files: tuple[Upload, ...] = ()
    user_name: str = ""
    model: str | None = None  # for this message only (e.g. Discord's /chat model:); None = the channel's


@dataclass(frozen=True, slots=True)
class AnswerResult:
    text: str
    outcome: Outcome
    charged: int
    handles: tuple[str, ...] = ()
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class View:
    """Where and how fast an answer is shown; ``bucket`` is the chat's shared edit budget."""

    surface: Surface
    policy: PacingPolicy
    bucket: TokenBucket | None = None


@dataclass(slots=True)
class _Answer:
    """One answer in progress: what Stop needs to find it, and what has streamed so far."""

    key: ConversationKey
    user: Account
    settings: Effective
    params: ChatParams
    user_turn: Turn
    prompt_estimate: int
    text_estimate: int | None  # the part the counter estimated from text; None: do not calibrate
    picture_tokens: int  # what the pictures sent were reserved at (0: none sent)
    hold: Hold
    replace: bool
    deltas: list[str] = field(default_factory=list)
    usage: Usage | None = None
    stopped: bool = False
    interrupted: bool = False  # the bot is shutting down (see interrupt)
    task: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class ConversationService:
    def __init__(
        self,
        store: ConversationStore,
        client: ChatClient,
        credits: CreditService,
        preferences: Preferences,
        tokens: TokenCounter,
        limits: ChatLimits,
        *,
        rates: RateLimits | None = None,
        gate: AnswerGate | None = None,
        access: AccessService | None = None,
    ) -> None:
        self._access = access  # the community admins' /disable chat, enforced here for every path
        self._rates = rates or RateLimits()
        self._gate = gate  # several processes: one answer per conversation across them all
        self._store = store
        self._client = client
        self._credits = credits
        self._prefs = preferences
        self._tokens = tokens
        self._limits = limits
        self._locks: dict[ConversationKey, tuple[asyncio.Lock, int]] = {}
        self._running: dict[ConversationKey, _Answer] = {}
        self._pictures = PicturePreparer()
        # Under a burst, the first asked are the first to reach MiniToolAI: without a bound every
        # question's statements queue behind everyone else's and all start together, late.
        self._preparing = asyncio.Semaphore(PREPARING_AT_ONCE)

    # ------------------------------------------------------------ public operations

    async def key_for(self, place: Place, user: Account) -> ConversationKey:
        settings = await self._prefs.effective(place)
        return self._key(place, user, settings)

    @metrics.records_answer
    async def answer(self, request: ChatRequest, view: View) -> AnswerResult:
        """Answer one message; messages of one conversation are answered in arrival order."""
        self._check_request(request)
        self._require_chat(request.place)
        async with self._preparing:
            settings = await self._settings_for(request)
        images, documents = await self._attachments(request, settings, picture_detail(settings))
        text = _user_text(request, documents, bool(images))
        key = self._key(request.place, request.user, settings)
        async with self._turn_lock(key):
            user_turn = Turn(
                role="user",
                text=text,
                tokens=self._tokens.count_message(text),
                author_id=request.user.holder,
                images=images,
            )
            budget = self._history_budget(settings, user_turn, documents=bool(documents))
            room = max(0, self._limits.context_max_pictures - len(images))
            detail = picture_detail(settings)
            async with self._preparing:
                history = await self._history(key, budget, room, detail)
                answer, messages = await self._reserve(key, request.user, settings, history, user_turn, False)
            return await self._respond(answer, messages, view)

    async def _settings_for(self, request: ChatRequest) -> Effective:
        """The settings in force for ``request``, its model checked; the request counted."""
        settings = await self._prefs.effective(request.place)
        if request.model is not None:
            model = usable_chat_model(request.model, settings.allowed_chat_models)
            settings = dataclasses.replace(settings, model=model)
        await self._rates.check_chat(request.user)  # a valid request counts, before anything is reserved
        return settings

    async def _attachments(
        self, request: ChatRequest, settings: Effective, detail: vision.Detail
    ) -> tuple[tuple[StoredImage, ...], tuple[Document, ...]]:
        """The message's pictures prepared to send, and its documents read as text (by content)."""
        pictures: list[tuple[str, StoredImage]] = [("picture", image) for image in request.images]
        documents: list[Document] = []
        for upload in request.files:
            kind = classify(upload)
            if kind == "picture":
                pictures.append((upload.name or "picture", StoredImage("", upload.data)))
            else:
                limit = self._limits.max_document_bytes
                documents.append(await asyncio.to_thread(read_document, upload, limit))
        if len(pictures) > MAX_IMAGES_PER_MESSAGE:
            raise ValidationError(
                _("Please attach at most {n} pictures per message.", n=MAX_IMAGES_PER_MESSAGE)
            )
        if pictures:
            _require_vision(settings.model)  # before the work of preparing them
        prepared = [await self._pictures.prepare(image, detail, name=name) for name, image in pictures]
        return tuple(prepared), tuple(documents)

    async def _history(
        self, key: ConversationKey, budget: int, room: int, detail: vision.Detail
    ) -> list[Turn]:
        """The stored turns that fit ``budget``, with the bytes of the newest ``room`` pictures only.

        The pictures sent again also take room in the context window: turns that no longer fit
        once they are counted are left out.
        """
        return await self._fit(await self._store.load_context(key, budget, max_pictures=room), budget, detail)

    async def _fit(self, history: list[Turn], budget: int, detail: vision.Detail) -> list[Turn]:
        history = _newest_within(history, budget)
        history = [await self._ready(turn, detail) for turn in history]
        pictures = sum(
            vision.context_tokens(i.width, i.height, detail) for t in history for i in t.images if i.data
        )
        return _newest_within(history, budget - pictures) if pictures else history

    async def _ready(self, turn: Turn, detail: vision.Detail) -> Turn:
        """A picture stored before pictures were prepared (an upgraded database) is prepared now."""
        if all(image.prepared or not image.data for image in turn.images):
            return turn
        images = []
        for image in turn.images:
            if image.data and not image.prepared:
                try:
                    image = await self._pictures.prepare(image, detail)
                except ValidationError:
                    image = StoredImage("", b"")  # unreadable: a placeholder rather than a lost conversation
            images.append(image)
        return dataclasses.replace(turn, images=tuple(images))

    @metrics.records_answer
    async def regenerate(self, place: Place, user: Account, view: View) -> AnswerResult:
        """Answer the last message again, replacing the previous answer."""
        self._require_chat(place)
        async with self._preparing:
            await self._rates.check_chat(user)
            settings = await self._prefs.effective(place)
        key = self._key(place, user, settings)
        async with self._turn_lock(key):
            detail = picture_detail(settings)
            pictures = self._limits.context_max_pictures
            async with self._preparing:
                turns = await self._store.load_context(
                    key, self._budget(settings.model), max_pictures=pictures + MAX_IMAGES_PER_MESSAGE
                )
                if turns and turns[-1].role == "assistant":
                    turns.pop()
                if not turns or turns[-1].role != "user":
                    raise ValidationError(
                        _("There is nothing to regenerate here yet. Ask me something first.")
                    )
                user_turn = await self._ready(turns.pop(), detail)
                budget = self._history_budget(settings, user_turn)
                room = max(0, pictures - sum(1 for i in user_turn.images if i.data))
                history = await self._fit(_only_newest_pictures(turns, room), budget, detail)
                answer, messages = await self._reserve(key, user, settings, history, user_turn, True)
            return await self._respond(answer, messages, view)

    def _require_chat(self, place: Place) -> None:
        if self._access is not None:
            self._access.require_chat(place)

    def stop(self, place: Place, user: Account, *, is_admin: bool = False) -> bool:
        """Stop the answer being written in this place (by its asker or an admin); True if one was."""
        for key, answer in self._running.items():
            if (key.platform, key.scope, key.channel) != (place.platform, place.scope, place.channel):
                continue
            if answer.user != user and not is_admin:
                continue
            if answer.task is not None and answer.task.done():
                return False  # the stream is over; only its final text is still being shown
            answer.stopped = True
            if answer.task is not None:
                answer.task.cancel()
            return True
        return False

    async def interrupt(self, platform: str | None = None, *, grace: float = 10.0) -> None:
        """Shutting down: end every answer being written (on one platform, or all) now.

        Each is finished with a note that the bot is restarting, stored and settled like a stop.
        Adapters call this before closing their connection, so the note can still be shown;
        it returns when every such answer is closed, or after ``grace`` seconds.
        """
        answers = [a for key, a in self._running.items() if platform is None or key.platform == platform]
        for answer in answers:
            answer.interrupted = True
            if answer.task is not None:
                answer.task.cancel()
        if answers:
            waits = [asyncio.ensure_future(answer.closed.wait()) for answer in answers]
            _, pending = await asyncio.wait(waits, timeout=grace)
            for wait in pending:
                wait.cancel()
            if pending:
                logger.warning("%d answers did not finish within %.0f s of shutdown", len(pending), grace)

    async def stop_anywhere(self, place: Place, user: Account, *, is_admin: bool = False) -> bool:
        """``stop``, reaching the process writing the answer when it is not this one."""
        if self.stop(place, user, is_admin=is_admin):
            return True
        return self._gate is not None and await self._gate.stop_elsewhere(place, user, is_admin=is_admin)

    async def is_answering_anywhere(self, place: Place) -> bool:
        if self.is_answering(place):
            return True
        return self._gate is not None and await self._gate.answering_elsewhere(place)

    def is_answering(self, place: Place) -> bool:
        return any(
            (k.platform, k.scope, k.channel) == (place.platform, place.scope, place.channel)
            for k in self._running
        )

    async def reset(self, place: Place, user: Account) -> int:
        key = await self.key_for(place, user)
        async with self._turn_lock(key):
            return await self._store.reset(key)

    # ------------------------------------------------------------ building the prompt

    @staticmethod
    def _key(place: Place, user: Account, settings: Effective) -> ConversationKey:
        return ConversationKey.of(place, user.holder if settings.context_mode == "user" else "")

    @staticmethod
    def _check_request(request: ChatRequest) -> None:
        if not request.text.strip() and not request.images and not request.files:
            raise ValidationError(
                _("Your message is empty. Write a question, or attach a picture or a file with a caption.")
            )
        if len(request.text) > MAX_USER_TEXT_CHARS:
            raise ValidationError(
                _(
                    "Your message is too long ({length} characters; at most {limit}).",
                    length=integer(len(request.text)),
                    limit=integer(MAX_USER_TEXT_CHARS),
                )
            )
        if len(request.images) > MAX_IMAGES_PER_MESSAGE:
            raise ValidationError(
                _("Please attach at most {n} pictures per message.", n=MAX_IMAGES_PER_MESSAGE)
            )
        if len(request.files) > MAX_FILES_PER_MESSAGE:
            raise ValidationError(_("Please attach at most {n} files per message.", n=MAX_FILES_PER_MESSAGE))

    def _budget(self, model: str) -> int:
        """Tokens for the prompt within ``MAX_CONTEXT_TOKENS`` (and the model's window)."""
        return self._window_budget(model, cap=self._limits.max_context_tokens)

    def _history_budget(self, settings: Effective, user_turn: Turn, *, documents: bool = False) -> int:
        """Tokens left for stored turns once the instructions and the new message are counted
        (its pictures by the room they take in the context window).

        A message with documents may go past ``max_context_tokens`` (the owner bounds documents with
        ``MAX_DOCUMENT_KB``) up to the model's own window: it is then sent without history.
        """
        system = self._tokens.count_message(settings.system_prompt) if settings.system_prompt else 0
        detail = picture_detail(settings)
        pictures = sum(vision.context_tokens(i.width, i.height, detail) for i in user_turn.images if i.data)
        fixed = system + pictures + REPLY_PRIMING
        budget = self._budget(settings.model) - fixed - user_turn.tokens
        if budget >= 0:
            return budget
        if documents:
            room = self._window_budget(settings.model) - fixed
            if user_turn.tokens <= room:
                return 0
            raise ValidationError(
                _(
                    "Your message with its documents is too long for this model (about {tokens} tokens; "
                    "at most {limit}). Please send a shorter document, or the part that matters.",
                    tokens=integer(user_turn.tokens),
                    limit=integer(room),
                )
            )
        raise ValidationError(_("Your message is too long for this model's memory. Please shorten it."))

    def _window_budget(self, model: str, *, cap: int | None = None) -> int:
        """Tokens for the prompt within the model's own window (at most ``cap``), once the answer's
        room and the margin are set aside."""
        window = CHAT_MODELS[model].context_window if model in CHAT_MODELS else 128_000
        if cap is not None:
            window = min(window, cap)
        return window - self._limits.max_completion_tokens - self._limits.context_margin

    def _prompt_estimate(
        self, settings: Effective, history: Sequence[Turn], user_turn: Turn, picture_tokens: int
    ) -> int:
        system = self._tokens.count_message(settings.system_prompt) if settings.system_prompt else 0
        texts = sum(map(_prompt_cost, history)) + user_turn.tokens
        dropped = sum(1 for _turn in _dropped(history, user_turn))
        placeholders = self._tokens.count(f"\n{EARLIER_PICTURE}") * dropped if dropped else 0
        return system + texts + placeholders + picture_tokens + REPLY_PRIMING

    @staticmethod
    def _picture_tokens(settings: Effective, history: Sequence[Turn], user_turn: Turn) -> int:
        """What the pictures sent cost at most, by the model's own formula (``bot.chat.vision``)."""
        model = CHAT_MODELS.get(settings.model)
        if model is None or not model.vision:
            return 0
        detail = picture_detail(settings)
        return sum(
            vision.reserve_tokens(settings.model, image.width, image.height, detail)
            for turn in (*history, user_turn)
            for image in turn.images
            if image.data
        )

    # ------------------------------------------------------------ one answer

    async def _reserve(
        self,
        key: ConversationKey,
        user: Account,
        settings: Effective,
        history: list[Turn],
        user_turn: Turn,
        replace: bool,
    ) -> tuple[_Answer, list[ChatMessage]]:
        """The messages to send, and the answer about to be written with its worst case held."""
        if any(image.data for image in user_turn.images):
            _require_vision(settings.model)
        messages = _messages(settings, history, user_turn)
        params = ChatParams(settings.model, settings.temperature, self._limits.max_completion_tokens)
        validate_chat(params, has_images=any(m.images for m in messages))
        picture_tokens = self._picture_tokens(settings, history, user_turn)
        estimate = self._prompt_estimate(settings, history, user_turn, picture_tokens)
        # Calibrate on text alone: framing is fixed, and a picture's count is reserved for the larger
        # reading of an undocumented rule (counting it would drag the factor down and under-reserve text).
        framing = MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING
        pictures = any(m.images for m in messages) or any(_dropped(history, user_turn))
        text_estimate = None if pictures else estimate - framing
        # Nothing goes upstream unless the worst case fits the user's credit.
        hold = await self._credits.reserve_chat(
            user,
            _community(key),
            model=settings.model,
            prompt_tokens=estimate,
            max_completion_tokens=self._limits.max_completion_tokens,
        )
        answer = _Answer(
            key, user, settings, params, user_turn, estimate, text_estimate, picture_tokens, hold, replace
        )
        return answer, messages

    async def _respond(self, answer: _Answer, messages: list[ChatMessage], view: View) -> AnswerResult:
        key = answer.key
        self._running[key] = answer
        try:
            return await self._stream(answer, messages, view)
        finally:
            self._running.pop(key, None)
            answer.closed.set()

    async def _stream(self, answer: _Answer, messages: list[ChatMessage], view: View) -> AnswerResult:
        presenter = StreamPresenter(view.surface, view.policy, bucket=view.bucket)
        async with presenter:
            answer.task = asyncio.create_task(self._pump(answer, messages, presenter))
            try:
                await answer.task
            except asyncio.CancelledError:
                if answer.interrupted:  # interrupt(): the bot is shutting down
                    return await self._close(answer, presenter, "stopped", _(RESTARTING))
                if not answer.stopped:
                    # Our own task was cancelled (a shutdown without interrupt): keep what
                    # streamed, charge what was used, then go.
                    await asyncio.shield(self._close(answer, presenter, "stopped", _(RESTARTING)))
                    raise
                return await self._close(answer, presenter, "stopped", _("Stopped."))
            except MiniToolAIError as exc:
                if not answer.deltas:
                    # Nothing was shown: the adapter tells the person its own way (ephemeral on
                    # Discord), so the error is raised rather than posted as an answer.
                    await self._credits.release(answer.hold, reason=f"upstream error: {type(exc).__name__}")
                    await self._credits.alerts.upstream_refused(exc)  # 401/402/403: tell the owners once
                    raise
                logger.warning(
                    "answer in %s cut off after %d deltas: %s", answer.key, len(answer.deltas), exc
                )
                # StreamInterrupted's message already says the answer was cut off.
                note = exc.user_message
                if not isinstance(exc, StreamInterrupted):
                    note = _("The answer was cut off: {reason}", reason=note)
                return await self._close(answer, presenter, "failed", note)
            return await self._close(answer, presenter, "complete", None)

    async def _pump(self, answer: _Answer, messages: list[ChatMessage], presenter: StreamPresenter) -> None:
        # aclosing: a Stop (cancellation) closes the upstream connection at once, not at GC time.
        # Paced reads: the stream is read when the presenter could next show text, not per token.
        stream = self._client.stream_chat(messages, answer.params, pace=presenter.until_next_show)
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    answer.deltas.append(event.text)
                    presenter.append(event.text)
                elif event.usage is not None:
                    answer.usage = event.usage
                    # Recorded before anything else, so that a crash from here on still settles exactly.
                    await self._credits.note_usage(answer.hold, event.usage, model=answer.params.model)

    async def _close(
        self, answer: _Answer, presenter: StreamPresenter, outcome: Outcome, note: str | None
    ) -> AnswerResult:
        """Store what was said, settle what it cost, and show the final text: in that order.

        Storing first means a platform that refuses the final edit can never lose the
        conversation or the charge.
        """
        text = "".join(answer.deltas)
        usage = answer.usage
        completion = usage.completion_tokens if usage else self._tokens.count(text)
        user_turn = answer.user_turn
        if usage is not None:
            if answer.text_estimate is not None:
                fixed = answer.prompt_estimate - answer.text_estimate
                self._tokens.calibrate(answer.text_estimate, usage.prompt_tokens - fixed)
            if not answer.picture_tokens:
                # The new message's exact size is what the prompt measured beyond the rest of it
                # (with pictures the stored count stays the text's: pictures are counted apart).
                rest = answer.prompt_estimate - user_turn.tokens
                user_turn = dataclasses.replace(user_turn, tokens=max(1, usage.prompt_tokens - rest))
        if text:
            reply = Turn(
                "assistant",
                text,
                completion,
                message_ids=tuple(presenter.handles),
                status=_TURN_STATUS[outcome],
            )
            if answer.replace:
                await self._store.replace_last_assistant(answer.key, reply)
            else:
                keep = max(self._limits.context_max_pictures, len(user_turn.images))
                await self._store.append_turns(answer.key, [user_turn, reply], keep_pictures=keep)
        charged = await self._credits.settle_chat(
            answer.hold,
            model=answer.params.model,
            usage=usage,
            streamed_text_tokens=completion,
            prompt_tokens_estimate=answer.prompt_estimate,
        )
        shown = await presenter.finish(outcome, note=note)
        return AnswerResult(text, outcome, charged, tuple(shown.handles), usage)

    # ------------------------------------------------------------ ordering

    @asynccontextmanager
    async def _turn_lock(self, key: ConversationKey) -> AsyncIterator[None]:
        """asyncio.Lock is FIFO, so answers in one conversation follow arrival order."""
        with self._lock_ref(key) as lock:
            async with lock:
                if self._gate is None:
                    yield
                    return
                await self._gate.acquire(key)  # then across processes
                try:
                    yield
                finally:
                    await asyncio.shield(self._gate.release(key))

    @contextmanager
    def _lock_ref(self, key: ConversationKey) -> Iterator[asyncio.Lock]:
        """A lock per conversation, dropped when nobody waits on it (no unbounded growth)."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            yield lock
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _community(key: ConversationKey) -> Place | None:
    """Whose pool the answer may spend from: the guild or group, none in a private chat."""
    community = Place(key.platform, key.scope)
    return None if community.is_private else community


def _require_vision(model_name: str) -> None:
    model = CHAT_MODELS.get(model_name)
    if model is None or not model.vision:
        able = ", ".join(name for name, m in CHAT_MODELS.items() if m.vision)
        raise ValidationError(
            _(
                "The model {model} can't look at pictures. An admin can switch to one that can ({models}) with /model.",
                model=model_name,
                models=able,
            )
        )


def picture_detail(settings: Effective) -> vision.Detail:
    """The channel's ``detail`` for pictures (``/detail``); ``auto`` unless set."""
    value = settings.extra.get(DETAIL_KEY)
    return value if value in ("low", "high") else "auto"


def _user_text(request: ChatRequest, documents: Sequence[Document] = (), pictures: bool = False) -> str:
    text = request.text.strip()
    if not text:
        # i18n: sent to the model for a member who sent only a picture or a document: in their language
        text = _("What is in this picture?") if pictures or not documents else _("Please read this document.")
    if documents:
        text = "\n\n".join([text, *(document.as_message_part() for document in documents)])
    if request.quoted_text:
        quoted = "\n".join(f"> {line}" for line in request.quoted_text.strip().splitlines())
        text = f"{quoted}\n\n{text}"
    if request.user_name:
        # In a shared channel the model must know who is speaking.
        text = f"[{request.user_name}] {text}"
    return text


def _dropped(history: Sequence[Turn], user_turn: Turn) -> Iterator[StoredImage]:
    """The pictures the prompt names by a placeholder (no longer kept, or older than the newest sent)."""
    for turn in (*history, user_turn):
        yield from (image for image in turn.images if not image.data)


def _only_newest_pictures(turns: list[Turn], room: int) -> list[Turn]:
    """The turns with the bytes of their newest ``room`` pictures only (as ``load_context`` gives)."""
    kept: list[Turn] = []
    for turn in reversed(turns):
        images = list(turn.images)
        for position in range(len(images) - 1, -1, -1):
            if images[position].data:
                if room <= 0:
                    images[position] = dataclasses.replace(images[position], data=b"")
                room -= 1
        kept.append(dataclasses.replace(turn, images=tuple(images)))
    kept.reverse()
    return kept


def _messages(settings: Effective, history: Sequence[Turn], user_turn: Turn) -> list[ChatMessage]:
    """The developer instructions, then the turns; pictures only where the model can see them, and
    only those loaded with their bytes (the newest); an older one is a short placeholder."""
    model = CHAT_MODELS.get(settings.model)
    vision_model = model is not None and model.vision
    detail = picture_detail(settings)
    messages = [ChatMessage("developer", settings.system_prompt)] if settings.system_prompt else []
    for turn in (*history, user_turn):
        sent = [i for i in turn.images if i.data]
        images = tuple(ImageInput(i.data, i.mime, detail) for i in sent) if vision_model else ()
        text = turn.text + "".join(f"\n{EARLIER_PICTURE}" for i in turn.images if not i.data)
        messages.append(ChatMessage(turn.role, text, images))
    return messages


def _prompt_cost(turn: Turn) -> int:
    """A stored turn's tokens in a prompt: a user turn's count includes its framing (it is
    measured from prompt_tokens or estimated as a message); an answer's is its completion_tokens."""
    return turn.tokens + (MESSAGE_OVERHEAD if turn.role == "assistant" else 0)


def _newest_within(turns: list[Turn], budget: int) -> list[Turn]:
    kept: list[Turn] = []
    for turn in reversed(turns):
        budget -= _prompt_cost(turn)
        if budget < 0:
            break
        kept.append(turn)
    kept.reverse()
    return kept
