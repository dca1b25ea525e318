"""Stores for the contract suite: SQLite under ``tmp_path``, PostgreSQL from ``TEST_DATABASE_URL``.

Each PostgreSQL test gets a fresh schema, named in the URL's ``search_path`` query parameter
(asyncpg passes unknown query parameters on as server settings), and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.ports import Store
from storage import open_store

PG_ENV = "TEST_DATABASE_URL"


def postgres_base_url() -> str:
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(f"{PG_ENV} is not set, so the PostgreSQL variant does not run")
    return url


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


async def _fresh_schema(base_url: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return schema


async def _drop_schema(base_url: str, schema: str) -> None:
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL naming an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'bot.sqlite3'}"
        return
    base = postgres_base_url()
    schema = await _fresh_schema(base)
    try:
        yield with_search_path(base, schema)
    finally:
        await _drop_schema(base, schema)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()
