"""Discord in Turkish and Norwegian: the interaction's locale, the server's preferred locale for
mentions, /language (kept across a restart, and per server), and localized command registrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.discord.language import COMMAND_NAMES
from tests.e2e.discord_harness import DiscordWorld
from tests.fakes.discord_models import MEMBER_PERMISSIONS, FakeInteraction

MANAGE_SERVER = MEMBER_PERMISSIONS | (1 << 5)


async def _ephemeral(world: DiscordWorld, interaction: FakeInteraction) -> str:
    found = await world.wait(lambda: world.ephemerals(interaction))
    return found[0].content


async def _public(world: DiscordWorld, interaction: FakeInteraction) -> str:
    found = await world.find(lambda: world.original(interaction))
    return found.content


async def test_a_turkish_client_gets_help_credits_and_refusals_in_turkish(tmp_path: Path) -> None:
    async with DiscordWorld.open(tmp_path) as world:
        dc, guild, general, alice = world.dc, world.guild, world.general, world.alice
        async with world.bot():
            helped = await _ephemeral(
                world, await dc.slash_command(guild, general, alice, "help", locale="tr")
            )
            credits = await _ephemeral(
                world, await dc.slash_command(guild, general, alice, "credits", locale="tr")
            )
            refused = await _ephemeral(
                world,
                await dc.slash_command(guild, general, alice, "temperature", {"value": "7"}, locale="tr"),
            )
            english = await _ephemeral(world, await dc.slash_command(guild, general, alice, "help"))
    assert helped.startswith("Bana yaz, cevaplayayım")
    # the commands as a Turkish client shows them (Telegram and the terminal keep the English names)
    assert "/sor <soru>: bana bir şey sor" in helped
    assert "/kredi: bakiyen ve harcamaların · /kullanım: son harcamaların · /fiyatlar:" in helped
    assert "/credits" not in helped and "/chat" not in helped
    assert "Bakiye: $1,00" in credits
    assert "Sıcaklık 0 ile 2 arasında olmalı (sen 7.0 yazdın)." == refused
    assert english.startswith("Talk to me and I answer")
    assert "/chat <question>" in english and "/credits: your balance" in english


async def test_a_mention_on_a_norwegian_server_is_answered_in_norwegian(tmp_path: Path) -> None:
    """A message carries no locale: the server's preferred_locale ("no") stands in."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        world.guild.preferred_locale = "no"
        async with world.bot(starting_grant_usd=0):
            await dc.message_create(world.general, world.alice, f"<@{dc.bot_user.id}> hei")
            notice = await world.find(lambda: next(iter(dc.bot_messages(world.general)), None))
    assert notice.content.startswith("Du har ikke nok kreditt til dette.")
    assert [] == world.chat_requests()


async def test_language_is_kept_and_a_server_language_speaks_publicly(tmp_path: Path) -> None:
    """/language tr survives a restart; a server set to Turkish answers publicly in Turkish while
    Bob's ephemeral replies follow his own choice (Norwegian)."""
    async with DiscordWorld.open(tmp_path) as world:
        dc, guild, general, alice, bob = world.dc, world.guild, world.general, world.alice, world.bob
        async with world.bot():
            chosen = await _ephemeral(
                world, await dc.slash_command(guild, general, alice, "language", {"language": "tr"})
            )
        async with world.bot():
            kept = await _ephemeral(world, await dc.slash_command(guild, general, alice, "help"))
            denied = await _ephemeral(
                world,
                await dc.slash_command(
                    guild, general, bob, "language", {"language": "tr", "community": True}
                ),
            )
            set_here = await _public(
                world,
                await dc.slash_command(
                    guild,
                    general,
                    alice,
                    "language",
                    {"language": "tr", "community": True},
                    permissions=MANAGE_SERVER,
                ),
            )
            await _ephemeral(
                world,
                await dc.slash_command(guild, general, bob, "language", {"language": "nb"}, locale="en-US"),
            )
            public = await _public(
                world, await dc.slash_command(guild, general, bob, "model", locale="en-US")
            )
            private = await _ephemeral(
                world, await dc.slash_command(guild, general, bob, "credits", locale="en-US")
            )
    assert "Tamam, bundan sonra seninle Türkçe konuşuyorum." == chosen
    assert kept.startswith("Bana yaz, cevaplayayım")
    assert denied.startswith("Only admins of this server or group can change this community's language.")
    assert "Tamam, bundan sonra burada Türkçe konuşuyorum." == set_here
    assert public.startswith("Buradaki model: gpt-4o-mini.")  # the server's language
    assert credits_line_is_norwegian(private)


def credits_line_is_norwegian(text: str) -> bool:
    return text.startswith("Saldo: $1,00")


def _command(commands: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(c for c in commands if c["name"] == name)


async def test_command_registrations_carry_turkish_and_norwegian_localizations(tmp_path: Path) -> None:
    async with DiscordWorld.open(tmp_path) as world:
        async with world.bot():
            pass
        commands = world.dc.command_syncs[0].commands
    credits = _command(commands, "credits")
    assert "Your balance and spending." == credits["description"]
    assert {"tr": "Bakiyen ve harcamaların.", "no": "Saldoen og forbruket ditt."} == credits[
        "description_localizations"
    ]
    assert {"tr": "kredi", "no": "kreditt"} == credits["name_localizations"]
    assert {"tr": "sor", "no": "spør"} == _command(commands, "chat")["name_localizations"]
    assert {"no": "modell"} == _command(commands, "model")["name_localizations"]  # "model" in Turkish too
    assert set(COMMAND_NAMES) == {c["name"] for c in commands}  # every command named in the catalog
    for code in ("tr", "no"):  # a name per language for each command, none twice (the fake checks too)
        local = [(c.get("name_localizations") or {}).get(code, c["name"]) for c in commands]
        assert len(local) == len(set(local)), code
    assert all(c.get("name_localizations", {}).get("no") for c in commands)
    context = next(o for o in _command(commands, "context")["options"] if o["name"] == "mode")
    shared = next(c for c in context["choices"] if c["value"] == "channel")
    assert {"tr": "kanalda ortak", "no": "felles for kanalen"} == shared["name_localizations"]
    imagine = {o["name"]: o for o in _command(commands, "imagine")["options"]}
    assert imagine["prompt"]["description_localizations"] == {
        "tr": "Görselde ne olacak",
        "no": "Hva bildet skal vise",
    }
    width = imagine["width"]
    assert width["description"].startswith("Width in pixels (")
    assert width["description_localizations"]["tr"].startswith("Piksel cinsinden genişlik (")
    assert width["description"].removeprefix("Width in pixels") == width["description_localizations"][
        "no"
    ].removeprefix("Bredde i piksler")
    every = [c for c in commands if c.get("description_localizations")]
    assert len(every) == len(commands)  # every command is described in both languages
    assert {"tr": "istem", "no": "beskrivelse"} == imagine["prompt"]["name_localizations"]
    assert not imagine["cfg"].get("name_localizations")  # "cfg" is "cfg" in every language
    for command in commands:  # every option named in both languages (or the same word), none twice
        options = command.get("options", [])
        for code in ("tr", "no"):
            local = [(o.get("name_localizations") or {}).get(code, o["name"]) for o in options]
            assert len(local) == len(set(local)), (command["name"], code)
        assert all(o.get("name_localizations") or o["name"] == "cfg" for o in options), command["name"]
