"""The Zoom HTTP client over real sockets: what each way a call can fail reads as.

The worker decides from the httpx exception whether a create may have reached Zoom
(``worker/zoom/client.py``): a refused or unreachable server means nothing was sent, a server
that hangs up or stays silent after the request means the outcome is unknown. The transport
(``worker/runtime/http.py``, aiohttp underneath) must keep those apart.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from worker.runtime.http import http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def test_an_answer_comes_back_as_httpx_gives_it(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[bytes] = []
    body = gzip.compress(b'{"id": 7, "join_url": "https://zoom.example/j/7"}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"X-RateLimit-Remaining: 19\r\nSet-Cookie: a=b\r\nSet-Cookie: c=d\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    base = await serve(answer)
    async with http_client(4) as http:
        response = await http.post(
            f"{base}/v2/users/me/meetings",
            json={"topic": "ü"},
            headers={"Authorization": "Bearer t"},
        )
    assert response.status_code == 201 and response.reason_phrase == "Created"
    assert response.json() == {"id": 7, "join_url": "https://zoom.example/j/7"}
    assert response.headers["x-ratelimit-remaining"] == "19"
    assert response.headers.get_list("set-cookie") == ["a=b", "c=d"]
    request = seen[0].decode()  # as httpx spells it: names in lower case, JSON in UTF-8
    assert request.startswith("POST /v2/users/me/meetings HTTP/1.1\r\n")
    assert "\r\nauthorization: Bearer t\r\n" in request and request.count("\r\nhost: ") == 1
    assert request.endswith(
        'content-length: 14\r\ncontent-type: application/json\r\n\r\n{"topic":"ü"}'
    )


async def test_a_refused_connection_reads_as_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    async with http_client(4) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/v2/users/me/meetings", json={})


async def test_a_hang_up_after_the_request_reads_as_outcome_unknown(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    base = await serve(hang_up)
    async with http_client(4) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post(f"{base}/v2/users/me/meetings", json={})
    assert not isinstance(caught.value, (httpx.ConnectError, httpx.ConnectTimeout))
    assert isinstance(caught.value, httpx.RemoteProtocolError)


async def test_silence_after_the_request_reads_as_a_read_timeout(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    base = await serve(silent)
    async with http_client(4) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{base}/v2/users/me/meetings", json={}, timeout=httpx.Timeout(0.3))


async def test_no_connection_free_within_the_pool_time_is_a_pool_timeout(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(1)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    base = await serve(slow)
    async with http_client(1) as http:
        first = asyncio.create_task(http.patch(f"{base}/v2/meetings/1", json={}))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):  # ours, not Zoom's: the breaker ignores it
            await http.patch(f"{base}/v2/meetings/2", json={}, timeout=httpx.Timeout(5, pool=0.2))
        assert (await first).status_code == 204


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST", "PATCH"])
async def test_a_call_is_sent_once_even_when_the_connection_drops(
    serve: Callable[[Handler], Awaitable[str]], method: str
) -> None:
    """aiohttp would send a GET or DELETE again, unseen, after a hang-up; the client's own
    retry policy (rate limit, breaker, metrics) must be the only one deciding that."""
    seen: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.close()

    base = await serve(hang_up)
    async with http_client(4) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.request(method, f"{base}/v2/meetings/1")
    assert len(seen) == 1


async def test_a_request_sent_to_the_transport_whole_reads_as_through_the_client(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """``ZoomMeetings`` sends to ``http.transport``: no client layers, same answer, gzip too."""
    body = gzip.compress(b'{"id": 8}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    base = await serve(answer)
    async with http_client(4) as http:
        request = httpx.Request("POST", f"{base}/v2/users/me/meetings", json={})
        response = await http.transport.send(request)
    assert response.status_code == 201 and response.json() == {"id": 8}


async def test_the_transport_keeps_the_read_timeout_the_request_carries(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    base = await serve(silent)
    timeout = {"timeout": httpx.Timeout(0.3).as_dict()}
    async with http_client(4) as http:
        request = httpx.Request("POST", f"{base}/v2/users/me/meetings", json={}, extensions=timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await http.transport.send(request)
    assert loop.time() - started < 2
