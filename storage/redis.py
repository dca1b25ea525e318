"""Budgets several processes share, in Redis (``REDIS_URL``): one atomic reservation per request.

Each budget is a key holding the earliest moment (Redis's own clock, in milliseconds) the next
request may go. :meth:`RedisLimits.reserve` takes several budgets at once in one Lua script, so a
request waits for the latest of them and books its place in all of them atomically: with three
processes posting into one group, each post gets its own slot, ``interval`` apart, whoever sends
it. Redis's clock is the only clock, so the hosts' clocks do not matter.

This is the GCRA (generic cell rate algorithm) with a burst of one: no burst, evenly spaced.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis
from limits.aio.storage import RedisStorage
from limits.aio.storage import Storage as RateStorage
from redis.exceptions import RedisError

from bot.errors import StorageError

logger = logging.getLogger(__name__)

KEY_PREFIX = "minitoolai:limit:"
LOCK_SECONDS = 10.0  # a shared lock outlives a dead holder by at most this

# KEYS: the budgets; ARGV: each budget's interval in ms. Returns the wait in ms, as a string.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local at = now
for i, key in ipairs(KEYS) do
  local next_at = tonumber(redis.call('GET', key) or '0')
  if next_at > at then at = next_at end
end
for i, key in ipairs(KEYS) do
  local following = at + tonumber(ARGV[i])
  redis.call('SET', key, tostring(following), 'PX', math.ceil(following - now) + 1000)
end
return tostring(at - now)
"""

# KEYS[1]: a budget; ARGV[1]: ms from now before anything may go (the platform said wait).
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_at = now + tonumber(ARGV[1])
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_at > next_at then
  redis.call('SET', KEYS[1], tostring(until_at), 'PX', math.ceil(until_at - now) + 1000)
end
return 1
"""


# KEYS[1]: a set of slots; ARGV: limit (or -1: none), member, ttl ms. 1 if the member holds a slot.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  local limit = tonumber(ARGV[1])
  if limit >= 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""


class RedisLimits:
    """Shared budgets: ``await reserve([(name, interval_s), ...])`` -> seconds to wait."""

    def __init__(self, client: aioredis.Redis, prefix: str = KEY_PREFIX, url: str = "redis://") -> None:
        self._client = client
        self._prefix = prefix
        self._url = url
        self._reserve = client.register_script(_RESERVE)
        self._hold = client.register_script(_HOLD)
        self._take = client.register_script(_TAKE)

    async def reserve(self, budgets: Sequence[tuple[str, float]]) -> float:
        if not budgets:
            return 0.0
        keys = [self._prefix + name for name, _ in budgets]
        intervals = [f"{interval * 1000:.3f}" for _, interval in budgets]
        try:
            wait_ms = await self._reserve(keys=keys, args=intervals)
        except RedisError as exc:
            # Redis down: the request goes on under this process's own pacing rather than stop.
            logger.warning("shared limits unavailable (%s); pacing locally only", type(exc).__name__)
            return 0.0
        return max(0.0, float(wait_ms) / 1000)

    async def hold(self, name: str, seconds: float) -> None:
        try:
            await self._hold(keys=[self._prefix + name], args=[f"{seconds * 1000:.3f}"])
        except RedisError as exc:
            logger.warning("shared limits unavailable (%s)", type(exc).__name__)

    async def take(self, name: str, member: str, limit: int | None, ttl: float) -> bool:
        try:
            args: list[str | int] = [-1 if limit is None else limit, member, f"{ttl * 1000:.0f}"]
            return bool(await self._take(keys=[self._prefix + "slots:" + name], args=args))
        except RedisError as exc:
            logger.warning("shared slots unavailable (%s); this process's limit only", type(exc).__name__)
            return True

    async def give(self, name: str, member: str) -> None:
        try:
            await self._client.zrem(self._prefix + "slots:" + name, member)
        except RedisError as exc:
            logger.warning("shared slots unavailable (%s)", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """A mutex every process shares (redis-py's Lock: a token only its holder can release,
        expiring after ``LOCK_SECONDS`` should its holder die). Redis down: this process's own
        lock (held by the caller) is all there is, and it is logged."""
        lock = self._client.lock(
            self._prefix + "lock:" + name, timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS
        )
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            logger.warning(
                "shared lock %s unavailable (%s); this process's lock only", name, type(exc).__name__
            )
            acquired = False
        try:
            yield
        finally:
            if acquired:
                with contextlib.suppress(RedisError):
                    await lock.release()

    def member_rates(self) -> RateStorage:
        """The moving windows of the per-member rate limits (``bot.access.rates``) in this Redis,
        through the ``limits`` library's own storage on this client's connections (closed with it),
        so every process counts the same requests."""
        return RedisStorage(
            f"async+{self._url}",
            implementation="redispy",
            key_prefix=self._prefix + "rates",
            connection_pool=self._client.connection_pool,  # type: ignore[arg-type]  # typed as scalars, taken as is
        )

    async def close(self) -> None:
        await self._client.aclose()


async def open_limits(url: str, prefix: str = KEY_PREFIX) -> RedisLimits:
    """Connect and check the server answers; a clear StorageError (naming host:port only) if not."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except (RedisError, OSError, ValueError) as exc:
        await client.aclose()
        where = url.split("@")[-1].split("/")[0]
        raise StorageError(
            f"Could not connect to Redis at {where} (REDIS_URL): {type(exc).__name__}."
        ) from None
    return RedisLimits(client, prefix, url)
