"""DATABASE_URL parsing and the JSON helpers shared by both storage backends (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.errors import StorageError
from bot.ports import ChannelSettings
from storage.common import (
    as_utc,
    parse_database_url,
    settings_from_json,
    settings_to_json,
    sqlite_time,
)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/bot.sqlite3", "data/bot.sqlite3"),
        ("sqlite:////var/lib/bot/bot.sqlite3", "/var/lib/bot/bot.sqlite3"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_a_path(url: str, path: str) -> None:
    """The three sqlite forms give a relative path, an absolute path, or :memory:."""
    target = parse_database_url(url)

    assert (target.backend, target.sqlite_path) == ("sqlite", path)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgresql://bot:pw@db.example:6543/bot", "db.example:6543"),
        ("postgres://bot@localhost/bot", "localhost:5432"),
    ],
)
def test_postgres_urls_keep_host_and_port_for_messages(url: str, where: str) -> None:
    """postgresql:// and postgres:// are accepted; ``where`` is host:port without credentials."""
    target = parse_database_url(url)

    assert (target.backend, target.where, target.url) == ("postgres", where, url)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:hunter2@localhost/db",
        "sqlite://hunter2/x.db",
        "sqlite:///",
        "sqlite:///data/?password=hunter2",
        "hunter2",
        "postgresql://u:hunter2@host:notaport/db",
    ],
)
def test_bad_urls_name_the_variable_and_the_forms_but_not_the_secret(url: str) -> None:
    """A bad DATABASE_URL is one StorageError naming the variable and the forms, never the password."""
    with pytest.raises(StorageError) as raised:
        parse_database_url(url)

    message = str(raised.value)
    assert message.startswith("DATABASE_URL ")
    assert "sqlite:///relative/path.sqlite3" in message
    assert "postgresql://" in message
    assert "hunter2" not in message


def test_settings_json_round_trip_keeps_none_and_tuples() -> None:
    """Settings survive JSON: None stays None (inherit), tuples stay tuples, extra stays nested."""
    settings = ChannelSettings(
        model="m", allowed_image_models=("a",), auto_thread=True, extra={"x": {"y": [1, 2]}}
    )

    assert settings_from_json(settings_to_json(settings)) == settings
    assert settings_from_json(settings_to_json(ChannelSettings())) == ChannelSettings()


def test_settings_json_from_a_newer_version_ignores_unknown_fields() -> None:
    """Fields this version does not know are ignored rather than failing the read."""
    assert settings_from_json('{"model": "m", "future_field": 1}') == ChannelSettings(model="m")


def test_sqlite_time_is_sortable_utc_text_and_reads_back_aware() -> None:
    """Any aware time is stored as UTC text that sorts like time and reads back as the same instant."""
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 4, 12, 0, 0, 123456, tzinfo=plus_two)
    text = sqlite_time(moment)

    assert text == "2026-03-04 10:00:00.123456"
    assert as_utc(text) == moment
    assert as_utc(text).tzinfo == UTC  # type: ignore[union-attr]
    assert sqlite_time(moment - timedelta(microseconds=1)) < text
    assert as_utc("2026-03-04 10:00:00") == datetime(2026, 3, 4, 10, tzinfo=UTC)
