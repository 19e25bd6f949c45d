"""The fault proxy itself, against a local echo server: each fault does what its contract says.

Fast (about a second): these run in the normal suite, unlike the chaos tests around them.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from devservices.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo) as proxy:
        yield proxy


def connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_it_forwards_both_ways_and_counts(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"x" * 100_000) == b"x" * 100_000
        stats = proxy.stats()
    assert (stats.accepted, stats.active) == (1, 1)
    assert stats.bytes_up == stats.bytes_down == 100_000


def test_a_refusing_cut_closes_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"
        proxy.cut()
        assert sock.recv(10) == b""  # a FIN: the peer went away
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    assert proxy.stats().closed_by_fault == 1
    proxy.restore()
    with connect(proxy) as sock:  # the same port again
        assert round_trip(sock) == b"ping"


def test_a_resetting_cut_answers_with_rst(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"
        proxy.cut("reset")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    with pytest.raises(ConnectionResetError), connect(proxy) as sock:  # connect may see it
        round_trip(sock)
    assert proxy.stats().refused == 1
    proxy.restore()
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"


def test_a_blackhole_swallows_bytes_and_restore_resets_what_it_held(proxy: FaultProxy) -> None:
    with connect(proxy, timeout=0.3) as held:
        assert round_trip(held) == b"ping"
        proxy.cut("blackhole")
        held.sendall(b"lost")
        with pytest.raises(TimeoutError):
            held.recv(10)
        with connect(proxy, timeout=0.3) as new:  # accepted, never answered
            new.sendall(b"lost too")
            with pytest.raises(TimeoutError):
                new.recv(10)
            proxy.restore()
            with pytest.raises(ConnectionResetError):
                new.recv(10)
        with pytest.raises(ConnectionResetError):
            held.recv(10)
    assert proxy.stats().dropped_bytes == len(b"lost") + len(b"lost too")
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"


def test_delay_holds_every_chunk(proxy: FaultProxy) -> None:
    proxy.delay(0.2)
    with connect(proxy) as sock:
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        assert time.monotonic() - started >= 0.4  # once each way
        proxy.delay(0)
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        assert time.monotonic() - started < 0.2


def test_reset_sends_rst_on_open_connections_only(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    with connect(proxy) as sock:
        assert round_trip(sock) == b"ping"
    assert proxy.stats().resets == 1


def test_an_unreachable_upstream_resets_the_client() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with FaultProxy("127.0.0.1", port) as proxy:
        with pytest.raises(ConnectionResetError), connect(proxy) as sock:
            round_trip(sock)
        assert proxy.stats().upstream_failures == 1
