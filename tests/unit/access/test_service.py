"""The access service: overrides stored and applied at once, notices said once, switches inherited."""

from __future__ import annotations

import asyncio

import pytest

from bot.access.policy import AccessLists, Asker
from bot.access.service import AccessService
from bot.errors import NotAllowed, ValidationError
from bot.ops import metrics
from bot.ports import AccessRule, Account, Actor, ChannelSwitches, Place
from tests.fakes.memory_store import MemoryStore

OWNER = Actor(Account("telegram", "9"))
MEMBER = Actor(Account("telegram", "1"))
COMMUNITY_ADMIN = Actor(Account("discord", "3"), is_platform_admin=True)
GROUP = Place("telegram", "-100")


def service(store: MemoryStore, **values: object) -> AccessService:
    return AccessService(store, AccessLists(admins=frozenset({"telegram:9"}), **values))  # type: ignore[arg-type]


async def test_run_time_rules_apply_at_once_and_survive_a_new_service() -> None:
    """/block stores the rule; a service built later (a restart) reads it back."""
    store = MemoryStore()
    access = service(store)
    assert "User telegram:1 is blocked now." == await access.set_rule(OWNER, "block", "user", "1", "telegram")
    assert not access.check(Asker(MEMBER.account, GROUP)).allowed

    restarted = service(store)
    assert restarted.check(Asker(MEMBER.account, GROUP)).allowed  # not loaded yet: the settings only
    await restarted.load()
    assert not restarted.check(Asker(MEMBER.account, GROUP)).allowed
    assert "blocked user" == restarted.check(Asker(MEMBER.account, GROUP)).reason


async def test_unblock_lifts_a_settings_block_and_forgets_a_stored_one() -> None:
    """/unblock of a user blocked in the settings stores "unblock"; of a stored block, deletes it."""
    store = MemoryStore()
    access = service(store, blocked_users=frozenset({"telegram:1"}))
    await access.set_rule(OWNER, "block", "user", "2", "telegram")
    await access.set_rule(OWNER, "unblock", "user", "telegram:1", "discord")
    await access.set_rule(OWNER, "unblock", "user", "2", "telegram")

    assert [("user", "telegram:1", "unblock")] == [
        (r.kind, r.subject, r.verdict) for r in await store.access_rules()
    ]
    assert access.check(Asker(MEMBER.account, GROUP)).allowed


async def test_only_owners_change_or_list_access() -> None:
    """Community admins and members get a polite refusal; nothing is stored."""
    store = MemoryStore()
    access = service(store)
    for actor in (MEMBER, COMMUNITY_ADMIN):
        with pytest.raises(NotAllowed):
            await access.set_rule(actor, "allow", "user", "5", "telegram")
        with pytest.raises(NotAllowed):
            access.describe(actor)
    assert [] == await store.access_rules()
    assert "Allowed users: none" in access.describe(OWNER)


async def test_roles_must_be_discord_roles() -> None:
    access = service(MemoryStore())
    with pytest.raises(ValidationError):
        await access.set_rule(OWNER, "allow", "role", "5", "telegram")
    assert "Role discord:5 is allowed now." == await access.set_rule(OWNER, "allow", "role", "5", "discord")


def test_a_notice_is_said_once_per_key() -> None:
    access = service(MemoryStore())
    assert [True, False, True] == [access.first_notice(k) for k in ("a", "a", "b")]


async def test_switches_are_set_by_community_admins_and_inherited_by_threads() -> None:
    """A channel's switches apply to its threads; the server's to every channel without its own."""
    store = MemoryStore()
    access = service(store)
    channel = Place("discord", "500", "600")
    thread = Place("discord", "500", "700", parent="600")
    other = Place("discord", "500", "800")
    await access.switch(COMMUNITY_ADMIN, channel.community, "images", on=False)
    await access.switch(COMMUNITY_ADMIN, channel, "chat", on=False)

    assert ChannelSwitches(chat_off=True, images_off=True) == access.switches(thread)
    assert ChannelSwitches(images_off=True) == access.switches(other)
    with pytest.raises(NotAllowed):
        access.require_chat(thread)
    access.require_chat(other)

    with pytest.raises(NotAllowed):
        await access.switch(MEMBER, GROUP, "chat", on=False)
    with pytest.raises(ValidationError):
        await access.set_reply_all(COMMUNITY_ADMIN, Place("discord", "dm:3", "4"), on=True)
    assert {channel, channel.community} == set(await store.all_channel_switches())


class CountingStore(MemoryStore):
    """A memory store that says when the rules were read."""

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()

    async def access_rules(self) -> list[AccessRule]:
        rules = await super().access_rules()
        self.read.set()
        return rules


async def test_refresh_reads_changes_made_elsewhere_until_stopped() -> None:
    """A rule written by another process (the command line) arrives at the next refresh."""
    store = CountingStore()
    running, elsewhere = service(store), service(store)
    await elsewhere.set_rule(OWNER, "block", "chat", "-100", "telegram")
    store.read.clear()
    assert running.check(Asker(MEMBER.account, GROUP)).allowed
    stop = asyncio.Event()
    task = asyncio.create_task(running.refresh_until(stop, every=0.001))
    await asyncio.wait_for(store.read.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert not running.check(Asker(MEMBER.account, GROUP)).allowed


async def test_a_refusal_is_counted_in_the_metrics_by_its_reason() -> None:
    """With metrics on, each refused request adds one to answers{outcome="refused"} with the rule's reason."""

    access = service(MemoryStore(), blocked_users=frozenset({"telegram:1"}))
    labels = {"platform": "telegram", "model": "", "outcome": "refused", "reason": "access: blocked user"}
    before = metrics.REGISTRY.get_sample_value("minitoolai_bot_answers_total", labels) or 0.0
    metrics.set_enabled(True)
    try:
        assert not access.check(Asker(MEMBER.account, GROUP)).allowed
        assert access.check(Asker(OWNER.account, GROUP)).allowed
    finally:
        metrics.set_enabled(False)

    assert before + 1 == metrics.REGISTRY.get_sample_value("minitoolai_bot_answers_total", labels)
