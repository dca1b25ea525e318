"""The conversation service end to end: the real MiniToolAI client against the fake server, real stores.

Each test runs on SQLite and (with TEST_DATABASE_URL) PostgreSQL. The surface records every call
with ``time.monotonic``, the clock the presenter paces by, so pacing is checked against the policy
exactly; streams are held with ``ChatScript.wait_event`` and released by the test, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.chat.attachments import Upload
from bot.chat.conversations import (
    MAX_USER_TEXT_CHARS,
    AnswerResult,
    ChatLimits,
    ChatRequest,
    ConversationService,
    View,
)
from bot.chat.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, TokenCounter
from bot.credits import CreditPolicy, CreditService
from bot.display.streaming import PacingPolicy
from bot.errors import PaymentRequired, ServiceUnavailable, ValidationError
from bot.minitoolai.client import MiniToolAIClient, RetryPolicy
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account, Actor, ConversationKey, Place, Store, StoredImage, Turn
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.minitoolai import PNG_BYTES, ChatScript, FakeMiniToolAI
from tests.fakes.surfaces import Call, RecordingSurface

CHAT = "/api/chat-completions/"
MODEL = "gpt-4o-mini"
START = 1_000_000  # every new user's starting grant: $1
ALICE = Account("telegram", "1")
BOB = Account("telegram", "2")
GROUP = Place("telegram", "-100", "7")
OTHER_CHANNEL = Place("telegram", "-100", "8")
ADMIN = Actor(Account("telegram", "99"), is_platform_admin=True)
POLICY = PacingPolicy(min_interval=0.02, max_length=4000)
LIMITS = ChatLimits(max_completion_tokens=200, context_margin=16, max_context_tokens=4000)
PRICES = PriceTable()


class WatchedFake(FakeMiniToolAI):
    """The fake MiniToolAI server, plus a way to wait until it has received some chat requests."""

    async def __aenter__(self) -> WatchedFake:
        await super().__aenter__()
        return self

    async def _record(self, request: web.Request) -> Any:
        body = await super()._record(request)
        await self._notify()
        return body

    async def wait_chat_requests(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.requests_to(CHAT)) >= count)

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests_to(CHAT)]


class SignalSurface(RecordingSurface):
    """A recording surface on the presenter's clock that also signals its first text and typing."""

    def __init__(self, *, max_length: int = 10_000, on_typing: Callable[[], None] | None = None) -> None:
        super().__init__(time.monotonic, max_length=max_length)
        self.first_text = asyncio.Event()
        self._on_typing = on_typing
        self._typed = False

    async def send(self, text: str, *, final: bool) -> str:
        handle = await super().send(text, final=final)
        self.first_text.set()
        return handle

    async def typing(self) -> None:
        await super().typing()
        if not self._typed and self._on_typing is not None:
            self._typed = True
            self._on_typing()


@dataclass
class World:
    fake: WatchedFake
    store: Store
    client: MiniToolAIClient
    credits: CreditService
    prefs: Preferences
    tokens: TokenCounter
    chat: ConversationService

    def service(self, limits: ChatLimits) -> ConversationService:
        """Another chat service over the same pieces, with other limits."""
        return ConversationService(self.store, self.client, self.credits, self.prefs, self.tokens, limits)


def make_world(
    fake: WatchedFake,
    store: Store,
    session: aiohttp.ClientSession,
    *,
    starting_grant: int = START,
    limits: ChatLimits = LIMITS,
) -> World:
    client = MiniToolAIClient(
        session,
        base_url=fake.base_url,
        api_key=fake.api_key,
        retry=RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.01, jitter=False),
    )
    credits = CreditService(store, PRICES, CreditPolicy(starting_grant=starting_grant))
    defaults = ChatDefaults(model=MODEL, system_prompt="", temperature=None, image_model="realvision")
    prefs = Preferences(store, defaults, frozenset())
    tokens = TokenCounter()
    chat = ConversationService(store, client, credits, prefs, tokens, limits)
    return World(fake, store, client, credits, prefs, tokens, chat)


@pytest.fixture
async def fake() -> AsyncIterator[WatchedFake]:
    async with WatchedFake() as server:
        yield server


@pytest.fixture
async def world(fake: WatchedFake, store: Store) -> AsyncIterator[World]:
    async with aiohttp.ClientSession() as session:
        yield make_world(fake, store, session)


async def ask(
    chat: ConversationService,
    text: str,
    *,
    user: Account = ALICE,
    place: Place = GROUP,
    surface: SignalSurface | None = None,
    policy: PacingPolicy = POLICY,
    images: tuple[StoredImage, ...] = (),
) -> AnswerResult:
    view = View(surface if surface is not None else SignalSurface(), policy)
    return await chat.answer(ChatRequest(user, place, text, images), view)


async def stored(w: World, place: Place = GROUP, user: Account = ALICE) -> list[Turn]:
    key = await w.chat.key_for(place, user)
    return await w.store.load_context(key, 10**9)


def content_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def transcript(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], content_text(m)) for m in body["messages"]]


def assert_paced(calls: Sequence[Call], policy: PacingPolicy) -> None:
    """Token bucket invariant (as in test_streaming): ops i..j need (j - i + 1 - burst) intervals."""
    times = [c.at for c in calls]
    for i in range(len(times)):
        for j in range(i + policy.burst, len(times)):
            needed = (j - i + 1 - policy.burst) * policy.min_interval
            assert times[j] - times[i] >= needed - 1e-9, (i, j, times)


async def charged_reservation(w: World, user: Account = ALICE) -> Any:
    [reservation] = await w.store.settled_reservations(user, limit=1)
    return reservation


# ---------------------------------------------------------------- streaming through the presenter


async def test_answer_is_paced_never_repeats_an_edit_and_ends_with_exactly_the_answer(world: World) -> None:
    """Edits come no faster than the policy allows, none is unchanged, and the final text is the answer."""
    tokens = [f"w{i} " for i in range(80)]
    world.fake.chat_scripts.append(ChatScript(tokens=tokens, delay=0.003))
    surface = SignalSurface()
    result = await ask(world.chat, "Count for me", surface=surface)
    answer = "".join(tokens)
    assert (answer, "complete") == (result.text, result.outcome)
    assert [answer] == surface.final_texts()
    assert len(surface.operations) >= 3
    assert all(c.ok for c in surface.operations)
    for _, calls in itertools.groupby(sorted(surface.operations, key=lambda c: c.handle), lambda c: c.handle):
        texts = [c.text for c in calls]
        assert all(a != b for a, b in itertools.pairwise(texts))
    assert_paced(surface.paced, POLICY)
    assert surface.finished == (tuple(surface.order), "complete")


async def test_a_long_answer_continues_in_new_messages_each_within_the_limit(world: World) -> None:
    """An answer longer than a message is split: every text within max_length, together exactly the answer."""
    policy = PacingPolicy(min_interval=0.02, max_length=120)
    tokens = [f"word{i} " for i in range(150)]
    world.fake.chat_scripts.append(ChatScript(tokens=tokens, delay=0.001))
    surface = SignalSurface(max_length=policy.max_length)
    result = await ask(world.chat, "Talk a lot", surface=surface, policy=policy)
    answer = "".join(tokens)
    assert answer == result.text
    texts = surface.final_texts()
    assert len(texts) >= 8
    assert all(len(t) <= policy.max_length for t in texts)
    assert answer == "".join(texts)
    assert all(c.ok for c in surface.operations)
    assert_paced(surface.paced, policy)
    assert list(result.handles) == surface.order


# ---------------------------------------------------------------- ordering


async def test_one_conversation_answers_in_arrival_order_while_another_runs_in_parallel(world: World) -> None:
    """A held answer blocks the next message of its conversation only; that message then sees the first."""
    gate = asyncio.Event()
    world.fake.chat_scripts.append(ChatScript(tokens=["First ", "answer."], wait_event=gate))
    first_surface, second_surface = SignalSurface(), SignalSurface()
    first = asyncio.create_task(ask(world.chat, "question one", surface=first_surface))
    await world.fake.wait_chat_requests(1)
    second = asyncio.create_task(ask(world.chat, "question two", user=BOB, surface=second_surface))
    elsewhere = await ask(world.chat, "question three", place=OTHER_CHANNEL)

    assert "complete" == elsewhere.outcome
    assert not first.done() and not second.done()
    assert 2 == len(world.fake.requests_to(CHAT))  # the second message still waits its turn
    assert world.chat.is_answering(GROUP)

    gate.set()
    one, two = await first, await second
    assert "First answer." == one.text
    bodies = world.fake.chat_bodies()
    assert [("user", "question one"), ("assistant", "First answer."), ("user", "question two")] == transcript(
        bodies[2]
    )
    assert ["question one", "First answer.", "question two", two.text] == [
        t.text for t in await stored(world)
    ]
    assert first_surface.calls[-1].at <= min(c.at for c in second_surface.paced)
    assert not world.chat.is_answering(GROUP)


# ---------------------------------------------------------------- stop, regenerate, reset


async def test_stop_keeps_the_partial_answer_as_stopped_and_charges_only_what_streamed(world: World) -> None:
    """Stop (by the asker; not by someone else) ends the stream upstream, stores the partial, charges it."""
    world.fake.chat_scripts.append(ChatScript(tokens=["Partial ", "rest ", "never"], delay=30))
    surface = SignalSurface()
    task = asyncio.create_task(ask(world.chat, "Tell me a long story", surface=surface))
    await surface.first_text.wait()

    assert not world.chat.stop(GROUP, BOB)
    assert world.chat.stop(GROUP, ALICE)
    result = await task
    await world.fake.wait_cancelled()

    assert ("Partial ", "stopped") == (result.text, result.outcome)
    assert [("user", "complete"), ("assistant", "stopped")] == [
        (t.role, t.status) for t in await stored(world)
    ]
    assert "Partial " == (await stored(world))[-1].text
    assert ["Partial \n\n_Stopped._"] == surface.final_texts()
    assert surface.finished is not None and "stopped" == surface.finished[1]
    reservation = await charged_reservation(world)
    expected = PRICES.chat_worst_case(
        MODEL, reservation.meta["prompt_tokens"], world.tokens.count("Partial ")
    )
    assert expected == result.charged == reservation.charged
    assert reservation.charged < reservation.amount
    assert START - expected == await world.store.balance(ALICE)
    assert [] == await world.store.open_reservations()


async def test_an_admin_may_stop_someone_elses_answer(world: World) -> None:
    """Stop by an admin of the place works on another person's answer."""
    world.fake.chat_scripts.append(ChatScript(tokens=["Some ", "more"], delay=30))
    surface = SignalSurface()
    task = asyncio.create_task(ask(world.chat, "Hello", surface=surface))
    await surface.first_text.wait()
    assert world.chat.stop(GROUP, BOB, is_admin=True)
    assert "stopped" == (await task).outcome
    await world.fake.wait_cancelled()


async def test_interrupt_at_shutdown_ends_answers_of_that_platform_with_a_note(world: World) -> None:
    """interrupt(platform): the answer ends normally as stopped with the restart note, stored and settled."""
    world.fake.chat_scripts.append(ChatScript(tokens=["Halfway ", "there ", "never"], delay=30))
    surface = SignalSurface()
    task = asyncio.create_task(ask(world.chat, "A long one", surface=surface))
    await surface.first_text.wait()

    await world.chat.interrupt("telegram" if GROUP.platform != "telegram" else "discord")
    assert not task.done()  # another platform's shutdown leaves it alone
    await world.chat.interrupt(GROUP.platform)

    result = await task
    assert ("Halfway ", "stopped") == (result.text, result.outcome)
    assert ["Halfway \n\n_Interrupted: the bot is restarting._"] == surface.final_texts()
    assert ["complete", "stopped"] == [t.status for t in await stored(world)]
    assert [] == await world.store.open_reservations()
    assert not world.chat.is_answering(GROUP)


class SlowFinalSurface(SignalSurface):
    """A surface whose final texts wait for the test: the answer has streamed but is still shown."""

    def __init__(self) -> None:
        super().__init__()
        self.final_reached = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, text: str, *, final: bool) -> str:
        await self._hold(final)
        return await super().send(text, final=final)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        await self._hold(final)
        await super().edit(handle, text, final=final)

    async def _hold(self, final: bool) -> None:
        if final:
            self.final_reached.set()
            await self.release.wait()


async def test_stop_after_the_stream_has_ended_stops_nothing(world: World) -> None:
    """Stop while only the final text is being shown returns False and the answer stays complete."""
    surface = SlowFinalSurface()
    task = asyncio.create_task(ask(world.chat, "Quick one", surface=surface))
    await surface.final_reached.wait()
    assert world.chat.is_answering(GROUP)
    assert not world.chat.stop(GROUP, ALICE)
    surface.release.set()
    result = await task
    assert "complete" == result.outcome
    assert ["complete", "complete"] == [t.status for t in await stored(world)]


async def test_regenerate_replaces_the_last_answer_and_resends_the_same_question(world: World) -> None:
    """Regenerate answers the last message again and the new answer replaces the old one."""
    world.fake.chat_scripts.append(ChatScript(tokens=["Old ", "answer."]))
    world.fake.chat_scripts.append(ChatScript(tokens=["New ", "answer."]))
    await ask(world.chat, "What is up?")
    result = await world.chat.regenerate(GROUP, ALICE, View(SignalSurface(), POLICY))
    assert "New answer." == result.text
    assert [("user", "What is up?")] == transcript(world.fake.chat_bodies()[1])
    assert ["What is up?", "New answer."] == [t.text for t in await stored(world)]


async def test_regenerate_with_nothing_asked_is_refused_without_a_charge(world: World) -> None:
    """Regenerate in an empty conversation is a ValidationError; nothing goes upstream."""
    with pytest.raises(ValidationError):
        await world.chat.regenerate(GROUP, ALICE, View(SignalSurface(), POLICY))
    assert [] == world.fake.requests_to(CHAT)


async def test_reset_forgets_the_conversation(world: World) -> None:
    """After reset the next question is sent without the earlier exchange."""
    await ask(world.chat, "Remember the number 42")
    assert 2 == await world.chat.reset(GROUP, ALICE)
    assert [] == await stored(world)
    await ask(world.chat, "Which number?")
    assert [("user", "Which number?")] == transcript(world.fake.chat_bodies()[-1])
    assert 0 == await world.chat.reset(OTHER_CHANNEL, ALICE)


# ---------------------------------------------------------------- context


def sized(text: str, size: int) -> str:
    return (text + " " + "x" * size)[:size]


async def test_a_long_history_never_exceeds_the_budget_and_the_newest_turn_survives(world: World) -> None:
    """Every prompt, counted with framing, fits the budget; a message filling it alone is sent alone."""
    # Budget 283 = 27 + 4 pairs of 64 tokens (a 60-byte question is 24, a 120-byte answer 40):
    # history that fits by stored counts alone would exceed it once framing is counted.
    limits = ChatLimits(max_completion_tokens=100, context_margin=17, max_context_tokens=400)
    budget = 400 - 100 - 17
    chat = world.service(limits)
    fresh = TokenCounter()
    conversation: list[tuple[str, str]] = []
    expected: list[list[tuple[str, str]]] = []  # what each request may draw from, newest last
    for i in range(10):
        answer = [f"a{j:02d} " for j in range(30)]
        world.fake.chat_scripts.append(ChatScript(tokens=answer, include_usage=False))
        question = sized(f"Question {i:02d}:", 60)
        expected.append([*conversation, ("user", question)])
        await ask(chat, question)
        conversation += [("user", question), ("assistant", "".join(answer))]

    bodies = world.fake.chat_bodies()
    for body, allowed in zip(bodies, expected, strict=True):
        messages = transcript(body)
        assert sum(fresh.count_message(text) for _, text in messages) + REPLY_PRIMING <= budget
        assert allowed[-len(messages) :] == messages  # the newest turns, in order, then the question
    assert len(transcript(bodies[-1])) >= 5

    filling = "y" * (3 * (budget - REPLY_PRIMING - MESSAGE_OVERHEAD))
    world.fake.chat_scripts.append(ChatScript(tokens=["ok"], include_usage=False))
    await ask(chat, filling)
    assert [("user", filling)] == transcript(world.fake.chat_bodies()[-1])
    requests = len(world.fake.requests_to(CHAT))
    with pytest.raises(ValidationError, match="too long for this model's memory"):
        await ask(chat, filling + "yyy")
    assert requests == len(world.fake.requests_to(CHAT))


async def test_a_too_long_message_is_refused_before_anything_is_reserved(world: World) -> None:
    """Text over the character limit is a ValidationError; no request, no account touched."""
    with pytest.raises(ValidationError, match="too long"):
        await ask(world.chat, "z" * (MAX_USER_TEXT_CHARS + 1))
    assert [] == world.fake.requests_to(CHAT)
    assert await world.store.balance(ALICE) is None


async def test_per_user_context_mode_gives_each_person_their_own_memory(world: World) -> None:
    """In user mode two people in one channel never see each other's turns; reset clears one only."""
    await world.prefs.set_context_mode(ADMIN, GROUP, "user")
    await ask(world.chat, "alpha", user=ALICE)
    await ask(world.chat, "beta", user=BOB)
    await ask(world.chat, "gamma", user=ALICE)
    texts = [text for _, text in transcript(world.fake.chat_bodies()[-1])]
    assert "alpha" == texts[0] and "gamma" == texts[-1]
    assert not any("beta" in t for t in texts)
    assert ["beta"] == [text for _, text in transcript(world.fake.chat_bodies()[1])]
    alice_key = await world.chat.key_for(GROUP, ALICE)
    assert ConversationKey("telegram", "-100", "7", "1") == alice_key
    assert 2 == await world.chat.reset(GROUP, BOB)
    assert 4 == len(await stored(world, GROUP, ALICE))


# ---------------------------------------------------------------- broken streams


async def test_a_cut_stream_keeps_the_partial_answer_as_interrupted_and_charges_conservatively(
    world: World,
) -> None:
    """A stream that breaks mid-way shows the text plus a note, stores it interrupted, charges a count."""
    world.fake.chat_scripts.append(ChatScript(tokens=["One ", "two ", "three ", "four"], cut_after=2))
    surface = SignalSurface()
    result = await ask(world.chat, "Count", surface=surface)
    assert ("One two ", "failed") == (result.text, result.outcome)
    turns = await stored(world)
    assert [("user", "complete"), ("assistant", "interrupted")] == [(t.role, t.status) for t in turns]
    assert "One two " == turns[-1].text
    [final] = surface.final_texts()
    assert final.startswith("One two \n\n_") and "cut off" in final
    assert 1 == final.count("cut off")
    reservation = await charged_reservation(world)
    assert reservation.meta["exact"] is False
    counted = PRICES.chat_worst_case(MODEL, reservation.meta["prompt_tokens"], world.tokens.count("One two "))
    assert counted == result.charged == reservation.charged
    assert START - counted == await world.store.balance(ALICE)


@pytest.mark.parametrize(("status", "error"), [(402, PaymentRequired), (503, ServiceUnavailable)])
async def test_an_upstream_error_before_any_token_releases_the_hold_and_stores_nothing(
    world: World, status: int, error: type[Exception]
) -> None:
    """No text: the whole hold comes back, the conversation is unchanged, and the error is raised
    for the adapter to show its own way (nothing was posted as an answer)."""
    world.fake.chat_scripts.append(ChatScript(tokens=[], status=status))
    surface = SignalSurface()
    with pytest.raises(error) as caught:
        await ask(world.chat, "Hello?", surface=surface)
    assert START == await world.store.balance(ALICE)
    assert [] == await world.store.open_reservations()
    assert [] == await stored(world)
    assert caught.value.user_message  # type: ignore[attr-defined]
    assert [] == surface.final_texts()
    assert surface.finished is None


async def test_shutdown_records_the_partial_answer_and_settles(world: World) -> None:
    """Cancelling the task running answer() stores what streamed as stopped and settles before going."""
    world.fake.chat_scripts.append(ChatScript(tokens=["Halfway ", "there"], delay=30))
    surface = SignalSurface()
    task = asyncio.create_task(ask(world.chat, "Go on", surface=surface))
    await surface.first_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await world.fake.wait_cancelled()
    turns = await stored(world)
    assert [("Go on", "complete"), ("Halfway ", "stopped")] == [(t.text, t.status) for t in turns]
    assert [] == await world.store.open_reservations()
    reservation = await charged_reservation(world)
    assert START - reservation.charged == await world.store.balance(ALICE)
    assert 0 < reservation.charged < reservation.amount
    assert "restarting" in surface.final_texts()[0]


# ---------------------------------------------------------------- images


async def test_images_are_sent_inline_as_data_urls(world: World) -> None:
    """An attached picture reaches the API as a data: URL, never as a link."""
    image = StoredImage("image/png", PNG_BYTES)
    await ask(world.chat, "What is this?", images=(image,))
    content = world.fake.chat_bodies()[0]["messages"][-1]["content"]
    assert {"type": "text", "text": "What is this?"} == content[0]
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = base64.b64decode(url.partition(",")[2])
    with Image.open(io.BytesIO(sent)) as decoded, Image.open(io.BytesIO(PNG_BYTES)) as original:
        assert original.convert("RGB").tobytes() == decoded.convert("RGB").tobytes()
    [stored_image] = (await stored(world))[0].images
    assert (sent, 4, 4) == (stored_image.data, stored_image.width, stored_image.height)


async def test_images_in_the_history_are_dropped_for_a_model_that_cannot_see(world: World) -> None:
    """After switching to a text-only model the earlier picture is not sent, its text still is."""
    await ask(world.chat, "Look at this", images=(StoredImage("image/png", PNG_BYTES),))
    await world.prefs.set_model(ADMIN, GROUP, "gpt-4.1")
    await ask(world.chat, "And now?")
    body = world.fake.chat_bodies()[-1]
    assert "gpt-4.1" == body["model"]
    assert all(isinstance(m["content"], str) for m in body["messages"])
    assert ("user", "Look at this") == transcript(body)[0]
    with pytest.raises(ValidationError, match="can't look at pictures"):
        await ask(world.chat, "This one?", images=(StoredImage("image/png", PNG_BYTES),))
    assert 2 == len(world.fake.requests_to(CHAT))


# ---------------------------------------------------------------- exact token counts


async def test_stored_token_counts_come_from_the_reported_usage(world: World) -> None:
    """The answer stores completion_tokens; the question stores what prompt_tokens says it took."""
    await world.prefs.set_system_prompt(ADMIN, GROUP, "Be brief.")
    system = TokenCounter().count_message("Be brief.")
    world.fake.chat_scripts.append(ChatScript(tokens=["Hi", " there"], usage=Usage(120, 9)))
    first = await ask(world.chat, "Hello")
    question, answer = await stored(world)
    assert (120 - system - REPLY_PRIMING, 9) == (question.tokens, answer.tokens)
    assert PRICES.chat_cost(MODEL, Usage(120, 9)) == first.charged

    world.fake.chat_scripts.append(ChatScript(tokens=["Bye"], usage=Usage(300, 5)))
    await world.prefs.set_system_prompt(ADMIN, GROUP, None)
    second = await ask(world.chat, "Goodbye")
    *_, question2, answer2 = await stored(world)
    history = question.tokens + answer.tokens + MESSAGE_OVERHEAD
    assert (300 - history - REPLY_PRIMING, 5) == (question2.tokens, answer2.tokens)
    spent = PRICES.chat_cost(MODEL, Usage(120, 9)) + PRICES.chat_cost(MODEL, Usage(300, 5))
    assert spent == first.charged + second.charged
    assert START - spent == await world.store.balance(ALICE)


async def test_calibration_moves_the_estimate_toward_the_reported_usage(world: World) -> None:
    """When the API reports fewer prompt tokens than estimated, later estimates shrink, within bounds."""
    text = "x" * 300
    before = world.tokens.count(text)
    world.fake.chat_scripts.append(ChatScript(tokens=["ok"], usage=Usage(60, 1)))
    await ask(world.chat, text)
    after = world.tokens.count(text)
    assert 0.6 <= world.tokens.factor < 1.0
    assert 60 < after < before


async def test_pictures_do_not_skew_the_calibration(world: World) -> None:
    """A prompt with a picture (whose real token count is unknown) leaves the factor alone."""
    world.fake.chat_scripts.append(ChatScript(tokens=["A cat."], usage=Usage(90, 2)))
    await ask(world.chat, "What is it?", images=(StoredImage("image/png", PNG_BYTES),))
    assert 1.0 == world.tokens.factor


# ---------------------------------------------------------------- documents


async def test_a_document_past_the_context_budget_goes_alone_and_one_past_the_window_is_refused(
    world: World,
) -> None:
    """MAX_CONTEXT_TOKENS bounds history; a document (bounded by MAX_DOCUMENT_KB) may fill the model's
    window instead, sent without history and reserved in full; past the window: one clear sentence."""
    chat = world.service(dataclasses.replace(LIMITS, max_document_bytes=600 * 1024))
    await ask(chat, "Hello first")
    document = Upload("notes.md", ("# Notes\n" + "word " * 4000).encode())  # ~6,700 tokens estimated
    view = View(SignalSurface(), POLICY)
    await chat.answer(ChatRequest(ALICE, GROUP, "Summarise", files=(document,)), view)
    body = world.fake.chat_bodies()[-1]
    assert [("user", 'Summarise\n\n<document name="notes.md">\n# Notes')] == [
        (role, text[: len('Summarise\n\n<document name="notes.md">\n# Notes')])
        for role, text in transcript(body)
    ]
    reservation = await charged_reservation(world)
    assert reservation.meta["prompt_tokens_estimate"] > 4000

    huge = Upload("dump.log", b"x " * 250_000)  # 500 KB: past gpt-4o-mini's 128k-token window
    with pytest.raises(ValidationError, match="too long for this model"):
        await chat.answer(ChatRequest(ALICE, GROUP, "And this?", files=(huge,)), view)
    assert 2 == len(world.fake.chat_bodies())
