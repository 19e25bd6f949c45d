"""HTTPS servers on loopback for the TLS tests, with certificates from a private CA (trustme).

``TlsServer`` accepts plain TCP and starts TLS by hand, so it sees what a stock server hides:
every connection (``connections``), every handshake that failed (``refused``) and the version
of every one that succeeded (``versions``), and every HTTP request that arrived (``requests``).
Each connection answers one request (``Connection: close``) with ``answer(method, path)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trustme

Answer = Callable[[str, str], tuple[int, dict[str, Any]]]
HOSTS = ("localhost", "127.0.0.1", "::1")


def server_context(ca: trustme.CA, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A server context with a certificate for the loopback names, signed by ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum is not None:
        context.maximum_version = maximum
    ca.issue_cert(*HOSTS).configure_cert(context)
    return context


@dataclass
class TlsServer:
    context: ssl.SSLContext
    answer: Answer
    connections: int = 0
    refused: list[str] = field(default_factory=list)  # failed handshakes: the error's class
    versions: list[str] = field(default_factory=list)  # negotiated, per successful handshake
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TlsServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            try:
                await writer.start_tls(self.context)
            except (ssl.SSLError, OSError) as exc:
                self.refused.append(type(exc).__name__)
                return
            self.versions.append(writer.get_extra_info("ssl_object").version())
            head = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            length = _content_length(head)
            if length:
                await reader.readexactly(length)
            self.requests.append((method, path))
            status, body = self.answer(method, path)
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
