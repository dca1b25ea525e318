"""Real ``python -m bot`` processes on one PostgreSQL database, for the several-process tests.

Each process gets its settings from the environment (no .env: it runs in ``tmp_path``), logs to
its standard error, which is read line by line so a test can wait for what a process says (an
event, never a sleep). ``kill`` is ``kill -9``: the process gets no chance to tidy up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.integration.conftest import _drop_schema, _fresh_schema, postgres_base_url, with_search_path

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = "4"  # short, for a takeover after kill -9 within the test; long enough for a loaded machine


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A DATABASE_URL naming an empty schema of TEST_DATABASE_URL (skips without it)."""
    base = postgres_base_url()
    schema = await _fresh_schema(base)
    try:
        yield with_search_path(base, schema)
    finally:
        await _drop_schema(base, schema)


def process_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINITOOLAI_", "TELEGRAM_", "DISCORD_"))}
    env.update(
        DATABASE_URL=database_url,
        LOG_LEVEL="INFO",
        PROCESS_LEASE_SECONDS=LEASE_SECONDS,
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


_WITHOUT_REQUEST_ID = re.compile(r" \[[^\]]*\]:")


class BotProcess:
    """One running ``python -m bot``; its log lines are kept in ``lines``."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name=f"{name}-stderr")

    @classmethod
    async def start(cls, name: str, cwd: Path, env: dict[str, str]) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        return cls(name, process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_line(self, pattern: str, timeout: float = 20.0) -> str:  # noqa: ASYNC109
        """The first log line matching ``pattern`` (a regular expression), waiting for it."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for line in self.lines:
                        # "logger [request id]: message" is matched as "logger: message".
                        if regex.search(_WITHOUT_REQUEST_ID.sub(":", line)):
                            return line
                    if self._reader.done():
                        raise AssertionError(f"{self.name} ended without logging {pattern!r}:\n{self.log}")
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} did not log {pattern!r} in {timeout} s:\n{self.log}") from None

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """kill -9."""
        self.process.kill()

    async def stop(self, timeout: float = 20.0) -> int:  # noqa: ASYNC109
        """SIGTERM, then wait for the clean exit; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await self._reader
        return code

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader
