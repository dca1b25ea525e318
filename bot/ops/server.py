"""The operations endpoint on METRICS_LISTEN: /healthz, /readyz and /metrics (Prometheus).

It runs on the bot's own event loop: /healthz answering at all shows the loop is alive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.ops import metrics
from bot.ops.health import Health

__all__ = ["metrics_endpoint", "parse_listen"]

logger = logging.getLogger(__name__)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port, e.g. 127.0.0.1:9108")
    return host.strip("[]"), int(port)


def _app(health: Health) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        reasons = await health.readiness()
        if reasons:
            return web.Response(status=503, text="not ready: " + "; ".join(reasons) + "\n")
        return web.Response(text="ready\n")

    async def scrape(request: web.Request) -> web.Response:
        await health.refresh()
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    return app


@asynccontextmanager
async def metrics_endpoint(listen: str, health: Health) -> AsyncIterator[str]:
    """Serve the endpoint on ``listen`` (host:port; port 0 picks a free one) while the block
    runs; yields the address it listens on (``host:port``)."""
    host, port = parse_listen(listen)
    runner = web.AppRunner(_app(health), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        address = f"{host}:{bound[1]}"
        logger.info("serving /healthz, /readyz and /metrics on http://%s", address)
        yield address
    finally:
        await runner.cleanup()
