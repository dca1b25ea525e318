"""The one typed settings object, read from the environment and ``.env`` and validated at start.

Only the composition root (``bot.__main__``) reads it; everything else receives plain values.
Every field is documented in ``.env.example``; keep the two in step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.i18n.catalog import LANGUAGES, normalize
from bot.minitoolai.models import CHAT_MODELS, IMAGE_MODELS


def _http_url(value: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in schemes or not rest or " " in value:
        raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Everything a server owner can set. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # --- MiniToolAI
    minitoolai_api_key: SecretStr | None = None
    minitoolai_base_url: str = "https://minitoolai.com"
    minitoolai_connect_timeout: float = Field(10.0, gt=0)
    minitoolai_first_token_timeout: float = Field(60.0, gt=0)
    minitoolai_idle_timeout: float = Field(60.0, gt=0)
    minitoolai_total_timeout: float = Field(600.0, gt=0)

    # --- chat defaults
    default_chat_model: str = "gpt-4o-mini"
    default_system_prompt: str = (
        "You are a helpful assistant in a group chat. Answer concisely, in the language you are asked in."
    )
    max_completion_tokens: int = Field(1000, ge=1, le=16384)
    default_temperature: float | None = Field(None, ge=0, le=2)
    context_margin_tokens: int = Field(256, ge=0)
    max_context_tokens: int = Field(16000, ge=1000)
    conversation_max_age_days: int = Field(90, ge=0)
    conversation_keep_turns: int = Field(500, ge=0)
    # --- attachments (pictures and documents members send)
    context_max_pictures: int = Field(2, ge=0, le=20)
    max_document_kb: int = Field(200, ge=1, le=10_000)

    # --- images
    default_image_model: str = "dreamshaper"
    image_per_user_limit: int = Field(3, ge=1)
    image_global_concurrency: int = Field(4, ge=1)
    image_deadline_seconds: float = Field(300.0, gt=0)
    image_poll_initial_seconds: float = Field(1.0, gt=0)
    image_poll_max_seconds: float = Field(3.0, gt=0)
    image_max_download_mb: float = Field(20.0, gt=0)
    image_progress_interval_seconds: float = Field(3.0, ge=0)

    # --- platforms
    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    discord_dev_guild_id: int | None = None
    discord_shard_ids: str = ""
    discord_shard_count: int | None = Field(None, ge=1)
    discord_message_content: bool = True
    telegram_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "0.0.0.0:8443"
    telegram_pace_scale: float = Field(1.0, gt=0, le=1)

    # --- storage
    database_url: str = "sqlite:///data/bot.sqlite3"

    # --- several processes (PostgreSQL)
    process_lease_seconds: float = Field(30.0, gt=0, le=3600)
    redis_url: str | None = None

    # --- credits (amounts in dollars; the core works in integer micro-dollars)
    starting_grant_usd: Decimal = Field(Decimal("0.25"), ge=0)
    allowance_usd: Decimal = Field(Decimal("0"), ge=0)
    allowance_period: Literal["none", "daily", "weekly"] = "none"
    allowance_cap_usd: Decimal = Field(Decimal("0.25"), ge=0)
    credits_per_dollar: int = Field(0, ge=0)
    price_markup: Decimal = Field(Decimal("1"), gt=0)
    price_overrides: str = ""
    pool_order: Literal["pool_first", "own_first"] = "pool_first"
    bot_admin_ids: str = ""
    trust_community_admins: bool = False

    # --- limits: how much (bot-wide, 0 = none) and how fast (per member, 0 = off)
    spending_limit_daily_usd: Decimal = Field(Decimal("0"), ge=0)
    spending_limit_monthly_usd: Decimal = Field(Decimal("0"), ge=0)
    user_messages_per_minute: int = Field(0, ge=0)
    user_images_per_hour: int = Field(0, ge=0)
    new_user_grants_per_day: int = Field(0, ge=0)
    # --- who and where (comma-separated platform:id; nothing set = everyone)
    allowed_users: str = ""
    blocked_users: str = ""
    allowed_chats: str = ""
    blocked_chats: str = ""
    allowed_roles: str = ""
    allow_private: bool = True
    # --- Telegram Stars: members buy credit (empty STARS_PACKS = off)
    stars_packs: str = ""
    stars_usd_per_star: Decimal = Field(Decimal("0.013"), gt=0)

    # --- operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    metrics_listen: str = ""  # host:port for /healthz, /readyz and /metrics; empty = off

    # --- languages (bot.i18n): when neither the member, their community nor their app says
    default_language: str = "en"

    @field_validator("default_language")
    @classmethod
    def _check_language(cls, value: str) -> str:
        language = normalize(value)
        if language is None:
            raise ValueError(f"expected one of {', '.join(LANGUAGES)} (or no, nn, nb-NO, tr-TR, ...)")
        return language

    @field_validator(
        "minitoolai_base_url", "discord_api_base_url", "telegram_api_base_url", "telegram_file_base_url"
    )
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("telegram_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        return None if not value else _http_url(value, schemes=("https",))

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://host:port/db (or rediss:// for TLS)")
        return value or None

    @field_validator("discord_gateway_url")
    @classmethod
    def _check_ws_url(cls, value: str | None) -> str | None:
        return None if not value else _http_url(value, schemes=("ws", "wss"))

    @field_validator("default_image_model")
    @classmethod
    def _check_image_model(cls, value: str) -> str:
        if value not in IMAGE_MODELS:
            raise ValueError(f"expected one of {', '.join(IMAGE_MODELS)}")
        return value

    @field_validator("default_chat_model")
    @classmethod
    def _check_chat_model(cls, value: str) -> str:
        if value not in CHAT_MODELS:
            raise ValueError(f"expected one of {', '.join(CHAT_MODELS)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///path/to/file.sqlite3 or postgresql://user@host:port/db")
        return value

    @field_validator(
        "minitoolai_api_key", "discord_token", "telegram_token", "telegram_webhook_secret", mode="before"
    )
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.bot_admin_ids.split(",") if part.strip())

    @property
    def shard_ids(self) -> list[int] | None:
        """``DISCORD_SHARD_IDS=0,1`` for this process's shards; None = let discord.py decide."""
        parts = [p.strip() for p in self.discord_shard_ids.split(",") if p.strip()]
        return [int(p) for p in parts] if parts else None

    @field_validator("discord_shard_ids")
    @classmethod
    def _check_shard_ids(cls, value: str) -> str:
        if any(not p.strip().isdigit() for p in value.split(",") if p.strip()):
            raise ValueError("expected shard numbers separated by commas, e.g. 0,1")
        return value

    @field_validator("allowed_users", "blocked_users", "allowed_chats", "blocked_chats", "allowed_roles")
    @classmethod
    def _check_id_list(cls, value: str, info: ValidationInfo) -> str:
        for part in (p.strip() for p in value.split(",")):
            platform, sep, number = part.partition(":")
            if not part:
                continue
            if not sep or platform.lower() not in ("telegram", "discord") or not number.lstrip("-").isdigit():
                raise ValueError(
                    "expected platform:id items separated by commas, e.g. telegram:12345,discord:98765"
                )
            if info.field_name == "allowed_roles" and platform.lower() != "discord":
                raise ValueError("roles are Discord's: expected discord:<role id> items")
        return value

    @field_validator("stars_packs")
    @classmethod
    def _check_stars_packs(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if any(not p.isdigit() or not 1 <= int(p) <= 10_000 for p in parts):
            raise ValueError("expected Star amounts from 1 to 10000 separated by commas, e.g. 50,100,500")
        return value

    @field_validator("stars_usd_per_star")
    @classmethod
    def _check_usd_per_star(cls, value: Decimal) -> Decimal:
        if (value * 1_000_000) % 1:
            raise ValueError("expected dollars with at most six decimals, e.g. 0.013")
        return value

    @property
    def stars_pack_list(self) -> tuple[int, ...]:
        """``STARS_PACKS=50,100,500`` as sorted distinct Star amounts; () = members cannot buy credit."""
        return tuple(sorted({int(p) for p in self.stars_packs.split(",") if p.strip()}))

    @field_validator("telegram_webhook_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port, e.g. 0.0.0.0:8443")
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _check_metrics_listen(cls, value: str) -> str:
        value = value.strip()
        host, sep, port = value.rpartition(":")
        if value and (not sep or not host or not port.isdigit() or int(port) > 65535):
            raise ValueError("expected host:port, e.g. 127.0.0.1:9108 (or empty for no endpoint)")
        return value


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read and validate the settings, or raise ConfigError naming every bad variable.

    The message never contains a value: a mistyped token must not end up in a log.
    """
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            reason = error["msg"].removeprefix("Value error, ")
            problems.append(f"  {name}: {reason}")
        raise ConfigError("Some settings are not valid:\n" + "\n".join(problems)) from None


MISSING_KEY_HELP = """\
MiniToolAI Bot needs your MiniToolAI API key before it can answer anyone.

Put it in a file called .env next to this README (copy .env.example to start):

    MINITOOLAI_API_KEY=your-key-from-minitoolai.com

Then, optionally, add a platform token to serve a community:

    TELEGRAM_TOKEN=123456:ABC...   (from @BotFather)
    DISCORD_TOKEN=...              (from the Discord developer portal)

With no platform token the bot opens a chat right here in the terminal.
"""
