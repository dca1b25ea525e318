"""/imagine on Discord end to end: queued, posted as a file with an embed, and its buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.discord_harness import DiscordWorld, custom_ids
from tests.fakes.discord_models import FakeChannel, SentMessage
from tests.fakes.minitoolai import PNG_BYTES

FAST_IMAGES: dict[str, Any] = {
    "image_poll_initial_seconds": 0.01,
    "image_poll_max_seconds": 0.02,
    "image_progress_interval_seconds": 0,
}


def posted_images(world: DiscordWorld, channel: FakeChannel) -> list[SentMessage]:
    return [m for m in world.dc.bot_messages(channel) if m.attachments and not m.deleted]


def finished_images(world: DiscordWorld, channel: FakeChannel) -> list[SentMessage]:
    """Posted pictures, once every progress message is gone (the job is stored as done by then)."""
    progress = [
        m for m in world.dc.bot_messages(channel) if not m.attachments and not m.deleted and not m.ephemeral
    ]
    return [] if progress else posted_images(world, channel)


async def test_imagine_posts_the_picture_with_an_embed_and_buttons(tmp_path: Path) -> None:
    """The picture is uploaded as a file, shown in an embed with prompt, model, size and cost, with Regenerate and Delete."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(**FAST_IMAGES):
            interaction = await dc.slash_command(
                world.guild,
                world.general,
                world.alice,
                "imagine",
                {"prompt": "a red fox", "size": "portrait"},
            )
            posted = await world.wait(lambda: posted_images(world, world.general))
            acks = await world.wait(lambda: [m for m in world.ephemerals(interaction) if "way" in m.content])
        submitted = world.ai.requests_to("/api/texttoimage/")[0].json
    image = posted[0]
    embed = image.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert PNG_BYTES == image.attachments[0].data
    assert f"attachment://{image.attachments[0].filename}" == embed["image"]["url"]
    assert "a red fox" == embed["description"]
    assert "896×1152" == fields["Size"]
    assert {"Model", "Size", "Cost"} <= fields.keys()
    assert (896, 1152) == (submitted["width"], submitted["height"])
    assert {"regen", "del"} == {cid.split(":")[2] for cid in custom_ids(image)}
    assert acks and not image.pings.anyone


async def test_only_the_requester_may_delete_a_picture(tmp_path: Path) -> None:
    """Delete by someone else is refused ephemerally and the picture stays; the requester's Delete removes it."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(**FAST_IMAGES):
            await dc.slash_command(world.guild, world.general, world.alice, "imagine", {"prompt": "a boat"})
            image = (await world.wait(lambda: finished_images(world, world.general)))[0]
            delete = next(c for c in custom_ids(image) if c.startswith("mtai:img:del:"))
            refused = await dc.component_click(image, world.bob, delete)
            await world.wait(lambda: world.ephemerals(refused))
            still_there = not image.deleted
            mine = await dc.component_click(image, world.alice, delete)
            await world.wait(lambda: image.deleted and world.ephemerals(mine))
    assert still_there
    assert "Only the person who asked" in world.ephemerals(refused)[0].content


async def test_regenerate_makes_the_same_picture_again(tmp_path: Path) -> None:
    """Regenerate on a picture queues a new job with the same options, posted as a second picture."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(**FAST_IMAGES):
            await dc.slash_command(
                world.guild, world.general, world.alice, "imagine", {"prompt": "a tree", "steps": 6}
            )
            image = (await world.wait(lambda: finished_images(world, world.general)))[0]
            regen = next(c for c in custom_ids(image) if c.startswith("mtai:img:regen:"))
            await dc.component_click(image, world.bob, regen)
            await world.wait(lambda: len(posted_images(world, world.general)) == 2)
        submitted = [r.json for r in world.ai.requests_to("/api/texttoimage/")]
    assert 2 == len(submitted)
    assert submitted[0] == submitted[1]
    assert 6 == submitted[1]["steps"]


async def test_invalid_imagine_options_get_an_ephemeral_reply(tmp_path: Path) -> None:
    """A size preset together with a width is refused privately; nothing is submitted."""
    async with DiscordWorld.open(tmp_path) as world:
        dc = world.dc
        async with world.bot(**FAST_IMAGES):
            interaction = await dc.slash_command(
                world.guild,
                world.general,
                world.alice,
                "imagine",
                {"prompt": "x", "size": "square", "width": 512},
            )
            refusals = await world.wait(lambda: world.ephemerals(interaction))
    assert "either a size preset or width" in refusals[0].content
    assert [] == world.ai.requests_to("/api/texttoimage/")
