"""python-telegram-bot's HTTP requests, sent with aiohttp instead of httpx.

python-telegram-bot sends every Bot API call through a ``BaseRequest``; its default one uses
httpx, whose connection pool (httpcore) scans every connection and every waiting request each
time a request starts or ends. With a couple of hundred answers streaming at once that costs
milliseconds of CPU per request on the bot's one event loop, and every request waits behind the
others: ``bench/telegram_load.py`` measured drafts taking 0.4 s (median) to 4.6 s (p95) to
reach a Telegram server on the same machine. aiohttp, which the bot already uses for
MiniToolAI, does the same work in a fraction of that.

Bodies are sent as python-telegram-bot builds them: form fields (nested values JSON-encoded),
multipart when there are files. Errors map as in python-telegram-bot's own class: a timeout is
``TimedOut``, any other transport failure ``NetworkError``, with the URL (which carries the bot
token) taken out of the message.
"""

from __future__ import annotations

import logging

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # python-telegram-bot's defaults, so nothing else changes
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
MEDIA_WRITE_TIMEOUT = 20.0


class AiohttpRequest(BaseRequest):
    """A ``BaseRequest`` over one aiohttp session with at most ``connections`` connections.

    aiohttp has no write timeout of its own: a request with files may take the read timeout plus
    the media write timeout between two reads of its answer.
    """

    def __init__(
        self,
        connections: int = 256,
        *,
        read_timeout: float | None = READ_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        pool_timeout: float = POOL_TIMEOUT,
        media_write_timeout: float = MEDIA_WRITE_TIMEOUT,
    ) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        body: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            body = _form(request_data) if files else request_data.json_parameters
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout, bool(files))
        try:
            async with self._session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            message = str(exc).replace(url, "<Bot API URL>")
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {message}") from exc

    def _timeout(
        self,
        read: ODVInput[float],
        write: ODVInput[float],
        connect: ODVInput[float],
        pool: ODVInput[float],
        files: bool,
    ) -> aiohttp.ClientTimeout:
        read_s = self._read_timeout if isinstance(read, DefaultValue) else read
        write_s = (
            (self._media_write_timeout if files else WRITE_TIMEOUT)
            if isinstance(write, DefaultValue)
            else write
        )
        connect_s = self._connect_timeout if isinstance(connect, DefaultValue) else connect
        pool_s = self._pool_timeout if isinstance(pool, DefaultValue) else pool
        if read_s is not None and files:
            read_s += write_s or 0.0
        # aiohttp's ``connect`` covers waiting for a free connection and opening it.
        acquire = None if connect_s is None or pool_s is None else connect_s + pool_s
        return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect_s, sock_read=read_s)


def _form(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
