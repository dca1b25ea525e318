"""Exact prices in integer micro-dollars (1 USD = 1_000_000).

No float ever takes part: amounts are ints, the markup is a ``Fraction`` and the
config parser goes through ``Decimal``. Costs round up once, over a whole request,
so the bot never charges less than MiniToolAI charged it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType

from bot.minitoolai import models
from bot.minitoolai.types import Usage

MICRO = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # chat prices are per 1M tokens


@dataclass(frozen=True, slots=True)
class ChatPrice:
    """Micro-dollars per 1M input and per 1M output tokens."""

    input: int
    output: int


DEFAULT_CHAT_PRICES: Mapping[str, ChatPrice] = MappingProxyType(
    {
        "gpt-4o-mini": ChatPrice(150_000, 600_000),
        "gpt-4o": ChatPrice(2_500_000, 10_000_000),
        "gpt-4.1": ChatPrice(2_000_000, 8_000_000),
        "gpt-4.1-mini": ChatPrice(400_000, 1_600_000),
        "gpt-4.1-nano": ChatPrice(100_000, 400_000),
    }
)
DEFAULT_IMAGE_PRICE = 1_500  # $0.0015, the same for every image model
DEFAULT_IMAGE_PRICES: Mapping[str, int] = MappingProxyType(
    dict.fromkeys(models.IMAGE_MODELS, DEFAULT_IMAGE_PRICE)
)

MarkupLike = Fraction | int | tuple[int, int]


def as_markup(value: MarkupLike) -> Fraction:
    """Turn a Fraction, an int or a (numerator, denominator) pair into a markup >= 0."""
    if isinstance(value, tuple):
        numerator, denominator = value
        markup = Fraction(numerator, denominator)
    else:
        markup = Fraction(value)
    if markup < 0:
        raise ValueError(f"The price markup must not be negative (got {markup}).")
    return markup


def _ceil(value: Fraction) -> int:
    # -(-a // b) is ceiling division on exact integers.
    return -(-value.numerator // value.denominator)


@dataclass(frozen=True, slots=True)
class PriceOverrides:
    """Prices parsed from a config string; only what the string names."""

    chat: Mapping[str, ChatPrice] = field(default_factory=dict)
    image: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """What each model costs the bot's users, markup included."""

    chat: Mapping[str, ChatPrice] = field(default_factory=lambda: DEFAULT_CHAT_PRICES)
    image: Mapping[str, int] = field(default_factory=lambda: DEFAULT_IMAGE_PRICES)
    markup: Fraction = Fraction(1)

    def with_overrides(
        self,
        overrides: PriceOverrides | None = None,
        *,
        markup: MarkupLike | None = None,
    ) -> PriceTable:
        """A copy with some prices (and/or the markup) replaced."""
        chat = dict(self.chat)
        image = dict(self.image)
        if overrides is not None:
            chat.update(overrides.chat)
            image.update(overrides.image)
        return dataclasses.replace(
            self,
            chat=MappingProxyType(chat),
            image=MappingProxyType(image),
            markup=self.markup if markup is None else as_markup(markup),
        )

    def chat_cost(self, model: str, usage: Usage) -> int:
        """The settled price of a finished chat request, rounded up to a micro-dollar."""
        return self._tokens_cost(model, usage.prompt_tokens, usage.completion_tokens)

    def chat_worst_case(self, model: str, prompt_tokens: int, max_completion_tokens: int) -> int:
        """The most a request can cost: what to reserve before sending it."""
        return self._tokens_cost(model, prompt_tokens, max_completion_tokens)

    def image_cost(self, model: str) -> int:
        """The price of one generated image."""
        try:
            base = self.image[model]
        except KeyError:
            raise ValueError(f"No image price for model {model!r}.") from None
        return _ceil(base * self.markup)

    def _tokens_cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        try:
            price = self.chat[model]
        except KeyError:
            raise ValueError(f"No chat price for model {model!r}.") from None
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("Token counts must not be negative.")
        per_million = prompt_tokens * price.input + completion_tokens * price.output
        return _ceil(Fraction(per_million, TOKENS_PER_PRICE_UNIT) * self.markup)


def parse_price_overrides(text: str) -> PriceOverrides:
    """Parse ``"gpt-4o=2.5/10,gpt-4o-mini=0.15/0.6,image=0.0015"`` (US dollars).

    A chat model takes ``input/output`` dollars per 1M tokens; ``image=`` sets every
    image model, ``image:<model>=`` one of them. Raises ``ValueError`` naming the bad part.
    """
    chat: dict[str, ChatPrice] = {}
    image: dict[str, int] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"Bad price entry {part!r}: expected name=price.")
        if name == "image":
            image.update(dict.fromkeys(models.IMAGE_MODELS, _dollars(value, part)))
        elif name.startswith("image:"):
            image_model = name.removeprefix("image:").strip()
            if image_model not in models.IMAGE_MODELS:
                raise ValueError(f"Bad price entry {part!r}: unknown image model.")
            image[image_model] = _dollars(value, part)
        elif name in models.CHAT_MODELS:
            chat[name] = _chat_price(value, part)
        else:
            raise ValueError(f"Bad price entry {part!r}: unknown model {name!r}.")
    return PriceOverrides(chat=chat, image=image)


def _chat_price(value: str, part: str) -> ChatPrice:
    input_text, sep, output_text = value.partition("/")
    if not sep:
        raise ValueError(f"Bad price entry {part!r}: expected input/output dollars per 1M tokens.")
    return ChatPrice(_dollars(input_text, part), _dollars(output_text, part))


def _dollars(text: str, part: str) -> int:
    """Exact dollars -> micro-dollars; refuses anything finer than a micro-dollar."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"Bad price entry {part!r}: {text.strip()!r} is not a number.") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"Bad price entry {part!r}: prices must be finite and not negative.")
    micro = Fraction(amount) * MICRO  # Fraction(Decimal) is exact, unlike Decimal's context
    if micro.denominator != 1:
        raise ValueError(f"Bad price entry {part!r}: finer than a millionth of a dollar.")
    return micro.numerator
