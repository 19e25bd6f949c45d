"""The HTTP client for Zoom: TLS 1.3 only, httpx's interface on aiohttp's HTTP/1.1 engine.

Every connection to Zoom (the Meetings API and OAuth, from ``run``, ``serve`` and the
``tokens`` commands) goes through ``http_client``, whose TLS context (``zoom_tls_context``)
refuses anything older than TLS 1.3: the handshake fails before a request (or a token) is
sent. Certificates are verified as httpx verifies them by default.

Why aiohttp underneath: the worker's code speaks httpx (requests, responses, its exception
tree), but httpcore spends 1.3-2.1 ms of CPU on a small JSON call to a loopback server, and
aiohttp 0.5-0.8 ms through this transport (``bench/http_client.py``); at one or two Zoom calls
per message that was a third of the worker's CPU. httpx-aiohttp does the same, but maps a
server that hangs up mid-request to ``ConnectTimeout``: a create that may have reached Zoom
would read as one that never left, and be sent again. Here every aiohttp failure maps to the
httpx exception that says what is known about the request (``_EXCEPTIONS``):

    no free connection within the pool time          -> httpx.PoolTimeout     (not sent)
    connecting failed (refused, DNS, TLS handshake)  -> httpx.ConnectError    (not sent)
    no connection within the connect time            -> httpx.ConnectTimeout  (not sent)
    no answer within the read time                   -> httpx.ReadTimeout     (outcome unknown)
    anything after sending (hang-up, bad response)   -> httpx.RemoteProtocolError (unknown)

aiohttp's own second try of a GET, PUT or DELETE on a dropped connection is turned off, so
every call is sent once. The write timeout is not applied (Zoom's requests are small).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final

import aiohttp
import httpx

TIMEOUT = httpx.Timeout(10.0, connect=5.0)

# Most specific first: the first match names the failure.
_EXCEPTIONS: Final[tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.RemoteProtocolError),
)


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


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by one aiohttp session: at most ``max_connections`` connections,
    kept alive between calls. The response is read whole before it is handed back (Zoom's
    answers are small JSON objects); httpx then decodes it as it would its own."""

    def __init__(self, max_connections: int, tls: ssl.SSLContext) -> None:
        self._max_connections = max_connections
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        # The wait for a free connection is ours, not aiohttp's: aiohttp counts it in its
        # connect timeout, and a busy pool here must read as ``PoolTimeout`` (nothing about
        # Zoom: the breaker ignores it), not as Zoom failing to answer a connect.
        self._free = asyncio.Semaphore(max_connections)

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    ssl=self._tls,
                    keepalive_timeout=5.0,  # httpx's keep-alive expiry
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, as for its own transport
                skip_auto_headers=("User-Agent", "Accept-Encoding"),  # httpx's own are sent
            )
            # aiohttp sends a GET, PUT or DELETE a second time, unseen, when the connection
            # drops; a call here is sent once, and the client's retry policy (with its rate
            # limit, breaker and metrics) decides about another. (Private, set as aiohttp's
            # own test client sets it; tests/worker/test_http_transport.py checks it.)
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            if self._free.locked():
                async with asyncio.timeout(timeout.get("pool")):
                    await self._free.acquire()
            else:  # a connection is free (the usual case): no timer to set up
                await self._free.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection to Zoom in time", request=request) from None
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, request) from exc
        finally:
            self._free.release()
        return httpx.Response(
            response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=httpx.ByteStream(body),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """``handle_async_request``, the answer read: a ``worker.zoom.client.Sender`` that
        skips the client's layers (``http_client`` notes what they cost)."""
        response = await self.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    kind = next(to for cause, to in _EXCEPTIONS if isinstance(exc, cause))
    return kind(f"{type(exc).__name__}: {exc}", request=request)


class ZoomHttpClient(httpx.AsyncClient):
    """httpx's client on an ``AiohttpTransport``, which it shows as ``transport``.

    The Meetings API calls go to ``transport`` directly (``ZoomMeetings`` builds each request
    whole): httpx's client layers (merging defaults, cookies, auth, redirects, hooks) cost
    0.46 against 0.29 ms of CPU per call at 16 concurrent calls (``bench/http_client.py``).
    OAuth and the ``tokens`` commands use the client. Tracing instruments the transport, so
    both are traced."""

    def __init__(self, transport: AiohttpTransport) -> None:
        super().__init__(timeout=TIMEOUT, transport=transport)
        self.transport = transport


def http_client(max_connections: int = 128) -> ZoomHttpClient:
    """The client for Zoom (API and OAuth): TLS 1.3 minimum, ``max_connections`` in all."""
    return ZoomHttpClient(AiohttpTransport(max_connections, zoom_tls_context()))
