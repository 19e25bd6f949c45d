"""The HTTP client for Zoom: one client, its connections split over several small pools.

httpcore assigns each request by scanning every connection of its pool (and polling each idle
one), so one pool of a few hundred connections costs more CPU per call the busier it gets.
Round-robin over pools of ``_PER_SHARD`` connections keeps every scan short; the total
number of connections stays the same.
"""

from __future__ import annotations

import itertools
import math

import httpx

_PER_SHARD = 16
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int) -> None:
        shards = max(1, math.ceil(max_connections / _PER_SHARD))
        limits = httpx.Limits(max_connections=_PER_SHARD, max_keepalive_connections=_PER_SHARD)
        self._shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._turn = itertools.cycle(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turn).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def http_client(max_connections: int = 128) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, transport=ShardedTransport(max_connections))
