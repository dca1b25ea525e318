"""The access rule: lists and overrides in, a decision with its reason out."""

from __future__ import annotations

import pytest

from bot.access.policy import (
    CHAT_REFUSAL,
    PRIVATE_REFUSAL,
    USER_REFUSAL,
    AccessLists,
    Asker,
    decide,
    parse_kind,
    parse_subject,
    parse_subjects,
)
from bot.errors import ValidationError
from bot.ports import AccessRule, Account, Place

ALICE = Account("telegram", "1")
BOB = Account("discord", "2")
GROUP = Place("telegram", "-100")
PRIVATE_ALICE = Place("telegram", "dm:1")
SERVER_CHANNEL = Place("discord", "500", "600")
THREAD = Place("discord", "500", "700", parent="600")


def lists(**values: object) -> AccessLists:
    converted = {k: parse_subjects(v) if isinstance(v, str) else v for k, v in values.items()}
    return AccessLists(**converted)  # type: ignore[arg-type]


def test_nothing_set_serves_everyone_everywhere() -> None:
    """With no list set every request is served, and nothing counts as configured."""
    empty = AccessLists()
    assert not empty.configured
    for asker in (Asker(ALICE, GROUP), Asker(ALICE, PRIVATE_ALICE), Asker(BOB, THREAD)):
        decision = decide(empty, asker)
        assert (True, "open") == (decision.allowed, decision.reason)


@pytest.mark.parametrize(
    ("rules", "asker", "expected"),
    [
        ({"allowed_users": "telegram:1"}, Asker(ALICE, GROUP), "allowed user"),
        ({"allowed_users": "telegram:9"}, Asker(ALICE, GROUP), "not allowed"),
        ({"allowed_chats": "telegram:-100"}, Asker(ALICE, GROUP), "allowed chat"),
        ({"allowed_chats": "telegram:1"}, Asker(ALICE, PRIVATE_ALICE), "allowed chat"),
        ({"allowed_chats": "discord:500"}, Asker(BOB, SERVER_CHANNEL), "allowed chat"),
        ({"allowed_chats": "discord:600"}, Asker(BOB, SERVER_CHANNEL), "allowed chat"),
        ({"allowed_chats": "discord:600"}, Asker(BOB, THREAD), "allowed chat"),  # a thread is its parent
        ({"allowed_chats": "discord:601"}, Asker(BOB, THREAD), "not allowed"),
        ({"allowed_roles": "discord:42"}, Asker(BOB, SERVER_CHANNEL, roles=("41", "42")), "allowed role"),
        ({"allowed_roles": "discord:42"}, Asker(BOB, SERVER_CHANNEL, roles=("41",)), "not allowed"),
        ({"blocked_users": "discord:2"}, Asker(BOB, SERVER_CHANNEL), "blocked user"),
        ({"blocked_users": "discord:3"}, Asker(BOB, SERVER_CHANNEL), "open"),
        ({"blocked_chats": "discord:600"}, Asker(BOB, THREAD), "blocked chat"),
        ({"allowed_users": "discord:2", "blocked_chats": "discord:500"}, Asker(BOB, THREAD), "blocked chat"),
        ({"allowed_chats": "discord:500", "blocked_users": "discord:2"}, Asker(BOB, THREAD), "blocked user"),
        ({"allow_private": False}, Asker(ALICE, PRIVATE_ALICE), "private chats off"),
        ({"allow_private": False}, Asker(ALICE, GROUP), "open"),
        (
            {"allow_private": False, "allowed_users": "telegram:1"},
            Asker(ALICE, PRIVATE_ALICE),
            "private chats off",
        ),
        ({"blocked_users": "telegram:1", "admins": frozenset({"telegram:1"})}, Asker(ALICE, GROUP), "admin"),
        ({"allow_private": False, "admins": frozenset({"telegram:1"})}, Asker(ALICE, PRIVATE_ALICE), "admin"),
    ],
)
def test_the_rule(rules: dict[str, object], asker: Asker, expected: str) -> None:
    """Allowed by user, chat, server, channel, parent channel or role; blocks win; admins always pass."""
    decision = decide(lists(**rules), asker)
    assert expected == decision.reason
    assert decision.allowed == (expected in ("open", "admin") or expected.startswith("allowed"))


def test_a_role_counts_only_in_a_server() -> None:
    """Roles belong to a server: a DM carries none that could allow the person."""
    decision = decide(
        lists(allowed_roles="discord:42"), Asker(BOB, Place("discord", "dm:2", "9"), roles=("42",))
    )
    assert not decision.allowed


def test_telegram_topics_are_not_chats_of_their_own() -> None:
    """A forum topic id never matches a chat: only the group's id does."""
    topic = Place("telegram", "-100", "5")
    assert not decide(lists(allowed_chats="telegram:5"), Asker(ALICE, topic, by_channel=False)).allowed
    assert decide(lists(allowed_chats="telegram:-100"), Asker(ALICE, topic, by_channel=False)).allowed


def test_refusal_sentences_depend_on_where_and_why() -> None:
    """Private chats get the private sentence; groups hear about the chat, or about the person."""
    restricted = lists(allowed_users="telegram:9")
    assert PRIVATE_REFUSAL == decide(restricted, Asker(ALICE, PRIVATE_ALICE)).sentence
    in_group = decide(restricted, Asker(ALICE, GROUP))
    assert (CHAT_REFUSAL, True) == (in_group.sentence, in_group.about_place)
    blocked = decide(lists(blocked_users="telegram:1"), Asker(ALICE, GROUP))
    assert (USER_REFUSAL, False) == (blocked.sentence, blocked.about_place)


def test_stored_overrides_beat_the_settings() -> None:
    """A stored allow lifts a settings block, a stored block removes a settings allow, unblock lifts a block only."""
    settings = lists(allowed_users="telegram:1", blocked_chats="telegram:-100,telegram:-200")
    applied = settings.with_rules(
        [
            AccessRule("user", "telegram:1", "block"),
            AccessRule("chat", "telegram:-100", "allow"),
            AccessRule("chat", "telegram:-200", "unblock"),
            AccessRule("role", "discord:42", "allow"),
        ]
    )
    assert frozenset() == applied.allowed_users
    assert frozenset({"telegram:1"}) == applied.blocked_users
    assert frozenset({"telegram:-100"}) == applied.allowed_chats
    assert frozenset() == applied.blocked_chats
    assert frozenset({"discord:42"}) == applied.allowed_roles
    assert "neither" == applied.verdict_of("chat", "telegram:-200")


def test_a_stored_allow_alone_turns_the_allow_list_on() -> None:
    """With only a run-time /allow, everyone else is refused: the allow-list is set."""
    applied = AccessLists().with_rules([AccessRule("user", "telegram:1", "allow")])
    assert applied.restricted
    assert decide(applied, Asker(ALICE, GROUP)).allowed
    assert not decide(applied, Asker(Account("telegram", "2"), GROUP)).allowed


@pytest.mark.parametrize(
    ("text", "platform", "expected"),
    [
        ("12345", "telegram", "telegram:12345"),
        ("-1001234", "telegram", "telegram:-1001234"),
        ("discord:99", "telegram", "discord:99"),
        ("<@99>", "discord", "discord:99"),
        ("<@!99>", "discord", "discord:99"),
        ("<@&77>", "discord", "discord:77"),
        ("<#55>", "discord", "discord:55"),
        (" Telegram:7 ", "discord", "telegram:7"),
    ],
)
def test_subjects_are_read_from_ids_and_mentions(text: str, platform: str, expected: str) -> None:
    """Commands take a bare id (of this platform), platform:id, or a Discord mention."""
    assert expected == parse_subject(text, platform)


@pytest.mark.parametrize("text", ["", "alice", "telegram:", "telegram:abc", "@alice"])
def test_bad_subjects_are_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_subject(text, "telegram")


def test_kinds_have_friendly_names() -> None:
    assert ["user", "chat", "chat", "chat", "role"] == [
        parse_kind(w) for w in ("user", "chat", "server", "Channel", "role")
    ]
    with pytest.raises(ValidationError):
        parse_kind("everyone")
