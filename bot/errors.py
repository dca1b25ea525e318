"""The bot's exceptions, in one place.

Adapters catch these at the edge and show ``exc.user_message`` to the person who
asked; the owner's log gets ``str(exc)`` (which never contains a secret).

    BotError
    ├── UserError                 something the person can fix; shown as it is
    │   ├── ValidationError       a parameter out of range, an unknown model, ...
    │   ├── InsufficientCredits   the reservation does not fit the balance
    │   ├── NotAllowed            an admin command from a non-admin, a model the community forbids
    │   ├── QueueFull             too many requests in flight for this user
    │   ├── SpendingLimitReached  the bot's daily or monthly spending limit would be passed
    │   └── TooFast               over USER_MESSAGES_PER_MINUTE / USER_IMAGES_PER_HOUR
    ├── MiniToolAIError           the upstream API said no, or could not be reached
    │   ├── AuthenticationError   401/403: the owner's API key is wrong
    │   ├── PaymentRequired       402: the owner's MiniToolAI balance is empty
    │   ├── InvalidRequest        400/422: the API refused the parameters
    │   ├── RateLimited           429: carries ``retry_after`` seconds when known
    │   ├── ServiceUnavailable    5xx, timeouts, refused connections (nothing was streamed)
    │   ├── StreamInterrupted     the stream broke after tokens arrived; carries the partial text
    │   ├── JobFailed             an image job reported failure or passed its deadline
    │   └── BadImage              a finished image that is not an image, or too large
    ├── PlatformRateLimited       Telegram or Discord asked us to wait ``retry_after`` seconds
    ├── PlatformUnavailable       Telegram or Discord could not be reached when the bot started
    ├── StorageError              the database could not be opened, migrated or written
    └── ConfigError               a missing or malformed setting, named in the message
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.i18n.catalog import N_, _
from bot.i18n.formats import later, moment, until


class BotError(Exception):
    """Base of every error the bot raises on purpose.

    ``default_message`` is an English catalog entry, translated when ``user_message`` is read (in
    the language of whoever is being answered); a ``user_message`` given when raising is already
    in that language.
    """

    default_message: str = N_("Something went wrong on my side. Please try again in a moment.")

    def __init__(self, message: str = "", *, user_message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self._user_message = user_message

    @property
    def user_message(self) -> str:
        return self._user_message if self._user_message is not None else _(self.default_message)


class UserError(BotError):
    """Something the person who asked can fix; ``str(exc)`` is already polite."""

    def __init__(self, message: str) -> None:
        super().__init__(message, user_message=message)


class ValidationError(UserError):
    """A request parameter is out of range or unknown."""


class InsufficientCredits(UserError):
    """A reservation does not fit the balance; nothing was sent upstream.

    ``str(exc)`` shows the balance: only the person may see it. ``public_message`` is what a
    group or server channel may see.
    """

    @property
    def public_message(self) -> str:
        return _("You don't have enough credit for this.")

    def __init__(self, message: str, *, balance: int = 0, needed: int = 0) -> None:
        super().__init__(message)
        self.balance = balance
        self.needed = needed


class NotAllowed(UserError):
    """The person may not do this here (admin command, forbidden model)."""


class QueueFull(UserError):
    """The person already has as many requests waiting as allowed."""


class SpendingLimitReached(UserError):
    """The bot-wide spending limit of a period (``"day"`` or ``"month"``) would be passed."""

    def __init__(
        self,
        message: str = "",
        *,
        period: str = "day",
        key: str = "",
        limit: int = 0,
        now: datetime | None = None,
        resets: datetime | None = None,
    ) -> None:
        if not message and now is not None and resets is not None:  # when it ends, in words
            soon = {"relative": until(resets, now), "when": moment(resets)}
            message = (
                _(
                    "The bot has reached the daily spending limit its owner set, so I can't do this now. "
                    "Please try again {relative} (after {when}). You were not charged.",
                    **soon,
                )
                if period == "day"
                else _(
                    "The bot has reached the monthly spending limit its owner set, so I can't do this now. "
                    "Please try again {relative} (after {when}). You were not charged.",
                    **soon,
                )
            )
        super().__init__(
            message
            or (
                _(
                    "The bot has reached the daily spending limit its owner set, so I can't do this now. "
                    "Please try again tomorrow (after 00:00 UTC). You were not charged."
                )
                if period == "day"
                else _(
                    "The bot has reached the monthly spending limit its owner set, so I can't do this now. "
                    "Please try again next month. You were not charged."
                )
            )
        )
        self.period = period
        self.key = key
        self.limit = limit


class TooFast(UserError):
    """More requests than the owner allows per minute or hour; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MiniToolAIError(BotError):
    """The MiniToolAI API refused a request or could not be reached."""

    default_message = N_("The AI service could not answer right now. Please try again in a moment.")

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        body: str = "",
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.status = status
        # The raw body is kept for the owner's log; it never contains our key.
        self.body = body[:2000]


class AuthenticationError(MiniToolAIError):
    default_message = N_(
        "The bot's owner needs to top up or check their MiniToolAI account, so I can't answer "
        "right now. You were not charged."
    )


class PaymentRequired(MiniToolAIError):
    default_message = N_(
        "The bot's owner needs to top up their MiniToolAI balance, so I can't answer right now. "
        "You were not charged."
    )


class InvalidRequest(MiniToolAIError):
    default_message = N_(
        "The AI service refused this request as invalid. Please rephrase or change the options."
    )


class RateLimited(MiniToolAIError):
    default_message = N_("The AI service is busy (rate limited). Please try again in a few seconds.")

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:
        """With the service's Retry-After: when to try again, in words (``in 2 minutes``)."""
        if self._user_message is None and self.retry_after is not None and self.retry_after > 0:
            return _(
                "The AI service is busy (rate limited). Please try again {relative}.",
                relative=later(timedelta(seconds=self.retry_after)),
            )
        return super().user_message


class ServiceUnavailable(MiniToolAIError):
    default_message = N_("The AI service is unavailable right now. Please try again in a moment.")


@dataclass(frozen=True, slots=True)
class PartialAnswer:
    """What had streamed before a stream broke."""

    text: str
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


class StreamInterrupted(MiniToolAIError):
    default_message = N_("The answer was cut off because the connection to the AI service broke.")

    def __init__(self, message: str = "", *, partial: PartialAnswer, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.partial = partial


class JobFailed(MiniToolAIError):
    default_message = N_("The image could not be generated. You were not charged for it.")


class BadImage(MiniToolAIError):
    default_message = N_("The finished image could not be downloaded safely. You were not charged for it.")


class PlatformRateLimited(BotError):
    """A platform refused a send or edit for now; the presenter waits ``retry_after`` and retries."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"platform asked to wait {retry_after:.2f}s")
        self.retry_after = retry_after


class PlatformUnavailable(BotError):
    """A platform could not be reached at start; the message names the platform and the URL."""


class StorageError(BotError):
    """The database could not be opened, migrated or written."""

    default_message = N_("I could not save this right now. Please try again in a moment.")


class ConfigError(BotError):
    """A missing or malformed setting; the message names the variable."""
