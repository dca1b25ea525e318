"""bot.commands: the text commands every adapter offers, with the in-memory store and a scripted chat API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from bot.access.policy import AccessLists
from bot.access.service import AccessService
from bot.chat.conversations import ChatLimits, ChatRequest, ConversationService, View
from bot.chat.tokens import TokenCounter
from bot.commands import Commands
from bot.credits import CreditPolicy, CreditService
from bot.display.streaming import PacingPolicy
from bot.errors import NotAllowed, ValidationError
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import ChatEvent, ChatMessage, ChatParams, StreamEnd, TextDelta, Usage
from bot.ports import Account, Actor, Place
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.memory_store import MemoryStore
from tests.fakes.surfaces import RecordingSurface

GROUP = Place("telegram", "-100", "7")
DM = Place("telegram", "dm:2")
OWNER = Actor(Account("telegram", "1"))
MEMBER = Actor(Account("telegram", "2"))
GROUP_ADMIN = Actor(Account("telegram", "3"), is_platform_admin=True)
DM_PERSON = Actor(Account("telegram", "2"), is_platform_admin=True)
START = 1_000_000


class ScriptedChat:
    """An in-memory chat API: every request is answered "Hi." with a fixed usage."""

    def __init__(self) -> None:
        self.requests: list[tuple[Sequence[ChatMessage], ChatParams]] = []

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: ChatParams, *, pace: object = None
    ) -> AsyncIterator[ChatEvent]:
        self.requests.append((messages, params))
        return self._events(params.model)

    async def _events(self, model: str) -> AsyncIterator[ChatEvent]:
        yield TextDelta("Hi.")
        yield StreamEnd("stop", Usage(20, 2), model)


@dataclass
class Rig:
    store: MemoryStore
    api: ScriptedChat
    chat: ConversationService
    credits: CreditService
    commands: Commands


def rig(*, access: AccessService | None = None, store: MemoryStore | None = None, **policy: object) -> Rig:
    store = store or MemoryStore()
    api = ScriptedChat()
    credits = CreditService(
        store,
        PriceTable(),
        CreditPolicy(starting_grant=START, admin_ids=frozenset({"telegram:1"}), **policy),  # type: ignore[arg-type]
    )
    defaults = ChatDefaults(model="gpt-4o-mini", system_prompt="", temperature=None, image_model="realvision")
    prefs = Preferences(store, defaults, frozenset({"telegram:1"}))
    chat = ConversationService(store, api, credits, prefs, TokenCounter(), ChatLimits(), access=access)
    return Rig(store, api, chat, credits, Commands(chat, credits, prefs))


async def say(r: Rig, text: str, place: Place = GROUP, user: Account = MEMBER.account) -> None:
    view = View(RecordingSurface(time.monotonic), PacingPolicy(min_interval=0, max_length=4000))
    await r.chat.answer(ChatRequest(user, place, text), view)


# ---------------------------------------------------------------- switches


async def test_chat_switched_off_here_is_refused_by_the_core_for_every_path() -> None:
    """/disable chat holds whichever adapter asks: nothing is reserved, nothing goes upstream."""
    store = MemoryStore()
    access = AccessService(store, AccessLists())
    r = rig(access=access, store=store)
    await say(r, "hello")  # on: answered
    await access.switch(GROUP_ADMIN, GROUP, "chat", on=False)

    with pytest.raises(NotAllowed):
        await say(r, "again")
    view = View(RecordingSurface(time.monotonic), PacingPolicy(min_interval=0, max_length=4000))
    with pytest.raises(NotAllowed):
        await r.chat.regenerate(GROUP, MEMBER.account, view)
    await say(r, "elsewhere", place=DM)  # another place is not affected

    assert 2 == len(r.api.requests)
    assert [] == await store.open_reservations()


# ---------------------------------------------------------------- model


async def test_model_without_a_name_lists_the_models_marking_the_current_one() -> None:
    """/model shows the current model and every choice, the current one in asterisks."""
    reply = await rig().commands.model(MEMBER, GROUP)
    assert (
        "Model here: gpt-4o-mini. Available: gpt-4o, *gpt-4o-mini*, gpt-4.1, gpt-4.1-mini, gpt-4.1-nano."
        == (reply.text)
    )


async def test_model_with_a_name_switches_this_place_for_an_admin() -> None:
    """/model gpt-4o by an admin changes the model used for the next answer."""
    r = rig()
    reply = await r.commands.model(GROUP_ADMIN, GROUP, "GPT-4o")
    assert "From now on I answer here with gpt-4o." == reply.text
    await say(r, "Hello")
    assert "gpt-4o" == r.api.requests[-1][1].model
    assert "*gpt-4o*" in (await r.commands.model(MEMBER, GROUP)).text


async def test_model_change_is_refused_to_a_member_and_for_an_unknown_model() -> None:
    """A member gets NotAllowed; an unknown name gets the list of choices."""
    r = rig()
    with pytest.raises(NotAllowed):
        await r.commands.model(MEMBER, GROUP, "gpt-4o")
    with pytest.raises(ValidationError, match="Choose one of"):
        await r.commands.model(GROUP_ADMIN, GROUP, "llama")


async def test_in_a_private_chat_the_person_may_change_the_model() -> None:
    """A DM's person (the adapter marks them admin) may change settings there."""
    reply = await rig().commands.model(DM_PERSON, DM, "gpt-4.1")
    assert "From now on I answer here with gpt-4.1." == reply.text


# ---------------------------------------------------------------- system prompt


async def test_system_show_set_and_clear() -> None:
    """/system shows, sets and clears the instructions; the next request carries them."""
    r = rig()
    c = r.commands
    assert "I have no special instructions here." == (await c.system(MEMBER, GROUP)).text
    assert (
        "Instructions saved. They apply from the next message."
        == (await c.system(GROUP_ADMIN, GROUP, "  Answer in French.  ")).text
    )
    assert "My instructions here:\nAnswer in French." == (await c.system(MEMBER, GROUP)).text
    await say(r, "Hello")
    messages = r.api.requests[-1][0]
    assert ("developer", "Answer in French.") == (messages[0].role, messages[0].text)
    assert (
        "Instructions cleared: I follow the bot's default ones again."
        == (await c.system(GROUP_ADMIN, GROUP, "clear")).text
    )
    assert "I have no special instructions here." == (await c.system(MEMBER, GROUP)).text


async def test_system_change_by_a_member_is_refused() -> None:
    """Only admins set instructions in a group."""
    with pytest.raises(NotAllowed):
        await rig().commands.system(MEMBER, GROUP, "Be rude.")


# ---------------------------------------------------------------- temperature


async def test_temperature_show_set_and_default() -> None:
    """/temperature shows the API default, accepts a comma decimal, and goes back to the default."""
    r = rig()
    c = r.commands
    assert "Temperature here: the API default (1)." == (await c.temperature(MEMBER, GROUP)).text
    assert "Temperature set to 1.5." == (await c.temperature(GROUP_ADMIN, GROUP, "1,5")).text
    assert "Temperature here: 1.5." == (await c.temperature(MEMBER, GROUP)).text
    await say(r, "Hello")
    assert 1.5 == r.api.requests[-1][1].temperature
    assert "Temperature back to the default." == (await c.temperature(GROUP_ADMIN, GROUP, "default")).text
    assert "Temperature here: the API default (1)." == (await c.temperature(MEMBER, GROUP)).text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("warm", "must be a number"),
        ("1.2.3", "must be a number"),
        ("", None),
        ("3", "between 0 and 2"),
        ("-1", "between 0 and 2"),
        ("nan", "between 0 and 2"),
    ],
)
async def test_temperature_parse_errors_are_explained(value: str, message: str | None) -> None:
    """Not a number, or out of 0..2: a ValidationError saying which; empty just shows the value."""
    c = rig().commands
    if message is None:
        assert (await c.temperature(GROUP_ADMIN, GROUP, value)).text.startswith("Temperature here")
        return
    with pytest.raises(ValidationError, match=message):
        await c.temperature(GROUP_ADMIN, GROUP, value)


# ---------------------------------------------------------------- context and reset


async def test_context_modes() -> None:
    """/context shows and switches between one shared memory and one per person."""
    r = rig()
    c = r.commands
    assert "Context here: channel (one shared memory for everyone)." == (await c.context(MEMBER, GROUP)).text
    assert (
        "Everyone here now has their own conversation with me."
        == (await c.context(GROUP_ADMIN, GROUP, "USER")).text
    )
    assert "Context here: user (a separate memory per person)." == (await c.context(MEMBER, GROUP)).text
    assert (
        "Everyone here now shares one conversation." == (await c.context(GROUP_ADMIN, GROUP, "channel")).text
    )
    with pytest.raises(ValidationError, match="either"):
        await c.context(GROUP_ADMIN, GROUP, "server")
    with pytest.raises(NotAllowed):
        await c.context(MEMBER, GROUP, "user")


async def test_reset_says_whether_there_was_anything_to_forget() -> None:
    """/reset after an exchange forgets it; a second /reset has nothing to forget."""
    r = rig()
    await say(r, "Remember me")
    assert "Done: I forgot this conversation." == (await r.commands.reset(GROUP_ADMIN, GROUP)).text
    assert "There was nothing to forget here." == (await r.commands.reset(GROUP_ADMIN, GROUP)).text
    await say(r, "Who am I?")
    assert ["Who am I?"] == [m.text for m in r.api.requests[-1][0]]  # nothing before it


async def test_reset_of_a_shared_conversation_needs_an_admin() -> None:
    """A member cannot make the whole channel's shared conversation forgotten; nothing is lost."""
    r = rig()
    await say(r, "Remember me")
    with pytest.raises(NotAllowed):
        await r.commands.reset(MEMBER, GROUP)
    await say(r, "Still there?")
    assert ["Remember me", "Still there?"] == [m.text for m in r.api.requests[-1][0] if m.role == "user"]


async def test_in_per_user_mode_a_member_resets_their_own_conversation() -> None:
    """With one conversation per person, /reset needs no admin and forgets only the asker's."""
    r = rig()
    await r.commands.context(GROUP_ADMIN, GROUP, "user")
    await say(r, "Mine")
    await say(r, "Theirs", user=GROUP_ADMIN.account)
    assert "Done: I forgot this conversation." == (await r.commands.reset(MEMBER, GROUP)).text
    await say(r, "Theirs again", user=GROUP_ADMIN.account)
    assert ["Theirs", "Theirs again"] == [m.text for m in r.api.requests[-1][0] if m.role == "user"]


# ---------------------------------------------------------------- credits


async def test_credits_usage_and_prices_texts() -> None:
    """/credits and /usage answer privately with the balance and charges; /prices lists every model."""
    r = rig()
    c = r.commands
    status = await c.credits(MEMBER, GROUP)
    assert status.private
    assert "Balance: $1.00\nSpent today: $0.00 · this month: $0.00" == status.text
    assert "No charges yet." == (await c.usage(MEMBER, GROUP)).text
    await say(r, "Hello")
    charge = r.credits.prices.chat_cost("gpt-4o-mini", Usage(20, 2))
    usage = (await c.usage(MEMBER, GROUP)).text
    assert usage.startswith("Your latest charges:\n• ")
    assert f"gpt-4o-mini, 20 in / 2 out tokens · {r.credits.format_amount(charge)}" in usage
    assert f"Balance: {r.credits.format_amount(START - charge)}" in (await c.credits(MEMBER, GROUP)).text
    prices = (await c.prices()).text
    assert prices.startswith("Chat, per 1M tokens (input / output):\n")
    assert "• gpt-4o-mini: $0.1500 / $0.6000" in prices
    assert "Images: $0.0015 each, every model\nPictures you send, as input tokens" in prices
    assert prices.endswith("• gpt-4o-mini: 2,833 tokens · 25,501 tokens ($0.003826)")
    assert "• gpt-4o: 85 tokens · 765 tokens ($0.001913)" in prices


async def test_credits_in_credit_units_when_the_owner_chose_them() -> None:
    """With credits_per_dollar set, amounts show as credits."""
    r = rig(credits_per_dollar=1000)
    assert (await r.commands.credits(MEMBER, DM)).text.startswith("Balance: 1,000 credits")


async def test_grant_take_and_set_by_the_owner() -> None:
    """The owner's admin commands report what changed and the new balance."""
    c = rig().commands
    target = MEMBER.account
    assert "Granted: $5.00. User 2 now has $6.00." == (await c.grant(OWNER, target, "$5")).text
    assert "Taken: $2.00. User 2 now has $4.00." == (await c.take(OWNER, target, "2")).text
    assert "User 2 now has $0.5000 (was $4.00)." == (await c.set_balance(OWNER, target, "0.5")).text
    assert "Taken: $0.5000. User 2 now has $0.00." == (await c.take(OWNER, target, "9")).text
    assert "Nothing changed. User 2 has $0.00." == (await c.take(OWNER, target, "1")).text


async def test_admin_credit_commands_are_refused_to_members_and_bad_amounts() -> None:
    """A member may not grant; a community admin may not mint money by default; amounts must parse."""
    c = rig().commands
    with pytest.raises(NotAllowed):
        await c.grant(MEMBER, MEMBER.account, "5")
    with pytest.raises(NotAllowed):
        await c.grant(GROUP_ADMIN, MEMBER.account, "5")
    with pytest.raises(ValidationError):
        await c.grant(OWNER, MEMBER.account, "lots")
    with pytest.raises(ValidationError):
        await c.grant(OWNER, MEMBER.account, "0")


async def test_pool_fund_cap_and_spending() -> None:
    """/pool fund and cap, then /spending, with their texts; an unknown action explains usage."""
    c = rig().commands
    assert (
        "Added to the pool: $10.00. The community pool now has $10.00."
        == (await c.pool(OWNER, GROUP, "fund", "10")).text
    )
    assert "Pool limit: $0.5000 per member per day." == (await c.pool(GROUP_ADMIN, GROUP, "cap", "0.5")).text
    assert "Pool limit: no limit." == (await c.pool(GROUP_ADMIN, GROUP, "cap", "off")).text
    with pytest.raises(ValidationError, match="/pool fund"):
        await c.pool(OWNER, GROUP, "drain", "1")
    spending = (await c.spending(GROUP_ADMIN, GROUP)).text
    assert spending.startswith("Community pool: $10.00 left\nSpent since ")
    with pytest.raises(NotAllowed):
        await c.spending(MEMBER, GROUP)


async def test_starting_grant_and_allowance_texts() -> None:
    """The owner's bot-wide settings answer with what now applies."""
    c = rig().commands
    assert "New users now start with $2.00." == (await c.starting_grant(OWNER, "2")).text
    assert "Everyone now gets $1.00 daily, up to $3.00." == (await c.allowance(OWNER, "1", "Daily", "3")).text
    assert "The periodic allowance is off." == (await c.allowance(OWNER, "1", "none")).text
    with pytest.raises(ValidationError, match="none, daily or weekly"):
        await c.allowance(OWNER, "1", "hourly")


# ---------------------------------------------------------------- picture detail


async def test_detail_shows_and_sets_how_pictures_are_sent() -> None:
    """/detail is auto by default; an admin sets low or high for the channel; others may only look."""
    r = rig()
    c = r.commands
    assert (await c.detail(MEMBER, GROUP)).text.startswith("Picture detail here: auto.")
    assert (
        "Pictures here are now sent with detail “low”." == (await c.detail(GROUP_ADMIN, GROUP, " LOW ")).text
    )
    assert (await c.detail(MEMBER, GROUP)).text.startswith("Picture detail here: low.")
    assert (await c.detail(MEMBER, Place("telegram", "-100", "8"))).text.startswith(
        "Picture detail here: auto."
    )
    with pytest.raises(ValidationError, match="Picture detail is “low”"):
        await c.detail(GROUP_ADMIN, GROUP, "medium")
    with pytest.raises(NotAllowed):
        await c.detail(MEMBER, GROUP, "high")
    assert (await c.detail(MEMBER, GROUP)).text.startswith("Picture detail here: low.")


# ---------------------------------------------------------------- language


async def test_language_is_the_members_own_and_the_community_default_is_for_admins() -> None:
    """/language sets the member's own language (answered in it, privately); /language community
    is for admins; in a private chat "community" is just the member's own choice."""
    r = rig()
    c = r.commands
    own = await c.language(MEMBER, GROUP, "tr")
    assert ("Tamam, bundan sonra seninle Türkçe konuşuyorum.", True) == (own.text, own.private)
    assert "tr" == await c.languages.member_choice(MEMBER.account)
    with pytest.raises(NotAllowed):
        await c.language(MEMBER, GROUP, "community nb")
    shared = await c.language(GROUP_ADMIN, GROUP, "community nb")
    assert ("Greit – fra nå av snakker jeg Norsk bokmål her.", False) == (shared.text, shared.private)
    assert "nb" == await c.languages.community_choice(GROUP)
    private = Place("telegram", f"dm:{MEMBER.account.holder}")
    assert (
        "Done: I choose your language myself again."
        == (await c.language(MEMBER, private, "community auto")).text
    )
    assert await c.languages.member_choice(MEMBER.account) is None
    with pytest.raises(ValidationError, match="I don't speak “klingon” yet"):
        await c.language(MEMBER, GROUP, "klingon")
