"""Invoice payloads that cannot be forged, changed or replayed for another member.

A payload names the pack (its Stars), the credit it buys (micro-dollars, fixed when the invoice was
made, so a later change of rate never changes a shown offer), the member, an expiry and a random
nonce, followed by an HMAC-SHA256 tag over all of it. The key is derived from one of the bot's own
secrets (:func:`derive_key`) and never leaves this module's callers; payloads carry only the tag.

    stars1.<stars>.<credit>.<platform>.<holder>.<expires unix>.<nonce>.<tag>

At most 128 bytes, as Telegram requires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.ports import Account

__all__ = ["MAX_PAYLOAD_BYTES", "InvoicePayload", "derive_key", "read_payload", "sign_payload"]

PREFIX = "stars1"
MAX_PAYLOAD_BYTES = 128  # Telegram's limit on an invoice payload
_TAG_BYTES = 16  # 128 bits of HMAC-SHA256: far beyond guessing
_KEY_PURPOSE = b"minitoolai-bot/telegram-stars-payload/v1"


def derive_key(secret: str) -> bytes:
    """A key for payloads only, derived from a secret of the bot (e.g. its Telegram token).

    The secret itself is never used as a key, so a payload tag reveals nothing about it.
    """
    return hmac.new(secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class InvoicePayload:
    """What a payload says: which pack, for whom, until when."""

    stars: int
    credit: int  # micro-dollars
    member: Account
    expires: datetime
    nonce: str

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


def sign_payload(key: bytes, payload: InvoicePayload) -> str:
    body = _body(payload)
    text = f"{body}.{_tag(key, body)}"
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError("The invoice payload would be longer than Telegram allows.")
    return text


def new_nonce() -> str:
    return secrets.token_hex(4)


def read_payload(key: bytes, text: str) -> InvoicePayload | None:
    """The payload if ``text`` is one this key signed (expired or not); None for anything else."""
    body, dot, tag = text.rpartition(".")
    if not dot or not hmac.compare_digest(tag.encode(), _tag(key, body).encode()):
        return None
    parts = body.split(".")
    if len(parts) != 7 or parts[0] != PREFIX:
        return None
    _, stars, credit, platform, holder, expires, nonce = parts
    if not (stars.isdigit() and credit.isdigit() and expires.isdigit()):
        return None
    return InvoicePayload(
        int(stars), int(credit), Account(platform, holder), datetime.fromtimestamp(int(expires), UTC), nonce
    )


def _body(payload: InvoicePayload) -> str:
    fields = (payload.member.platform, payload.member.holder, payload.nonce)
    if any("." in field or not field for field in fields):
        raise ValueError("Payload fields must be non-empty and contain no dots.")
    expires = int(payload.expires.timestamp())
    return ".".join(
        (PREFIX, str(payload.stars), str(payload.credit), *fields[:2], str(expires), payload.nonce)
    )


def _tag(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
