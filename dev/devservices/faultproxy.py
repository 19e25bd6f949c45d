"""A fault-injecting TCP proxy for chaos tests: put it between a client and a server, then cut,
slow down or reset the connections between them.

    with FaultProxy("127.0.0.1", postgres_port) as proxy:
        url = f"postgresql://postgres@{proxy.address}/app"   # the client goes through it
        ...
        proxy.cut()          # the server "goes away"
        proxy.restore()      # and comes back
        proxy.delay(0.05)    # every chunk now takes 50 ms longer
        proxy.reset()        # every open connection gets an RST
        proxy.stats()        # counters (a snapshot)

Contract:

- ``FaultProxy(upstream_host, upstream_port)`` listens on ``listen_host`` (loopback) at
  ``listen_port`` (0: a free port, chosen at ``start()``; ``port``/``address`` tell which). Each
  accepted connection gets a fresh connection to the upstream, and bytes are forwarded
  unchanged in both directions until either side closes, which closes both.
- It runs its own asyncio loop in a daemon thread, so synchronous tests, async tests (on any
  loop) and other threads can all drive it. Every control method blocks until the fault is in
  effect (``cut()`` returns once no byte will pass); calling one from the proxy's own thread
  raises ``RuntimeError``. ``start()``/``stop()`` or ``with`` bound its lifetime; ``stop()``
  closes every connection.
- ``cut(mode)``: the upstream becomes unreachable.
  ``"refuse"`` (default): the proxy stops listening, so a new connect gets ECONNREFUSED, and
  every open connection is closed (FIN to both sides), as when the server's host is gone.
  ``"reset"``: it keeps listening but answers every new connection with an RST, and resets
  every open one. ``"blackhole"``: new connections are accepted and never answered, open ones
  stop forwarding (bytes are read and dropped), as in a network partition: clients find out only
  through their own timeouts.
- ``restore()``: forwarding again, listening on the same port. Connections a blackhole held are
  reset (bytes were dropped, so their protocol state is lost); other open ones carry on.
- ``delay(seconds)``: each chunk read from either side is forwarded ``seconds`` later (chunks of
  one direction stay in order, so the added latency also caps throughput); ``delay(0)`` ends it.
  It applies to open connections too, and survives ``cut``/``restore``.
- ``reset()``: every open connection gets an RST on both sides (``SO_LINGER`` 0, then close);
  the proxy keeps accepting new ones.
- ``stats()``: a ``ProxyStats`` snapshot. ``refused`` counts connections answered with an RST
  while cut in ``"reset"`` mode (a closed listener cannot count the connects it refuses),
  ``upstream_failures`` connections whose upstream could not be reached (the client then gets
  an RST, as if the upstream had refused it), ``closed_by_fault`` connections ended by ``cut``,
  ``resets`` those ended by ``reset()`` or a blackhole's ``restore()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeVar

CutMode = Literal["refuse", "reset", "blackhole"]
_T = TypeVar("_T")
_CHUNK = 65536
_CONTROL_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProxyStats:
    accepted: int  # connections accepted (forwarded, held by a blackhole or failed upstream)
    active: int  # connections open now
    refused: int  # answered with an RST while cut in "reset" mode
    upstream_failures: int  # the upstream could not be reached
    closed_by_fault: int  # open connections a cut() closed
    resets: int  # open connections reset by reset() (or by restore() after a blackhole)
    bytes_up: int  # client -> upstream, forwarded
    bytes_down: int  # upstream -> client, forwarded
    dropped_bytes: int  # read while blackholed and thrown away


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    blackholed: bool = False


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST instead of a FIN: linger on, timeout 0, then drop the socket."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None and not writer.transport.is_closing():
        writer.close()


class FaultProxy:
    """A TCP proxy whose faults tests switch on and off; see the module docstring."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
        name: str = "faultproxy",
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.listen_host = listen_host
        self._port = listen_port
        self._connect_timeout = connect_timeout
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._mode: CutMode | None = None
        self._delay = 0.0
        self._counts = dict.fromkeys(
            ("accepted", "refused", "upstream_failures", "closed_by_fault", "resets"), 0
        )
        self._bytes = {"up": 0, "down": 0, "dropped": 0}

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set_result, None)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.result(_CONTROL_TIMEOUT)
        self._call(self._listen)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
            self._call(self._shutdown)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CONTROL_TIMEOUT)
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the proxy has not started: no port yet")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` to give clients instead of the upstream's."""
        return f"{self.listen_host}:{self.port}"

    # -- faults ------------------------------------------------------------------------------

    def cut(self, mode: CutMode = "refuse") -> None:
        """Make the upstream unreachable (see the module docstring for the three modes)."""
        self._call(lambda: self._cut(mode))

    def restore(self) -> None:
        """End a cut: listen (on the same port) and forward again."""
        self._call(self._restore)

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read (0: no delay)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0 seconds")

        async def set_delay() -> None:
            self._delay = seconds

        self._call(set_delay)

    def reset(self) -> None:
        """Send an RST on every open connection, both sides; new connections still work."""

        async def reset_all() -> None:
            for conn in list(self._connections):
                self._counts["resets"] += 1
                self._drop(conn, rst=True)

        self._call(reset_all)

    def stats(self) -> ProxyStats:
        async def snapshot() -> ProxyStats:
            return ProxyStats(
                active=len(self._connections),
                bytes_up=self._bytes["up"],
                bytes_down=self._bytes["down"],
                dropped_bytes=self._bytes["dropped"],
                **self._counts,
            )

        return self._call(snapshot)

    # -- the proxy's own loop ----------------------------------------------------------------

    def _call(self, action: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``action`` on the proxy's loop and wait for it (from any other thread)."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("the proxy is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("FaultProxy controls block: call them from another thread")

        async def wrapped() -> _T:
            return await action()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        return future.result(_CONTROL_TIMEOUT)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self._port, reuse_address=True
        )
        if self._port == 0:
            self._port = int(self._server.sockets[0].getsockname()[1])

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket now; open connections stay
            self._server = None

    async def _cut(self, mode: CutMode) -> None:
        self._mode = mode
        if mode == "refuse":
            self._stop_listening()
        else:
            await self._listen()
        for conn in list(self._connections):
            if mode == "blackhole":
                conn.blackholed = True
                continue
            self._counts["closed_by_fault"] += 1
            self._drop(conn, rst=mode == "reset")

    async def _restore(self) -> None:
        self._mode = None
        await self._listen()
        for conn in list(self._connections):
            if conn.blackholed:
                self._counts["resets"] += 1
                self._drop(conn, rst=True)

    async def _shutdown(self) -> None:
        self._stop_listening()
        tasks = [task for conn in self._connections for task in conn.tasks]
        for conn in list(self._connections):
            self._drop(conn, rst=False)
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    def _drop(self, conn: _Connection, *, rst: bool) -> None:
        self._connections.discard(conn)
        current = asyncio.current_task()
        for task in conn.tasks:
            if task is not current:
                task.cancel()
        end = _rst if rst else _close
        end(conn.client)
        end(conn.upstream)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._counts["accepted"] += 1
        if self._mode == "reset":
            self._counts["refused"] += 1
            _rst(writer)
            return
        conn = _Connection(writer)
        this = asyncio.current_task()
        if this is not None:
            conn.tasks.append(this)
        self._connections.add(conn)
        try:
            if self._mode == "blackhole":
                conn.blackholed = True
                await self._swallow(reader)
                return
            try:
                up_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(self.upstream_host, self.upstream_port),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError):
                self._counts["upstream_failures"] += 1
                self._connections.discard(conn)
                _rst(writer)
                return
            conn.upstream = upstream
            if conn not in self._connections:  # a fault struck while connecting
                _rst(upstream)
                return
            down = asyncio.ensure_future(self._pump(up_reader, writer, conn, "down"))
            conn.tasks.append(down)
            await self._pump(reader, upstream, conn, "up")
            await asyncio.wait({down})
        except asyncio.CancelledError:
            pass  # _drop() ended this connection and has closed its sockets
        finally:
            if conn in self._connections:
                self._drop(conn, rst=False)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        conn: _Connection,
        direction: Literal["up", "down"],
    ) -> None:
        """Copy ``source`` to ``sink`` chunk by chunk until EOF; then close the connection."""
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                if self._delay:
                    await asyncio.sleep(self._delay)
                if conn.blackholed:
                    self._bytes["dropped"] += len(data)
                    continue
                sink.write(data)
                await sink.drain()
                self._bytes[direction] += len(data)
        except (ConnectionError, OSError):
            pass
        if conn in self._connections:
            self._drop(conn, rst=False)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_CHUNK):
                self._bytes["dropped"] += len(data)
