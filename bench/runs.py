"""One measured run: pre-load messages, start a process (worker, naive or bare), wait until it
has handled them all, read its CPU and memory from outside, stop it, collect its results."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.stack import PARTITIONS, Stack, free_port
from bench.verify import CREATE, Result
from bench.workload import KIND_TOPIC, Message

COMMANDS = {
    "worker": ["-m", "worker", "run"],
    "naive": ["-m", "bench.naive"],
    "bare": ["-m", "bench.bare"],
}


@dataclass
class Measured:
    kind: str
    processed: int = 0
    skipped: int = 0
    seconds: float = 0.0  # first message started -> last handled
    cpu_seconds: float = 0.0  # user+sys of the process over the same span
    peak_rss_mb: float = 0.0
    rss_mb: list[tuple[int, float]] = field(default_factory=list)  # (handled, RSS) samples
    latencies_ms: list[float] = field(default_factory=list)
    creates: int = 0  # meetings Zoom made (201s: a create refused with a 429 made none)
    results: list[Result] = field(default_factory=list)
    log_path: str = ""

    @property
    def throughput(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0


async def preload(stack: Stack, prefix: str, messages: list[Message]) -> dict[str, float]:
    """Send every message, keyed by event id; returns send times (epoch s) by message id."""
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, enable_idempotence=False, linger_ms=20,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    sent: dict[str, float] = {}
    try:
        pending = []
        for m in messages:
            sent[m.message_id] = time.time()
            pending.append(
                await producer.send(
                    f"{prefix}.{KIND_TOPIC[m.kind]}", m.value(), key=m.event_id.encode()
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


class Collector:
    """Reads the run's result and dead-letter topics from the beginning, without a group."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest"
        )
        self._prefix = prefix
        self.results: list[Result] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        parts = [
            TopicPartition(f"{self._prefix}.{t}", p)
            for t in ("meeting.linked", "meeting.failed", "dlq")
            for p in range(PARTITIONS)
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    value = None if r.topic.endswith(".dlq") else json.loads(r.value)
                    self.results.append(Result(r.topic, r.partition, r.offset, r.timestamp, value))

    async def settle(self, want: int, within: float = 10.0) -> list[Result]:
        deadline = time.monotonic() + within
        while len(self.results) < want and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # anything extra (a duplicate) shows up too
        return list(self.results)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


class LogTail:
    """Counts handled messages from the process's one-line-per-message log, incrementally."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._partial = ""
        self.ready = False
        self.handled = 0
        self.skipped = 0
        self.latencies_ms: list[float] = []

    def poll(self) -> None:
        chunk = self._file.read()
        if not chunk:
            return
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith("READY"):
                self.ready = True
            if not line.startswith("{"):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == "message":
                self.handled += 1
                self.skipped += doc.get("outcome") == "skipped"
                if "duration_ms" in doc:
                    self.latencies_ms.append(float(doc["duration_ms"]))
            elif doc.get("event") == "batch":
                self.handled += int(doc["count"])

    def close(self) -> None:
        self._file.close()


async def _ready(kind: str, port: int, tail: LogTail, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}")
            tail.poll()
            if kind != "worker" and tail.ready:
                return
            if kind == "worker":
                try:
                    answer = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    if answer.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.02)
    raise RuntimeError(f"{kind} not ready in 60 s")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def measure(
    stack: Stack,
    prefix: str,
    kind: str,
    expected: int,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300.0,  # noqa: ASYNC109 - a run's budget
    profile: str | None = None,
    collect: bool = True,
    partial_ok: bool = False,
) -> Measured:
    """Run ``kind`` over the pre-loaded topics of ``prefix`` until ``expected`` are handled."""
    port = free_port()
    env = {**os.environ, **stack.env(prefix, port, **(extra_env or {}))}
    log_path = os.path.join(tempfile.gettempdir(), f"bench-{prefix}-{kind}.log")
    argv = [sys.executable, *COMMANDS[kind]]
    if profile and profile.endswith(".prof"):  # cProfile: exact CPU split by function
        argv = [sys.executable, "-m", "cProfile", "-o", profile, *COMMANDS[kind]]
    elif profile:
        argv = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", profile,
                "--show-all", *COMMANDS[kind]]  # fmt: skip
    collector = Collector(stack, prefix) if collect else None
    if collector:
        await collector.start()
    creates_before = _meetings_made(stack)
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - once per run
        process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own modules
            argv, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    tail = LogTail(log_path)
    out = Measured(kind, log_path=log_path)
    try:
        proc = psutil.Process(process.pid)
        if profile:  # pyinstrument runs the worker in the same process: measure that one
            pass
        await _ready(kind, port, tail, process)
        started, cpu0 = time.monotonic(), _cpu(proc)
        deadline = started + timeout
        first: float | None = None  # the group join (seconds on this broker) is not timed
        next_sample = 0.0
        while tail.handled < expected:
            if time.monotonic() > deadline:
                if partial_ok:
                    break
                raise TimeoutError(f"{kind}: {tail.handled}/{expected} handled in {timeout} s")
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}, see {log_path}")
            await asyncio.sleep(0.05)
            tail.poll()
            if first is None and tail.handled:
                first = time.monotonic() - (tail.latencies_ms[0] / 1000 if tail.latencies_ms else 0)
            if time.monotonic() >= next_sample:
                out.rss_mb.append((tail.handled, proc.memory_info().rss / 2**20))
                next_sample = time.monotonic() + 0.5
        out.seconds = time.monotonic() - (first or started)
        out.cpu_seconds = _cpu(proc) - cpu0
        out.peak_rss_mb = _peak_rss_mb(process.pid)
        out.rss_mb.append((tail.handled, proc.memory_info().rss / 2**20))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60 if profile else 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    tail.poll()
    tail.close()
    out.processed, out.skipped, out.latencies_ms = tail.handled, tail.skipped, tail.latencies_ms
    out.creates = _meetings_made(stack) - creates_before
    if collector:
        out.results = await collector.settle(expected - tail.skipped)
        await collector.stop()
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(values: list[float]) -> dict[str, Any]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "count": len(values)}


def _meetings_made(stack: Stack) -> int:
    """Creates Zoom answered with 201: a create sent again after a 429 (the account's window
    was full: nothing made) is not a second meeting."""
    calls = stack.zoom.api_calls()
    return sum(1 for call in calls if call.endpoint == CREATE and call.status == 201)
