"""``python -m bench.http_client``: the client CPU of one small JSON call, httpcore vs aiohttp.

Cited by ``worker/runtime/http.py``. A minimal HTTP/1.1 keep-alive server on 127.0.0.1 (a
child process, so its CPU is not counted) answers every POST with ``201 Created`` and a small
JSON body like Zoom's answer to a meeting create. Each client sends ``--requests`` POSTs of a
meeting-create body with a 300-character bearer token, one at a time and then in
``asyncio.gather`` batches of 16, and every answer is checked (status and JSON). The clients:

    httpx (httpcore)           ``httpx.AsyncClient()``, httpx's default transport
    http_client() (aiohttp)    ``worker.runtime.http.http_client()``, the worker's client
                               (plain http on loopback: its TLS settings apply to https only)

Prints, per client and concurrency, this process's CPU (user + sys, ``getrusage``) per
request and the wall requests/s. Connections are opened by a warm-up that is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import httpx

from worker.runtime.http import http_client

HOST = "127.0.0.1"
PATH = "/v2/users/me/meetings"
CONCURRENCIES = (1, 16)
WARMUP = 200

MEETING: dict[str, Any] = {
    "topic": "Quarterly planning: platform team",
    "type": 2,
    "start_time": "2025-03-14T15:00:00Z",
    "duration": 45,
    "timezone": "Europe/Berlin",
    "agenda": ("Review of last quarter's goals, the roadmap for the next one, staffing "
               "and on-call changes, open questions from the last retrospective, and "
               "anything else that comes up on the way.")[:200].ljust(200, "."),
}  # fmt: skip
TOKEN = "eyJ" + "a" * 297  # a bearer token of Zoom's size
CREATED: dict[str, Any] = {
    "uuid": "4444AAAiAAAAAiAiAiiAii==",
    "id": 85746065432,
    "host_id": "KDcuGIm1QgePTO8WbOqwIQ",
    "topic": MEETING["topic"],
    "type": 2,
    "start_time": MEETING["start_time"],
    "duration": 45,
    "timezone": "Europe/Berlin",
    "created_at": "2025-03-01T09:12:45Z",
    "join_url": "https://zoom.us/j/85746065432?pwd=8uQ9kMQvZqZRDFKZx3vHHXjH6uWbCn.1",
    "password": "bXk2aH",
}
CREATED_BODY = json.dumps(CREATED).encode()
RESPONSE = (
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Type: application/json;charset=UTF-8\r\n"
    b"Content-Length: " + str(len(CREATED_BODY)).encode() + b"\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + CREATED_BODY
)


# The server (child process) ------------------------------------------------------------------


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request on one keep-alive connection until the client closes it."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _server(port_to: Connection) -> None:
    server = await asyncio.start_server(_answer, HOST, 0)
    port_to.send(server.sockets[0].getsockname()[1])
    port_to.close()
    async with server:
        await server.serve_forever()


def serve(port_to: Connection) -> None:
    """The child process: serve on a free loopback port, sent back on ``port_to``."""
    asyncio.run(_server(port_to))


# The clients (this process) ------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _post(client: httpx.AsyncClient, url: str) -> None:
    response = await client.post(url, json=MEETING, headers={"Authorization": f"Bearer {TOKEN}"})
    if response.status_code != 201 or response.json() != CREATED:
        raise RuntimeError(f"unexpected answer: {response.status_code} {response.text[:200]}")


async def _send(client: httpx.AsyncClient, url: str, count: int, concurrency: int) -> None:
    for first in range(0, count, concurrency):
        await asyncio.gather(*(_post(client, url) for _ in range(min(concurrency, count - first))))


async def measure(
    make: Callable[[], httpx.AsyncClient], url: str, count: int
) -> list[tuple[int, float, float]]:
    """(concurrency, CPU ms per request, requests/s) for each of ``CONCURRENCIES``."""
    rows = []
    async with make() as client:
        await _send(client, url, WARMUP, max(CONCURRENCIES))
        for concurrency in CONCURRENCIES:
            cpu, wall = _cpu(), time.perf_counter()
            await _send(client, url, count, concurrency)
            cpu, wall = _cpu() - cpu, time.perf_counter() - wall
            rows.append((concurrency, cpu / count * 1000, count / wall))
    return rows


CLIENTS: dict[str, Callable[[], httpx.AsyncClient]] = {
    "httpx (httpcore)": httpx.AsyncClient,
    "http_client() (aiohttp)": http_client,
}


async def run(url: str, count: int) -> None:
    print(f"{count} POSTs of {len(json.dumps(MEETING))} bytes to {url}; server in a child process")
    print(f"{'client':<26}{'concurrency':>12}{'CPU ms/request':>16}{'requests/s':>12}")
    for name, make in CLIENTS.items():
        for concurrency, cpu_ms, rate in await measure(make, url, count):
            print(f"{name:<26}{concurrency:>12}{cpu_ms:>16.2f}{rate:>12.0f}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_client", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="POSTs per client and mode")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    port_from, port_to = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(port_to,), daemon=True)
    server.start()
    try:
        if not port_from.poll(30):
            raise RuntimeError("the server did not start")
        port: int = port_from.recv()
        asyncio.run(run(f"http://{HOST}:{port}{PATH}", args.requests))
    finally:
        server.terminate()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
