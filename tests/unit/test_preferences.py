"""bot.preferences: channel beats community beats defaults; changes need an admin (a DM's person is one)."""

from __future__ import annotations

import pytest

from bot.errors import NotAllowed, ValidationError
from bot.ports import Account, Actor, ChannelSettings, Place
from bot.preferences import MAX_SYSTEM_PROMPT_CHARS, ChatDefaults, Preferences, usable_chat_model
from tests.fakes.memory_store import MemoryStore

DEFAULTS = ChatDefaults(
    model="gpt-4o-mini", system_prompt="Be kind.", temperature=None, image_model="realvision"
)
CHANNEL = Place("discord", "guild1", "chan1")
SIBLING = Place("discord", "guild1", "chan2")
COMMUNITY = CHANNEL.community
DM = Place("telegram", "dm:5")
MEMBER = Actor(Account("discord", "10"))
SERVER_ADMIN = Actor(Account("discord", "11"), is_platform_admin=True)
OWNER = Actor(Account("discord", "12"))
DM_PERSON = Actor(Account("telegram", "5"), is_platform_admin=True)  # the adapter says so in a DM


def prefs(store: MemoryStore | None = None) -> tuple[Preferences, MemoryStore]:
    store = store or MemoryStore()
    return Preferences(store, DEFAULTS, frozenset({"discord:12"})), store


async def test_with_nothing_set_the_defaults_apply() -> None:
    """A place nobody configured gets the owner's defaults and channel context."""
    p, _ = prefs()
    effective = await p.effective(CHANNEL)
    assert ("gpt-4o-mini", "Be kind.", None, "channel") == (
        effective.model,
        effective.system_prompt,
        effective.temperature,
        effective.context_mode,
    )
    assert ("realvision", (), False, {}) == (
        effective.image_model,
        effective.allowed_image_models,
        effective.auto_thread,
        effective.extra,
    )


async def test_a_community_setting_applies_to_every_channel_and_a_channel_setting_wins() -> None:
    """Inheritance: channel, then community, then defaults, field by field."""
    p, store = prefs()
    await store.put_settings(
        COMMUNITY, ChannelSettings(model="gpt-4o", temperature=0.3, extra={"a": 1, "b": 1})
    )
    await store.put_settings(CHANNEL, ChannelSettings(model="gpt-4.1", extra={"b": 2}))
    here, sibling = await p.effective(CHANNEL), await p.effective(SIBLING)
    assert ("gpt-4.1", 0.3, "Be kind.") == (here.model, here.temperature, here.system_prompt)
    assert {"a": 1, "b": 2} == here.extra
    assert ("gpt-4o", 0.3) == (sibling.model, sibling.temperature)
    assert "gpt-4o" == (await p.effective(COMMUNITY)).model


async def test_clearing_a_channel_setting_falls_back_to_the_community() -> None:
    """Setting a field to None (clear) inherits again."""
    p, _ = prefs()
    await p.set_system_prompt(SERVER_ADMIN, COMMUNITY, "Community rules.")
    await p.set_system_prompt(SERVER_ADMIN, CHANNEL, "Channel rules.")
    assert "Channel rules." == (await p.effective(CHANNEL)).system_prompt
    await p.set_system_prompt(SERVER_ADMIN, CHANNEL, None)
    assert "Community rules." == (await p.effective(CHANNEL)).system_prompt


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.set_model(MEMBER, CHANNEL, "gpt-4o"),
        lambda p: p.set_system_prompt(MEMBER, CHANNEL, "Talk like a pirate."),
        lambda p: p.set_temperature(MEMBER, CHANNEL, 0.5),
        lambda p: p.set_context_mode(MEMBER, CHANNEL, "user"),
        lambda p: p.set_image_models(MEMBER, CHANNEL, default="juggernaut"),
    ],
)
async def test_a_member_who_is_not_an_admin_may_not_change_settings_in_a_community(change: object) -> None:
    """Every setter refuses a non-admin with NotAllowed and stores nothing."""
    p, store = prefs()
    with pytest.raises(NotAllowed, match="Only admins"):
        await change(p)  # type: ignore[operator]
    assert await store.get_settings(CHANNEL) is None
    assert await store.get_settings(COMMUNITY) is None


@pytest.mark.parametrize(("actor", "place"), [(SERVER_ADMIN, CHANNEL), (OWNER, CHANNEL), (DM_PERSON, DM)])
async def test_server_admins_the_owner_and_the_person_in_a_dm_may_change_settings(
    actor: Actor, place: Place
) -> None:
    """Platform admins, owners listed in admin_ids, and a DM's person (marked admin) all may."""
    p, _ = prefs()
    assert p.is_admin(actor)
    assert "gpt-4o" == await p.set_model(actor, place, " GPT-4o ")
    assert "gpt-4o" == (await p.effective(place)).model


async def test_a_dm_person_not_marked_admin_is_refused() -> None:
    """Admin rights come from the adapter's flag (or admin_ids), not from the place alone."""
    p, _ = prefs()
    with pytest.raises(NotAllowed):
        await p.set_model(Actor(Account("telegram", "5")), DM, "gpt-4o")


async def test_an_owner_id_on_another_platform_is_not_an_admin() -> None:
    """admin_ids name platform:id, so the same number on another platform is nobody special."""
    p, _ = prefs()
    assert not p.is_admin(Actor(Account("telegram", "12")))


async def test_unknown_models_and_modes_are_refused_with_the_choices() -> None:
    """Validation errors name what is allowed."""
    p, _ = prefs()
    with pytest.raises(ValidationError, match="gpt-4o-mini"):
        await p.set_model(SERVER_ADMIN, CHANNEL, "gpt-5")
    with pytest.raises(ValidationError, match="channel"):
        await p.set_context_mode(SERVER_ADMIN, CHANNEL, "everyone")
    with pytest.raises(ValidationError, match="image model"):
        await p.set_image_models(SERVER_ADMIN, CHANNEL, allowed=("nope",))


def test_one_rule_names_a_chat_model_for_every_path() -> None:
    """/model, /chat model: and a Discord option all go through usable_chat_model."""
    assert "gpt-4o" == usable_chat_model(" GPT-4o ")
    assert "gpt-4o" == usable_chat_model("gpt-4o", ("gpt-4o", "gpt-4o-mini"))
    with pytest.raises(ValidationError, match="gpt-4o-mini"):
        usable_chat_model("gpt-5")
    with pytest.raises(NotAllowed, match="gpt-4o-mini"):
        usable_chat_model("gpt-4o", ("gpt-4o-mini",))


@pytest.mark.parametrize("value", [-0.1, 2.01, float("nan"), float("inf")])
async def test_temperature_outside_zero_to_two_is_refused(value: float) -> None:
    """Only 0..2 (or None for the API default) is stored."""
    p, store = prefs()
    with pytest.raises(ValidationError, match="between 0 and 2"):
        await p.set_temperature(SERVER_ADMIN, CHANNEL, value)
    assert await store.get_settings(CHANNEL) is None


async def test_temperature_bounds_and_default_are_accepted() -> None:
    """0, 2 and None are all valid."""
    p, _ = prefs()
    for value in (0.0, 2.0, None):
        await p.set_temperature(SERVER_ADMIN, CHANNEL, value)
        assert value == (await p.effective(CHANNEL)).temperature


async def test_system_prompt_must_be_non_empty_and_not_too_long() -> None:
    """Blank and over-long prompts are refused; a prompt is stored stripped."""
    p, _ = prefs()
    with pytest.raises(ValidationError, match="empty"):
        await p.set_system_prompt(SERVER_ADMIN, CHANNEL, "   ")
    with pytest.raises(ValidationError, match="too long"):
        await p.set_system_prompt(SERVER_ADMIN, CHANNEL, "x" * (MAX_SYSTEM_PROMPT_CHARS + 1))
    await p.set_system_prompt(SERVER_ADMIN, CHANNEL, "  Be short.  ")
    assert "Be short." == (await p.effective(CHANNEL)).system_prompt


async def test_context_mode_is_stored_per_channel() -> None:
    """Per-user context in one channel leaves its siblings shared."""
    p, _ = prefs()
    assert "user" == await p.set_context_mode(SERVER_ADMIN, CHANNEL, "user")
    assert "user" == (await p.effective(CHANNEL)).context_mode
    assert "channel" == (await p.effective(SIBLING)).context_mode


async def test_image_models_are_set_for_the_whole_community() -> None:
    """Image model choices live on the community, whatever channel they were set from."""
    p, store = prefs()
    await p.set_image_models(
        SERVER_ADMIN, CHANNEL, default="juggernaut", allowed=("juggernaut", "realvision")
    )
    assert await store.get_settings(CHANNEL) is None
    effective = await p.effective(SIBLING)
    assert ("juggernaut", ("juggernaut", "realvision")) == (
        effective.image_model,
        effective.allowed_image_models,
    )


async def test_an_update_keeps_the_other_fields() -> None:
    """Changing one field does not reset the others."""
    p, _ = prefs()
    await p.set_model(SERVER_ADMIN, CHANNEL, "gpt-4o")
    await p.set_temperature(SERVER_ADMIN, CHANNEL, 1.5)
    effective = await p.effective(CHANNEL)
    assert ("gpt-4o", 1.5) == (effective.model, effective.temperature)


async def test_a_thread_inherits_its_parent_channel_before_the_community() -> None:
    """Inheritance for threads: thread, then parent channel, then community, then defaults."""
    p, store = prefs()
    await store.put_settings(COMMUNITY, ChannelSettings(model="gpt-4o", temperature=0.3))
    await store.put_settings(CHANNEL, ChannelSettings(model="gpt-4.1", system_prompt="Pirate talk."))
    thread = Place("discord", "guild1", "thread9", parent=CHANNEL.channel)
    await store.put_settings(thread, ChannelSettings(system_prompt="Haiku only."))

    effective = await p.effective(thread)

    assert ("gpt-4.1", "Haiku only.", 0.3) == (
        effective.model,
        effective.system_prompt,
        effective.temperature,
    )
    assert Place("discord", "guild1", "thread9") == thread  # the parent is not part of the identity
