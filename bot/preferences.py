"""Per-channel and per-community choices: model, system prompt, temperature, context mode.

A channel's own setting wins over its parent channel's (for a thread), then its community's,
then the owner's defaults.
Changing a setting in a community needs an admin; in a private chat the person is the admin
(the adapter says so through ``Actor.is_platform_admin``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bot.errors import NotAllowed, ValidationError
from bot.i18n import N_, _
from bot.minitoolai.models import CHAT_MODELS, IMAGE_MODELS
from bot.ports import Actor, ChannelSettings, ContextMode, Place, SettingsStore

MAX_SYSTEM_PROMPT_CHARS = 4000


@dataclass(frozen=True, slots=True)
class ChatDefaults:
    """The owner's defaults, from settings."""

    model: str
    system_prompt: str
    temperature: float | None
    image_model: str


@dataclass(frozen=True, slots=True)
class Effective:
    """What actually applies in a channel after inheritance."""

    model: str
    system_prompt: str
    temperature: float | None
    context_mode: ContextMode
    image_model: str
    allowed_image_models: tuple[str, ...]  # () = every model
    allowed_chat_models: tuple[str, ...]  # () = every model
    auto_thread: bool
    extra: dict[str, Any]


class Preferences:
    def __init__(self, store: SettingsStore, defaults: ChatDefaults, admin_ids: frozenset[str]) -> None:
        self._store = store
        self._defaults = defaults
        self._admin_ids = admin_ids

    @property
    def store(self) -> SettingsStore:
        return self._store

    def is_admin(self, actor: Actor) -> bool:
        account = actor.account
        return actor.is_platform_admin or f"{account.platform}:{account.holder}" in self._admin_ids

    def require_admin(self, actor: Actor, what: str) -> None:
        if not self.is_admin(actor):
            raise NotAllowed(_("Only admins of this server or group can {what}.", what=_(what)))

    async def effective(self, place: Place) -> Effective:
        # The channel's own, then its parent's (a thread's), then the community's: one read.
        places = [p for p in (place if place.channel else None, place.parent_place) if p is not None]
        stored = await self._store.get_settings_many([*places, place.community])
        layers = [s for s in stored if s is not None]

        def pick(name: str, fallback: Any) -> Any:
            for layer in layers:
                value = getattr(layer, name)
                if value is not None:
                    return value
            return fallback

        extra: dict[str, Any] = {}
        for layer in reversed(layers):
            extra.update(layer.extra)
        d = self._defaults
        allowed_chat = tuple(pick("allowed_chat_models", ()))
        model = pick("model", d.model)
        if allowed_chat and model not in allowed_chat:
            model = allowed_chat[0]  # the chosen model was restricted away; the first allowed one stands in
        return Effective(
            model=model,
            system_prompt=pick("system_prompt", d.system_prompt),
            temperature=pick("temperature", d.temperature),
            context_mode=pick("context_mode", "channel"),
            image_model=pick("image_model", d.image_model),
            allowed_image_models=tuple(pick("allowed_image_models", ())),
            allowed_chat_models=allowed_chat,
            auto_thread=bool(pick("auto_thread", False)),
            extra=extra,
        )

    async def update(self, actor: Actor, place: Place, what: str, **changes: Any) -> ChannelSettings:
        """Change fields of a place's own settings (``place.channel == ""`` for the community)."""
        self.require_admin(actor, what)
        current = await self._store.get_settings(place) or ChannelSettings()
        updated = dataclasses.replace(current, **changes)
        await self._store.put_settings(place, updated)
        return updated

    async def set_model(self, actor: Actor, place: Place, model: str) -> str:
        name = usable_chat_model(model, (await self.effective(place)).allowed_chat_models)
        await self.update(actor, place, N_("change the model"), model=name)
        return name

    async def set_chat_models(self, actor: Actor, place: Place, allowed: tuple[str, ...]) -> None:
        """Restrict the chat models a community may use (``()`` = every model)."""
        for name in allowed:
            if name not in CHAT_MODELS:
                raise ValidationError(
                    _(
                        "I don't know the chat model “{model}”. Choose from: {models}.",
                        model=name,
                        models=", ".join(CHAT_MODELS),
                    )
                )
        await self.update(
            actor, place.community, N_("change the allowed models"), allowed_chat_models=allowed
        )

    async def set_system_prompt(self, actor: Actor, place: Place, prompt: str | None) -> None:
        if prompt is not None:
            prompt = prompt.strip()
            if not prompt:
                raise ValidationError(
                    _("The system prompt is empty. Give some text, or use clear to remove it.")
                )
            if len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
                raise ValidationError(
                    _(
                        "The system prompt is too long ({length} characters; at most {limit}).",
                        length=len(prompt),
                        limit=MAX_SYSTEM_PROMPT_CHARS,
                    )
                )
        await self.update(actor, place, N_("change the system prompt"), system_prompt=prompt)

    async def set_temperature(self, actor: Actor, place: Place, value: float | None) -> None:
        if value is not None and not 0 <= value <= 2:
            raise ValidationError(_("Temperature must be between 0 and 2 (you gave {value}).", value=value))
        await self.update(actor, place, N_("change the temperature"), temperature=value)

    async def set_context_mode(self, actor: Actor, place: Place, mode: str) -> ContextMode:
        if mode not in ("channel", "user"):
            raise ValidationError(
                _("Context mode is either “channel” (shared memory) or “user” (one per person).")
            )
        chosen: ContextMode = "channel" if mode == "channel" else "user"
        await self.update(actor, place, N_("change the context mode"), context_mode=chosen)
        return chosen

    async def set_picture_detail(self, actor: Actor, place: Place, detail: str) -> str:
        """The ``detail`` pictures are sent with here (``low``, ``high`` or ``auto``), kept in ``extra``."""
        chosen = detail.strip().lower()
        if chosen not in ("low", "high", "auto"):
            raise ValidationError(
                _(
                    "Picture detail is “low” (cheapest: the model sees 512 × 512 at most), “high” (the model "
                    "sees up to 768 × 2048, and it costs more) or “auto” (the model decides)."
                )
            )
        self.require_admin(actor, N_("change the picture detail"))
        current = await self._store.get_settings(place) or ChannelSettings()
        extra = {**current.extra, "detail": chosen}
        await self._store.put_settings(place, dataclasses.replace(current, extra=extra))
        return chosen

    async def set_image_models(
        self,
        actor: Actor,
        place: Place,
        *,
        default: str | None = None,
        allowed: tuple[str, ...] | None = None,
    ) -> None:
        for name in (*(allowed or ()), *((default,) if default else ())):
            if name not in IMAGE_MODELS:
                raise ValidationError(
                    _(
                        "I don't know the image model “{model}”. Choose from: {models}.",
                        model=name,
                        models=", ".join(IMAGE_MODELS),
                    )
                )
        changes: dict[str, Any] = {}
        if default is not None:
            changes["image_model"] = default
        if allowed is not None:
            changes["allowed_image_models"] = allowed
        await self.update(actor, place.community, N_("change the image models"), **changes)


def usable_chat_model(model: str, allowed: tuple[str, ...] = ()) -> str:
    """``model`` as the chat model's name (case and spaces aside), if it exists and ``allowed``
    (``()``: every model) lets the place use it; else the reason, for the person."""
    name = model.strip().lower()
    if name not in CHAT_MODELS:
        raise ValidationError(
            _(
                "I don't know the model “{model}”. Choose one of: {models}.",
                model=model,
                models=", ".join(CHAT_MODELS),
            )
        )
    if allowed and name not in allowed:
        raise NotAllowed(
            _(
                "The chat model {model} is not allowed here. Choose one of: {models}.",
                model=name,
                models=", ".join(allowed),
            )
        )
    return name
