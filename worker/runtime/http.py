"""The HTTP client for Zoom: TLS 1.3 only, one client, its connections split over small pools.

Every connection to Zoom (the Meetings API and OAuth, from ``run``, ``serve`` and the
``tokens`` commands) goes through ``http_client``, whose TLS context (``zoom_tls_context``)
refuses anything older than TLS 1.3: the handshake fails before a request (or a token) is
sent. Certificates are verified as httpx verifies them by default.

httpcore assigns each request by scanning every connection of its pool (and polling each idle
one), so one pool of a few hundred connections costs more CPU per call the busier it gets.
Round-robin over pools of ``_PER_SHARD`` connections keeps every scan short; the total
number of connections stays the same.
"""

from __future__ import annotations

import itertools
import math
import ssl

import httpx

_PER_SHARD = 16
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def zoom_tls_context() -> ssl.SSLContext:
    """A client context accepting TLS 1.3 only, certificates and host names verified.

    The trusted CAs are httpx's default, read from the environment at each call: the bundle
    named by ``SSL_CERT_FILE`` when set, else the directory ``SSL_CERT_DIR`` (hashed names, as
    ``c_rehash`` makes), else certifi's bundle. A private CA (an egress proxy's, a test's) is
    trusted through those two variables.
    """
    context = httpx.create_ssl_context(trust_env=True)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int, tls: ssl.SSLContext) -> None:
        shards = max(1, math.ceil(max_connections / _PER_SHARD))
        limits = httpx.Limits(max_connections=_PER_SHARD, max_keepalive_connections=_PER_SHARD)
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)]
        self._turn = itertools.cycle(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turn).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def http_client(max_connections: int = 128) -> httpx.AsyncClient:
    """The client for Zoom (API and OAuth): TLS 1.3 minimum, ``max_connections`` in all."""
    transport = ShardedTransport(max_connections, zoom_tls_context())
    return httpx.AsyncClient(timeout=TIMEOUT, transport=transport)
