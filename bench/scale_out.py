"""Bench: the Telegram load of ``bench/telegram_load.py`` served by 1, 2 and 4 worker processes.

    TEST_DATABASE_URL=postgresql://... python bench/scale_out.py [--workers 1,2,4 --private 40 ...]

Each worker is a real ``python -m bot`` in webhook mode on one PostgreSQL database (a fresh schema
per run) and one Redis (``--redis``, default db 3), which books Telegram's budgets for all of them.
This process runs the fake Telegram Bot API (at Telegram's real limits: about one message a second
per chat, 20 a minute per group, 30 a second bot-wide) and the fake MiniToolAI, and delivers every
chat's message to the workers round robin, as a load balancer in front of them would.

Printed per worker count: answers complete, 429s received, visible lag median / p95 (for each
token: from the fake MiniToolAI writing it to the first Telegram request showing it), and the
workers' CPU per answer (all workers together, while serving: start-up left out). Targets: 0 × 429 at every count,
lag no worse than one worker's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from bench.telegram_load import TOKEN, TimedMiniToolAI, _wait_answered, chat_figures, pct
from tests.fakes.minitoolai import ChatScript
from tests.fakes.telegram import FakeTelegram

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def fresh_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return schema, f"{base}{'&' if '?' in base else '?'}search_path={schema}"


async def drop_schema(base: str, schema: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


async def forget_limits(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(f"minitoolai:limit:telegram:{TOKEN.split(':')[0]}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def start_worker(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env={**env, "TELEGRAM_WEBHOOK_LISTEN": f"127.0.0.1:{port}"},
        cwd=tempfile.gettempdir(),  # no .env there, and no module shadowing the bot's
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(60):
        async for line in process.stderr:
            if os.environ.get("BENCH_VERBOSE"):
                print("   worker:", line.decode(errors="replace").rstrip())
            if b"receiving updates by webhook" in line:
                break
        else:
            raise SystemExit("a worker stopped before it served (BENCH_VERBOSE=1 shows why)")
    asyncio.create_task(_drain(process))  # noqa: RUF006 - ends with the process
    return process


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    async for line in process.stderr:
        if b"ERROR" in line or b"Traceback" in line:
            print("   worker:", line.decode(errors="replace").rstrip())


async def run(workers: int, args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    schema, url = await fresh_schema(base_url)
    await forget_limits(args.redis)
    tokens = [f"w{i} " for i in range(args.tokens)]
    answer = "".join(tokens)
    ai = TimedMiniToolAI()
    processes: list[asyncio.subprocess.Process] = []
    try:
        async with ai, FakeTelegram(token=TOKEN, time_scale=1.0) as tg:
            for _ in range(args.private + args.groups):
                ai.chat_scripts.append(ChatScript(tokens=tokens, delay=1 / args.rate))
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("MINITOOLAI_", "TELEGRAM_", "DISCORD_"))
            }
            env.update(
                PYTHONPATH=str(REPO),
                DATABASE_URL=url,
                REDIS_URL=args.redis,
                LOG_LEVEL="INFO",
                MINITOOLAI_API_KEY=ai.api_key,
                MINITOOLAI_BASE_URL=ai.base_url,
                TELEGRAM_TOKEN=TOKEN,
                TELEGRAM_API_BASE_URL=tg.base_url,
                TELEGRAM_FILE_BASE_URL=tg.base_file_url,
                TELEGRAM_WEBHOOK_URL="https://bench.example.com/telegram/hook",
                TELEGRAM_WEBHOOK_SECRET=SECRET,
                STARTING_GRANT_USD="5",
            )
            ports = [free_port() for _ in range(workers)]
            for port in ports:
                processes.append(await start_worker(env, port))
            # From here: serving only (the workers' start-up, imports and migrations, is left out).
            cpu_before = sum(cpu_seconds(p.pid) for p in processes)
            chats: dict[int, int] = {}
            updates: list[tuple[int, dict[str, Any]]] = []
            for n in range(args.private + args.groups):
                user = tg.user(f"User{n}", f"user{n}")
                if n < args.private:
                    chat = tg.private_chat(user)
                    message = tg.user_message(chat, user, f"Please write q{n}")
                else:
                    chat = tg.group(f"Group {n}")
                    message = tg.user_message(chat, user, f"/ask Please write q{n}")
                chats[int(chat["id"])] = n
                updates.append((ports[n % workers], {"update_id": n + 1, "message": message}))
            started = time.monotonic()
            async with aiohttp.ClientSession() as http:  # the round-robin load balancer

                async def deliver(port: int, update: dict[str, Any]) -> None:
                    async with http.post(
                        f"http://127.0.0.1:{port}/telegram/hook",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    ) as response:
                        response.raise_for_status()

                await asyncio.gather(*(deliver(port, update) for port, update in updates))
            done = await _wait_answered(tg, set(chats), started + args.timeout)
            wall = time.monotonic() - started
            by_chat: dict[int, list[Any]] = {chat_id: [] for chat_id in chats}
            for r in tg.requests:
                chat_id = r.params.get("chat_id")
                if chat_id is not None and int(chat_id) in by_chat:
                    by_chat[int(chat_id)].append(r)
            figures = [
                chat_figures(
                    chat_id,
                    by_chat[chat_id],
                    ai.token_times[n],
                    answer,
                    tg.messages_in(chat_id, from_bot=True),
                    started,
                )
                for chat_id, n in chats.items()
            ]
            status_429 = sum(1 for r in tg.requests if r.status == 429)
            cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.wait(), 60)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await drop_schema(base_url, schema)
    lags = [lag for f in figures for lag in f.lags]
    return {
        "workers": workers,
        "complete": sum(f.complete for f in figures),
        "answered": len(done),
        "answers": len(figures),
        "429": status_429,
        "lag_median": statistics.median(lags) if lags else float("nan"),
        "lag_p95": pct(lags, 0.95),
        "cpu_per_answer": cpu / max(1, len(figures)),
        "wall": wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, e.g. 1,2,4")
    parser.add_argument("--private", type=int, default=40, help="private chats")
    parser.add_argument("--groups", type=int, default=10, help="group chats")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second per answer")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every answer")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3", help="REDIS_URL for the workers")
    args = parser.parse_args()
    base_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        raise SystemExit("Set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL database.")
    print(
        f"{args.private} private chats + {args.groups} groups, {args.tokens} tokens at {args.rate:g}/s each;"
        " fake Telegram at real limits; PostgreSQL + Redis"
    )
    print(
        f"{'workers':>8} {'complete':>10} {'429s':>6} {'lag median':>11} {'lag p95':>9} {'CPU/answer':>11} {'wall':>7}"
    )
    for workers in (int(w) for w in args.workers.split(",")):
        got = await run(workers, args, base_url)
        print(
            f"{got['workers']:>8} {got['complete']:>4} / {got['answers']:<3} {got['429']:>6}"
            f" {got['lag_median']:>9.2f} s {got['lag_p95']:>7.2f} s {got['cpu_per_answer'] * 1000:>8.0f} ms"
            f" {got['wall']:>5.1f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
