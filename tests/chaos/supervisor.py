"""Keep one worker process running, as an orchestrator would, and remember every exit.

A chaos test asserts that the worker rides a fault out. When it does not (it exits), the
supervisor starts another after a short pause, so the test still reaches its end state and can
check every other invariant; the exit is recorded and invariant 6 reports it with the worker's
last error line. Exits the test caused itself (``kill()``) are planned and not reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field

from devservices._process import free_port

from tests.worker.conftest import Pipeline
from tests.worker.harness import WorkerProcess


@dataclass(frozen=True)
class Exit:
    code: int | None
    planned: bool
    after: float  # seconds the process had run
    last_error: str


def last_error(log: str) -> str:
    """The worker's last line naming an error (or its last line)."""
    lines = log.strip().splitlines() or ["(empty log)"]
    errors = [line for line in lines if "rror" in line or "Traceback" in line]
    return (errors or lines)[-1][:500]


@dataclass
class Supervisor:
    pipeline: Pipeline
    env: dict[str, str]
    name: str = "worker"
    restart_delay: float = 1.0
    exits: list[Exit] = field(default_factory=list)
    worker: WorkerProcess | None = None
    port: int = 0
    _started_at: float = 0.0
    _watch: asyncio.Task[None] | None = None
    _stopping: bool = False
    _killing: bool = False

    async def start(self, ready_timeout: float = 60.0) -> None:
        """Start the worker and the watch; return once it owns its partitions."""
        self._spawn()
        self._watch = asyncio.ensure_future(self._watch_loop())
        await self.wait_ready(ready_timeout)

    def _spawn(self) -> None:
        self.port = free_port()
        self.worker = self.pipeline.worker(HTTP_PORT=str(self.port), **self.env)
        self.worker.start()
        self._started_at = time.monotonic()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker is not None and "partitions_assigned" in self.worker.log():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not get its partitions in {timeout:.0f}s")

    def alive(self) -> bool:
        return (
            self.worker is not None
            and self.worker.process is not None
            and self.worker.process.poll() is None
        )

    def unplanned_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.planned]

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker now (a planned exit) and start the next one at once."""
        assert self.worker is not None and self.worker.process is not None
        self._killing = True  # the watch must not take this exit for a crash
        try:
            self.worker.signal(sig)
            code = await asyncio.to_thread(self.worker.wait, 30)
            self._record(code, planned=True)
            self._spawn()
        finally:
            self._killing = False

    async def stop(self) -> int | None:
        """Stop watching, then SIGTERM the worker; its exit code."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.worker is None:
            return None
        return await asyncio.to_thread(self.worker.stop)

    def _record(self, code: int | None, *, planned: bool) -> None:
        assert self.worker is not None
        self.exits.append(
            Exit(code, planned, time.monotonic() - self._started_at, last_error(self.worker.log()))
        )

    async def _watch_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.2)
            worker = self.worker
            if worker is None or worker.process is None or worker.process.poll() is None:
                continue
            if self._stopping:
                return
            if self._killing:
                continue
            self._record(worker.process.returncode, planned=False)
            await asyncio.sleep(self.restart_delay)
            if not self._stopping:
                self._spawn()
