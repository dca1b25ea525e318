"""What both backends share: DATABASE_URL parsing, JSON and time helpers, row -> value conversion.

Rows from ``sqlite3`` and from ``asyncpg`` are both indexable by column name, so one set of
converters turns either into the core's values (``bot.ports``). SQLite keeps timestamps as UTC
text (``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts like time); PostgreSQL keeps ``timestamptz``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from bot.errors import StorageError
from bot.ports import (
    Account,
    ChannelSettings,
    ImageJob,
    LedgerEntry,
    Place,
    Reservation,
    StoredImage,
    Turn,
)

logger = logging.getLogger(__name__)

URL_FORMS = (
    "sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3, sqlite:///:memory: "
    "or postgresql://user:password@host:5432/dbname"
)

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class Row(Protocol):
    """A result row of either driver: ``sqlite3.Row`` or ``asyncpg.Record``."""

    def __getitem__(self, key: str | int, /) -> Any: ...

    def keys(self) -> Any: ...


# ---------------------------------------------------------------- DATABASE_URL


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed DATABASE_URL. ``where`` is safe to log: a path, or host:port without credentials."""

    backend: Literal["sqlite", "postgres"]
    url: str
    where: str
    sqlite_path: str = ""  # ":memory:" or a file path, for SQLite only

    @property
    def is_memory(self) -> bool:
        return self.sqlite_path == ":memory:"


def _bad_url(problem: str) -> StorageError:
    return StorageError(f"DATABASE_URL {problem}; expected one of: {URL_FORMS}.")


def parse_database_url(url: str) -> DatabaseTarget:
    """Recognise the accepted DATABASE_URL forms; never echo the URL itself (it may hold a password)."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _bad_url("is not a URL")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _parse_sqlite(url, rest)
    if scheme in ("postgresql", "postgres"):
        return _parse_postgres(url)
    raise _bad_url(f"has the unsupported scheme {scheme[:20]!r}")


def _parse_sqlite(url: str, rest: str) -> DatabaseTarget:
    # "sqlite:///x" leaves "/x": an empty host and a relative path; "sqlite:////x" is absolute.
    if not rest.startswith("/") or "?" in rest or "#" in rest:
        raise _bad_url("is not a valid sqlite URL (it needs three slashes and no host or query)")
    path = rest[1:]
    if not path or path.endswith("/"):
        raise _bad_url("names no SQLite file")
    return DatabaseTarget("sqlite", url, path, sqlite_path=path)


def _parse_postgres(url: str) -> DatabaseTarget:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        raise _bad_url("is not a valid postgresql URL (check the host and port)") from None
    if "," in parts.netloc:
        host = parts.netloc.rpartition("@")[2]  # several hosts: name them all, without credentials
        return DatabaseTarget("postgres", url, host)
    return DatabaseTarget("postgres", url, f"{host}:{port}")


# ---------------------------------------------------------------- time, ids, JSON


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def as_utc(value: str | datetime | None) -> datetime | None:
    """A stored timestamp (SQLite text or PostgreSQL timestamptz) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    try:
        # Our own text has no offset; appending one is several times faster than .replace().
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:
        return to_utc(datetime.fromisoformat(value))  # text that carries its own offset


def sqlite_time(moment: datetime) -> str:
    return to_utc(moment).strftime(SQLITE_TIME_FORMAT)


def new_id() -> str:
    return uuid.uuid4().hex


def dump_json(value: Any) -> str:
    """Compact, key-sorted JSON; tuples become lists. Non-JSON values are a programming error."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def load_mapping(text: str | None) -> dict[str, Any]:
    value = load_json(text)
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- values <-> rows


def settings_to_json(settings: ChannelSettings) -> str:
    # Field by field rather than asdict(): ``extra`` may be any Mapping, which asdict cannot copy.
    data = {f.name: getattr(settings, f.name) for f in fields(ChannelSettings)}
    data["extra"] = dict(settings.extra)
    return dump_json(data)


def settings_from_json(text: str) -> ChannelSettings:
    data = load_mapping(text)
    known = {f.name for f in fields(ChannelSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        # Written by a newer version: keep what we understand rather than failing.
        logger.warning("ignoring unknown channel settings fields %s", unknown)
    values = {k: v for k, v in data.items() if k in known}
    for name in ("allowed_image_models", "allowed_chat_models"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    values["extra"] = dict(values.get("extra") or {})
    return ChannelSettings(**values)


def turn_from_row(row: Row, images: tuple[StoredImage, ...] = ()) -> Turn:
    return Turn(
        role=row["role"],
        text=row["text"],
        tokens=row["tokens"],
        author_id=row["author_id"],
        images=images,
        message_ids=_message_ids(row["message_ids"]),
        status=row["status"],
        id=row["id"],
        created_at=as_utc(row["created_at"]),
    )


def _message_ids(text: str) -> tuple[str, ...]:
    # Most turns have none; skipping json.loads for them is measurable in load_context.
    return () if text == "[]" else tuple(load_json(text) or ())


def entry_from_row(row: Row) -> LedgerEntry:
    return LedgerEntry(
        account=Account(row["platform"], row["holder"]),
        kind=row["kind"],
        amount=row["amount"],
        balance_after=row["balance_after"],
        reason=row["reason"],
        idempotency_key=row["idempotency_key"],
        reservation_id=row["reservation_id"],
        meta=load_mapping(row["meta"]),
        id=row["id"],
        created_at=as_utc(row["created_at"]),
    )


def reservation_from_row(row: Row) -> Reservation:
    spender = None
    if row["spender_holder"] is not None:
        spender = Account(row["spender_platform"], row["spender_holder"])
    return Reservation(
        id=row["id"],
        account=Account(row["platform"], row["holder"]),
        amount=row["amount"],
        purpose=row["purpose"],
        state=row["state"],
        spender=spender,
        charged=row["charged"],
        meta=load_mapping(row["meta"]),
        created_at=as_utc(row["created_at"]),
        closed_at=as_utc(row["closed_at"]),
    )


def job_from_row(row: Row) -> ImageJob:
    return ImageJob(
        id=row["id"],
        requester=Account(row["requester_platform"], row["requester_holder"]),
        place=Place(row["platform"], row["scope"], row["channel"]),
        params=load_mapping(row["params"]),
        state=row["state"],
        reservation_id=row["reservation_id"],
        jobid=row["jobid"],
        signature=row["signature"],
        attempts=row["attempts"],
        cost=row["cost"],
        progress_message=row["progress_message"],
        result_message=row["result_message"],
        error=row["error"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        deadline_at=as_utc(row["deadline_at"]),
    )


def job_columns(job: ImageJob) -> dict[str, object]:
    """Every stored field of a job except the timestamps the store manages."""
    return {
        "requester_platform": job.requester.platform,
        "requester_holder": job.requester.holder,
        "platform": job.place.platform,
        "scope": job.place.scope,
        "channel": job.place.channel,
        "params": dump_json(dict(job.params)),
        "state": job.state,
        "reservation_id": job.reservation_id,
        "jobid": job.jobid,
        "signature": job.signature,
        "attempts": job.attempts,
        "cost": job.cost,
        "progress_message": job.progress_message,
        "result_message": job.result_message,
        "error": job.error,
        "deadline_at": None if job.deadline_at is None else to_utc(job.deadline_at),
    }


def meta_json(meta: Mapping[str, Any] | None) -> str:
    return dump_json(dict(meta or {}))


# ---------------------------------------------------------------- migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files of ``<package>/migrations``, in order."""
    found: list[Migration] = []
    for item in (resources.files(package) / "migrations").iterdir():
        name = item.name
        if not name.endswith(".sql") or not name[:4].isdigit():
            continue
        found.append(Migration(int(name[:4]), name, item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(f"The migrations of {package} are not numbered 1..n without gaps: {versions}.")
    return found
