"""Replicas share Zoom's per-account ceiling (issue #18): 1, 2 and 4 worker processes in one
group over 12 partitions drain a backlog of creates whose organizers all sit on one Zoom
account (the emulator enforcing Pro's 20 creates a second with 429 and ``Retry-After``), while
a calm account beside it sends a paced trickle.

Per replica count: events/s, the achieved share of the account's create ceiling, the share of
Zoom's answers that were 429, the peak database connections of any one replica (sampled from
``pg_stat_activity`` every 50 ms; each replica names its connections), CPU ms per event (all
replicas), p50/p99 of the hot backlog's processing time, and the calm account's end-to-end p99
against the same trickle, for as long, with no backlog beside it (a p99 is the fifth-worst of
~430 samples at the defaults; the baseline had been a 12 s run, 144 samples, whose p99 moved
between 22 and 57 ms from run to run).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg

from bench.runs import Collector, LogTail, preload, summary
from bench.scenarios import _assigned, _paced, _prefix
from bench.stack import Stack, free_port
from bench.workload import Message

CREATE = "POST /v2/users/{userId}/meetings"
CEILING = 20.0  # Pro: creates a second per account (the emulator enforces it)


@dataclass
class _Replica:
    process: subprocess.Popen[bytes]
    tail: LogTail
    name: str
    cpu0: float = 0.0


@dataclass
class _Peak:
    by_replica: dict[str, int] = field(default_factory=dict)


async def _sample_connections(dsn: str, names: list[str], peak: _Peak, done: asyncio.Event) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while not done.is_set():
            cursor = await conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE application_name = ANY(%s) GROUP BY application_name",
                (names,),
            )
            for name, count in await cursor.fetchall():
                peak.by_replica[name] = max(peak.by_replica.get(name, 0), int(count))
            await asyncio.sleep(0.05)


def _cpu(process: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


async def _run(
    stack: Stack, replicas: int, hot: list[str], calm: list[str], backlog: int,
    calm_rate: float, seconds: float, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    prefix = _prefix(f"rep{replicas}" if backlog else "rep-calm")
    await stack.create_topics(prefix)
    messages = [
        Message("created", f"{prefix}-h{i}", f"{prefix}-h{i}-1", 1, hot[i % len(hot)],
                f"{prefix}-h{i} r1")
        for i in range(backlog)
    ]  # fmt: skip
    hot_account = stack.account_of[hot[0]]
    collector = Collector(stack, prefix)
    await collector.start()
    started_procs: list[_Replica] = []
    names = [f"bench-{prefix}-r{i}" for i in range(replicas)]
    for name in names:
        log_path = os.path.join(tempfile.gettempdir(), f"{name}.log")
        with open(log_path, "wb") as log:  # noqa: ASYNC230
            process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "worker", "run"],
                env={
                    **os.environ,
                    **stack.env(prefix, free_port(), **env),
                    "DATABASE_APPLICATION_NAME": name,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started_procs.append(_Replica(process, LogTail(log_path), name))
    peak, done = _Peak(), asyncio.Event()
    sampler = asyncio.create_task(_sample_connections(stack.dsn, names, peak, done))
    trickle: asyncio.Task[Any] | None = None
    try:
        while not all(_assigned(r.tail.path) for r in started_procs):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        # Every replica owns its partitions: now the backlog arrives (the group's join and
        # rebalances, seconds on this broker, are not what is measured).
        for r in started_procs:
            r.cpu0 = _cpu(r.process)
        refusals0 = stack.zoom.qps_refusals(hot_account)
        creates0 = stack.zoom.calls(CREATE)
        began = time.monotonic()
        await preload(stack, prefix, messages)
        trickle = asyncio.create_task(_paced(stack, prefix, calm, calm_rate, seconds))
        expected = backlog + int(calm_rate * seconds)
        while sum(r.tail.handled for r in started_procs) < expected:
            if time.monotonic() - began > seconds + backlog / CEILING * 2 + 60:
                raise TimeoutError(f"{replicas} replicas: backlog not drained")
            await asyncio.sleep(0.1)
            for r in started_procs:
                r.tail.poll()
        took = time.monotonic() - began
        paced = await trickle
        cpu = sum(_cpu(r.process) - r.cpu0 for r in started_procs)
    finally:
        done.set()
        await sampler
        for r in started_procs:
            r.process.send_signal(signal.SIGTERM)
        for r in started_procs:
            r.process.wait(30)
            r.tail.poll()
            r.tail.close()
    results = await collector.settle(expected)
    await collector.stop()
    sent_at = {m.message_id: at for m, at in paced}
    calm_ms = [
        r.timestamp_ms - sent_at[r.value["correlation_id"]] * 1000
        for r in results
        if r.value and r.value.get("correlation_id") in sent_at
    ]
    creates = stack.zoom.calls(CREATE) - creates0
    refused = stack.zoom.qps_refusals(hot_account) - refusals0
    handled = sum(r.tail.handled for r in started_procs)
    hot_ms = [ms for r in started_procs for ms in r.tail.latencies_ms]
    linked = sum(1 for r in results if r.value and r.value.get("action") == "created")
    # The hot account's pace: its meetings over the span from its first result to its last
    # (the calm trickle and the run's tail are not the account's ceiling at work).
    hot_ids = {m.message_id for m in messages}
    stamps = sorted(r.timestamp_ms for r in results
                    if r.value and r.value.get("correlation_id") in hot_ids)  # fmt: skip
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    pace = (len(stamps) - 1) / span if span else 0.0
    row = {
        "replicas": replicas,
        "hot_backlog": backlog,
        "seconds": round(took, 1),
        "events_per_second": round(handled / took, 1),
        "zoom_creates_per_second": round(pace, 1),
        "ceiling_share": round(pace / CEILING, 3) if backlog else None,
        "share_429": round(refused / max(creates, 1), 4),
        "peak_connections_per_replica": max(peak.by_replica.values(), default=0),
        "cpu_ms_per_event": round(cpu / max(handled, 1) * 1000, 3),
        "processing_ms": summary(hot_ms),
        "calm_e2e_ms": summary(calm_ms),
        "linked": linked,
    }
    print(
        f"  {replicas} replica(s): {row['events_per_second']} ev/s, "
        f"{row['zoom_creates_per_second']} creates/s ({row['ceiling_share']} of the ceiling), "
        f"429 share {row['share_429']}, peak {row['peak_connections_per_replica']} "
        f"connections/replica, {row['cpu_ms_per_event']} CPU ms/event, "
        f"calm p99 {row['calm_e2e_ms']['p99']:.0f} ms",
        flush=True,
    )
    return row


async def replicas(
    stack: Stack, hot: list[str], calm: list[str], counts: list[int], backlog: int,
    calm_rate: float, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    seconds = max(8.0, backlog / CEILING * 0.9)  # the trickle's length: about the drain's
    alone = await _run(stack, 1, hot, calm, 0, calm_rate, seconds, env)
    rows = [await _run(stack, n, hot, calm, backlog, calm_rate, seconds, env) for n in counts]
    p99_alone = alone["calm_e2e_ms"]["p99"]
    for row in rows:
        row["calm_p99_vs_alone"] = round(row["calm_e2e_ms"]["p99"] / p99_alone, 2)
    return {"calm_alone": alone, "rows": rows, "ceiling_per_second": CEILING}
