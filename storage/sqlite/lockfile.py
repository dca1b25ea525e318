"""One bot process per SQLite file: an exclusive lock on ``<file>.lock`` for the process's life.

SQLite has no leases between processes, so a second bot process on the same file would settle
the first one's holds and run its image jobs. The lock is ``flock``: the kernel drops it when the
process ends however it ends (kill -9 included), so a stale lock file never blocks a restart.
The owner's command line (``credits``, ``db backup``) does not take it and works beside the bot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bot.errors import StorageError


@contextlib.contextmanager
def hold_exclusive(path: str) -> Iterator[None]:
    """Hold the process lock of the SQLite database at ``path``; refuse clearly if it is taken."""
    if path == ":memory:":
        yield
        return
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StorageError(
                f"Another bot process (pid {other}) is already running on the SQLite database {path}. "
                "Run one process per SQLite file; to run several processes, use PostgreSQL "
                "(DATABASE_URL=postgresql://...)."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the lock
