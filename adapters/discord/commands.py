"""The slash commands: definitions (``app_commands``) and the one core call each makes.

Chat and pictures stream or queue through :mod:`.chat` and :mod:`.images`; everything else
is a ``Commands`` call whose ``Reply`` is shown, privately when the core says so. Credit
administration is hidden from members by ``default_permissions(manage_guild=True)``; the core
still checks every call. In a DM the person administers their own chat settings, but never
credits (those need a server's Manage Server permission or the bot owner).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from adapters.discord.access import AccessGate, access_commands
from adapters.discord.attachments import download_files
from adapters.discord.chat import ChatFlows
from adapters.discord.config import DiscordConfig
from adapters.discord.images import ImageFlows
from adapters.discord.language import described, local_commands
from adapters.discord.places import account, interaction_actor, interaction_place
from adapters.discord.replies import guarded, reply, reply_error
from adapters.discord.surface import Deferral
from bot.chat.conversations import ChatRequest
from bot.commands import Reply, help_text
from bot.core import Core
from bot.errors import ValidationError
from bot.i18n import N_, _, current, privately
from bot.i18n.catalog import LANGUAGES
from bot.images.options import SIZE_PRESETS, ImageOptions
from bot.minitoolai.models import (
    CFG_SCALE_RANGE,
    CHAT_MODELS,
    IMAGE_MODELS,
    SCHEDULERS,
    SIZE_RANGE,
    STEPS_RANGE,
)
from bot.ports import Account, Actor, Place
from bot.preferences import usable_chat_model

CHAT_MODEL_CHOICES = [app_commands.Choice(name=m, value=m) for m in CHAT_MODELS]
IMAGE_MODEL_CHOICES = [app_commands.Choice(name=m, value=m) for m in IMAGE_MODELS][:25]
SIZE_CHOICES = [app_commands.Choice(name=f"{n} ({w}×{h})", value=n) for n, (w, h) in SIZE_PRESETS.items()]
ADMIN = app_commands.default_permissions(manage_guild=True)
LANGUAGE_CHOICES = [
    *(app_commands.Choice(name=name, value=code) for code, (name, _aliases) in LANGUAGES.items()),
    app_commands.Choice(name=N_("automatic"), value="auto"),
]


def credits_actor(interaction: discord.Interaction) -> Actor:
    """Credits need a server's Manage Server: a DM makes nobody a credit admin (the owner still is)."""
    is_admin = interaction.guild_id is not None and interaction.permissions.manage_guild
    return Actor(account(interaction.user), is_platform_admin=is_admin)


class CommandSet:
    """Builds the command tree; each command is a small closure around one core call."""

    def __init__(self, core: Core, chat: ChatFlows, images: ImageFlows, config: DiscordConfig) -> None:
        self._core = core
        self._chat = chat
        self._images = images
        self._config = config

    def install(self, tree: app_commands.CommandTree) -> None:
        tree.on_error = self._on_error  # type: ignore[method-assign]
        # Every slash command passes the access gate first; a refusal is answered ephemerally.
        tree.interaction_check = AccessGate(self._core).admit_interaction  # type: ignore[method-assign]
        for command in (
            self._chat_command(),
            self._imagine_command(),
            *self._conversation_commands(),
            *self._credit_commands(),
            *self._admin_commands(),
            *self._model_commands(),
            *access_commands(self._core),
        ):
            tree.add_command(command)

    @staticmethod
    async def _on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await reply_error(interaction, cause, f"/{interaction.command.name if interaction.command else '?'}")

    @staticmethod
    async def _show(
        interaction: discord.Interaction, work: Callable[[], Awaitable[Reply]], name: str
    ) -> None:
        async def run() -> None:
            answer = await work()
            await reply(interaction, answer.text, ephemeral=answer.private)

        await guarded(interaction, run(), name)

    # ------------------------------------------------------------ chat and pictures

    def _chat_command(self) -> app_commands.Command:
        @app_commands.command(name="chat", description=N_("Ask me something; I remember this conversation."))
        @app_commands.describe(
            prompt=N_("What you want to ask"),
            image=N_("A picture for me to look at"),
            model=N_("Answer with this model"),
            file=N_(
                "A document for me to read (text, Markdown, CSV, JSON, code, logs, PDF) or another picture"
            ),
        )
        @app_commands.choices(model=CHAT_MODEL_CHOICES)
        async def chat(
            interaction: discord.Interaction,
            prompt: str,
            image: discord.Attachment | None = None,
            model: str | None = None,
            file: discord.Attachment | None = None,
        ) -> None:
            attached = [a for a in (image, file) if a is not None]
            await guarded(interaction, self._run_chat(interaction, prompt, attached, model), "/chat")

        return chat

    async def _run_chat(
        self,
        interaction: discord.Interaction,
        prompt: str,
        attached: list[discord.Attachment],
        model: str | None,
    ) -> None:
        # Checks that need no I/O come first, so a mistake gets a clean ephemeral reply.
        if model is not None:
            usable_chat_model(model)  # the place's own list is the core's to check
        deferral = Deferral(interaction)  # the 3-second deadline; the answer gets ready meanwhile
        try:
            files = await download_files(attached, self._config.max_image_bytes)
        except ValidationError as exc:
            await deferral.done()
            await interaction.delete_original_response()
            await reply_error(interaction, exc, "/chat")
            return
        except Exception:
            await deferral.done()  # guarded() tells the person: after the defer, as a follow-up
            raise
        request = ChatRequest(
            user=account(interaction.user),
            place=interaction_place(interaction),
            text=prompt,
            files=files,
            user_name=interaction.user.display_name if interaction.guild_id else "",
        )
        await self._chat.answer_interaction(interaction, with_model(request, model), deferral)

    def _imagine_command(self) -> app_commands.Command:
        @app_commands.command(name="imagine", description=N_("Make a picture from a description."))
        @app_commands.describe(
            prompt=N_("What the picture shows"),
            model=N_("Image model"),
            size=N_("A size preset (or give width and height)"),
            width=described(N_("Width in pixels ({low}-{high})"), low=SIZE_RANGE[0], high=SIZE_RANGE[1]),
            height=described(N_("Height in pixels ({low}-{high})"), low=SIZE_RANGE[0], high=SIZE_RANGE[1]),
            steps=described(
                N_("Steps ({low}-{high}): more is finer and slower"), low=STEPS_RANGE[0], high=STEPS_RANGE[1]
            ),
            cfg=described(
                N_("How closely to follow the prompt ({low}-{high})"),
                low=CFG_SCALE_RANGE[0],
                high=CFG_SCALE_RANGE[1],
            ),
            scheduler=N_("Sampler"),
            negative=N_("What to leave out"),
        )
        @app_commands.choices(model=IMAGE_MODEL_CHOICES, size=SIZE_CHOICES)
        async def imagine(
            interaction: discord.Interaction,
            prompt: str,
            model: str | None = None,
            size: str | None = None,
            width: app_commands.Range[int, SIZE_RANGE[0], SIZE_RANGE[1]] | None = None,
            height: app_commands.Range[int, SIZE_RANGE[0], SIZE_RANGE[1]] | None = None,
            steps: app_commands.Range[int, STEPS_RANGE[0], STEPS_RANGE[1]] | None = None,
            cfg: app_commands.Range[float, CFG_SCALE_RANGE[0], CFG_SCALE_RANGE[1]] | None = None,
            scheduler: str | None = None,
            negative: str | None = None,
        ) -> None:
            async def run() -> None:
                w, h = _size(size, width, height)
                options = ImageOptions(
                    prompt=prompt,
                    negative_prompt=negative,
                    model=model,
                    scheduler=scheduler,
                    steps=steps,
                    cfg_scale=cfg,
                    width=w,
                    height=h,
                )
                await self._images.imagine(interaction, options)

            await guarded(interaction, run(), "/imagine")

        @imagine.autocomplete("scheduler")
        async def schedulers(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            wanted = current.casefold()
            return [app_commands.Choice(name=s, value=s) for s in SCHEDULERS if wanted in s.casefold()][:25]

        return imagine

    # ------------------------------------------------------------ conversation settings

    def _conversation_commands(self) -> list[app_commands.Command]:
        commands = self._core.commands

        @app_commands.command(name="reset", description=N_("Forget this conversation."))
        async def reset(interaction: discord.Interaction) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.reset(actor, place), "/reset")

        @app_commands.command(name="model", description=N_("Show or choose the chat model here."))
        @app_commands.choices(name=CHAT_MODEL_CHOICES)
        async def model(interaction: discord.Interaction, name: str | None = None) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.model(actor, place, name or ""), "/model")

        @app_commands.command(
            name="system", description=N_("Show, set or clear the instructions I follow here.")
        )
        @app_commands.describe(text=N_("New instructions, or “clear”"))
        async def system(interaction: discord.Interaction, text: str | None = None) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.system(actor, place, text or ""), "/system")

        @app_commands.command(
            name="temperature", description=N_("How creative answers are here (0-2, or default).")
        )
        async def temperature(interaction: discord.Interaction, value: str | None = None) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(
                interaction, lambda: commands.temperature(actor, place, value or ""), "/temperature"
            )

        @app_commands.command(name="context", description=N_("One shared memory here, or one per person."))
        @app_commands.choices(
            mode=[
                app_commands.Choice(name=N_("shared by the channel"), value="channel"),
                app_commands.Choice(name=N_("one per person"), value="user"),
            ]
        )
        async def context(interaction: discord.Interaction, mode: str | None = None) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.context(actor, place, mode or ""), "/context")

        @app_commands.command(name="detail", description=N_("How closely I look at pictures here."))
        @app_commands.choices(
            level=[
                app_commands.Choice(name=N_("low: cheapest, up to 512 × 512"), value="low"),
                app_commands.Choice(name=N_("high: up to 768 × 2048, costs more"), value="high"),
                app_commands.Choice(name=N_("auto: the model decides"), value="auto"),
            ]
        )
        async def detail(interaction: discord.Interaction, level: str | None = None) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.detail(actor, place, level or ""), "/detail")

        @app_commands.command(
            name="autothread", description=N_("Open a thread for each conversation started here.")
        )
        @app_commands.guild_only()
        async def autothread(interaction: discord.Interaction, enabled: bool) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)

            async def run() -> Reply:
                await self._core.prefs.update(
                    actor, place, N_("turn auto-threads on or off"), auto_thread=enabled
                )
                return Reply(
                    _("I now open a thread for each conversation here.")
                    if enabled
                    else _("Auto-threads are off here.")
                )

            await self._show(interaction, run, "/autothread")

        @app_commands.command(
            name="language", description=N_("The language I speak with you, or (admins) here.")
        )
        @app_commands.describe(
            language=N_("A language, or automatic (your Discord's)"),
            community=N_("Admins: set it for everyone on this server instead"),
        )
        @app_commands.choices(language=LANGUAGE_CHOICES)
        async def language(
            interaction: discord.Interaction, language: str | None = None, community: bool = False
        ) -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            value = f"{'community ' if community else ''}{language or ''}".strip()
            await self._show(interaction, lambda: commands.language(actor, place, value), "/language")

        @app_commands.command(name="help", description=N_("What I can do."))
        async def help_(interaction: discord.Interaction) -> None:
            await self._show(interaction, _help, "/help")

        return [reset, model, system, temperature, context, detail, autothread, language, help_]

    # ------------------------------------------------------------ credits

    def _credit_commands(self) -> list[app_commands.Command]:
        commands = self._core.commands

        @app_commands.command(name="credits", description=N_("Your balance and spending."))
        async def credits(interaction: discord.Interaction) -> None:
            actor, place = credits_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.credits(actor, place), "/credits")

        @app_commands.command(name="usage", description=N_("Your last charges."))
        async def usage(interaction: discord.Interaction) -> None:
            actor, place = credits_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.usage(actor, place), "/usage")

        @app_commands.command(name="prices", description=N_("What chat and pictures cost."))
        async def prices(interaction: discord.Interaction) -> None:
            await self._show(interaction, commands.prices, "/prices")

        return [credits, usage, prices]

    def _model_commands(self) -> list[app_commands.Command]:
        """Which chat and image models this server may use (shown to all, changed by admins)."""
        commands = self._core.commands

        @app_commands.command(
            name="chatmodels", description=N_("The chat models this server may use (admins: names, or all).")
        )
        @app_commands.describe(models=N_("Model names separated by commas, or “all”"))
        @app_commands.guild_only()
        async def chat_models(interaction: discord.Interaction, models: str = "") -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.chat_models(actor, place, models), "/chatmodels")

        @app_commands.command(
            name="imagemodels",
            description=N_("The image models this server may use (admins: names, or all)."),
        )
        @app_commands.describe(models=N_("Model names separated by commas, or “all”"))
        @app_commands.guild_only()
        async def image_models(interaction: discord.Interaction, models: str = "") -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.image_models(actor, place, models), "/imagemodels")

        return [chat_models, image_models]

    def _admin_commands(self) -> list[app_commands.Command]:
        commands = self._core.commands

        def balance_command(
            name: str,
            description: str,
            action: Callable[[Actor, Account, str, Place | None], Awaitable[Reply]],
        ) -> app_commands.Command:
            @app_commands.command(name=name, description=description)
            @app_commands.describe(user=N_("Whose balance"), amount=N_("Dollars ($5, 0.50) or “500 credits”"))
            @ADMIN
            async def run(interaction: discord.Interaction, user: discord.User, amount: str) -> None:
                actor, place = credits_actor(interaction), interaction_place(interaction)
                await self._show(interaction, lambda: action(actor, account(user), amount, place), f"/{name}")

            return run

        @app_commands.command(
            name="pool", description=N_("Fund this server's pool, or cap what each member takes a day.")
        )
        @app_commands.choices(
            action=[
                app_commands.Choice(name=N_("fund"), value="fund"),
                app_commands.Choice(name=N_("cap"), value="cap"),
            ]
        )
        @app_commands.guild_only()
        @ADMIN
        async def pool(interaction: discord.Interaction, action: str, amount: str = "") -> None:
            actor, place = credits_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.pool(actor, place, action, amount), "/pool")

        @app_commands.command(
            name="spending", description=N_("What this server spent from its pool this month.")
        )
        @app_commands.guild_only()
        @ADMIN
        async def spending(interaction: discord.Interaction) -> None:
            actor, place = credits_actor(interaction), interaction_place(interaction)
            await self._show(interaction, lambda: commands.spending(actor, place), "/spending")

        @app_commands.command(name="startinggrant", description=N_("What new users receive (bot owner)."))
        @ADMIN
        async def starting_grant(interaction: discord.Interaction, amount: str) -> None:
            actor = credits_actor(interaction)
            await self._show(interaction, lambda: commands.starting_grant(actor, amount), "/startinggrant")

        @app_commands.command(
            name="allowance", description=N_("The periodic refill of every balance (bot owner).")
        )
        @app_commands.choices(
            period=[app_commands.Choice(name=p, value=p) for p in ("none", "daily", "weekly")]
        )
        @ADMIN
        async def allowance(
            interaction: discord.Interaction, amount: str, period: str, cap: str = ""
        ) -> None:
            actor = credits_actor(interaction)
            await self._show(
                interaction, lambda: commands.allowance(actor, amount, period, cap), "/allowance"
            )

        return [
            balance_command("grant", N_("Add to a member's balance (admins)."), commands.grant),
            balance_command("take", N_("Take from a member's balance (admins)."), commands.take),
            balance_command("setbalance", N_("Set a member's balance (admins)."), commands.set_balance),
            pool,
            spending,
            starting_grant,
            allowance,
        ]


async def _help() -> Reply:
    with privately():  # ephemeral: the member's language, the commands as their client names them
        return Reply(local_commands(help_text().replace("/ask", "/chat"), current()), private=True)


def _size(size: str | None, width: int | None, height: int | None) -> tuple[int | None, int | None]:
    if size is None:
        return width, height
    if width is not None or height is not None:
        raise ValidationError(_("Give either a size preset or width and height, not both."))
    preset = SIZE_PRESETS.get(size)
    if preset is None:
        raise ValidationError(
            _(
                "I don't know the size “{size}”. Choose one of: {sizes}.",
                size=size,
                sizes=", ".join(SIZE_PRESETS),
            )
        )
    return preset


def with_model(request: ChatRequest, model: str | None) -> ChatRequest:
    """The request answered with ``model`` instead of the channel's (the core validates it)."""
    return request if model is None else dataclasses.replace(request, model=model)
