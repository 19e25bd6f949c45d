"""The benchmark's scenarios, each returning a JSON-ready dict."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from devservices.zoom_emulator import Fault

from bench.runs import Measured, measure, preload, summary
from bench.stack import Stack
from bench.verify import check
from bench.workload import KIND_TOPIC, Message, events


def _prefix(name: str) -> str:
    return f"b{secrets.token_hex(2)}-{name}"


def _zoom_latency(stack: Stack, ms: float) -> None:
    stack.zoom.faults = [Fault(kind="latency", latency_ms=ms)] if ms else []


async def _backlog_run(
    stack: Stack, kind: str, count: int, latency_ms: float, env: dict[str, str],
    timeout: float, profile: str | None = None,  # noqa: ASYNC109
) -> tuple[Measured, dict[str, Any]]:  # fmt: skip
    prefix = _prefix(f"{kind}{int(latency_ms)}")
    await stack.create_topics(prefix)
    messages = events(prefix, count, stack.organizers)
    await preload(stack, prefix, messages)
    _zoom_latency(stack, latency_ms)
    try:
        run = await measure(stack, prefix, kind, count, extra_env=env, timeout=timeout,
                            profile=profile, collect=kind != "bare")  # fmt: skip
    finally:
        _zoom_latency(stack, 0)
    checks: dict[str, Any] = {}
    if kind != "bare":
        users = [stack.zoom_user_of[u] for u in stack.organizers]
        checks = check(messages, run.results, run.skipped, stack.zoom, users, run.creates).as_dict()
    return run, {
        "kind": kind,
        "zoom_latency_ms": latency_ms,
        "messages": count,
        "seconds": round(run.seconds, 2),
        "events_per_second": round(run.throughput, 1),
        "latency_ms": summary(run.latencies_ms),
        "cpu_seconds": round(run.cpu_seconds, 2),
        "cpu_ms_per_event": round(run.cpu_seconds / max(run.processed, 1) * 1000, 3),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "checks": checks,
    }


async def throughput(
    stack: Stack, latencies: list[float], worker_n: int, naive_n: dict[float, int],
    env: dict[str, str], profile: str | None,
) -> dict[str, Any]:  # fmt: skip
    rows = []
    for ms in latencies:
        _, naive = await _backlog_run(stack, "naive", naive_n[ms], ms, env, 300)
        _, worker = await _backlog_run(stack, "worker", worker_n, ms, env, 300,
                                       profile if ms == 0 else None)  # fmt: skip
        ratio = worker["events_per_second"] / max(naive["events_per_second"], 1e-9)
        rows.append({"zoom_latency_ms": ms, "worker": worker, "naive": naive,
                     "speedup": round(ratio, 1)})  # fmt: skip
        print(f"  latency {ms:>4} ms: worker {worker['events_per_second']}/s, "
              f"naive {naive['events_per_second']}/s, x{ratio:.1f}", flush=True)  # fmt: skip
    return {"rows": rows}


async def cpu(
    stack: Stack, worker_row: dict[str, Any], bare_n: int, env: dict[str, str]
) -> dict[str, Any]:
    _, bare = await _backlog_run(stack, "bare", bare_n, 0, env, 120)
    ratio = worker_row["cpu_ms_per_event"] / max(bare["cpu_ms_per_event"], 1e-9)
    print(f"  cpu: worker {worker_row['cpu_ms_per_event']} ms/event, bare loop "
          f"{bare['cpu_ms_per_event']} ms/event, x{ratio:.1f}", flush=True)  # fmt: skip
    return {"worker": worker_row, "bare": bare, "ratio": round(ratio, 2)}


async def memory(
    stack: Stack, count: int, env: dict[str, str], budget_seconds: float
) -> dict[str, Any]:
    run, row = await _backlog_run(stack, "worker", count, 0, env, budget_seconds)
    step = max(1, len(run.rss_mb) // 12)
    row["rss_mb_by_handled"] = [(h, round(mb, 1)) for h, mb in run.rss_mb[::step]]
    print(f"  memory: {count} messages, peak RSS {row['peak_rss_mb']} MB", flush=True)
    return row


async def _paced(
    stack: Stack, prefix: str, others: list[str], rate: float, seconds: float
) -> list[tuple[Message, float]]:
    """Creates from ``others`` at ``rate`` per second in total, sent as time passes."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, enable_idempotence=False)
    await producer.start()
    sent: list[tuple[Message, float]] = []
    started = time.monotonic()
    try:
        i = 0
        while time.monotonic() - started < seconds:
            event_id = f"{prefix}-e{i}"
            m = Message("created", event_id, f"{event_id}-1", 1, others[i % len(others)],
                        f"{event_id} r1")  # fmt: skip
            await producer.send(f"{prefix}.{KIND_TOPIC['created']}", m.value(datetime.now(UTC)),
                                key=event_id.encode())  # fmt: skip
            sent.append((m, time.time()))
            i += 1
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _assigned(log_path: str) -> bool:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            return "partitions_assigned" in log.read()
    except FileNotFoundError:
        return False


async def _fair_run(
    stack: Stack, hot: list[str], others: list[str], backlog: int, rate: float, seconds: float,
    latency_ms: float, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    prefix = _prefix("fair-hot" if backlog else "fair-calm")
    await stack.create_topics(prefix)
    hot_messages = [
        Message("created", f"{prefix}-h{i}", f"{prefix}-h{i}-1", 1, hot[i % len(hot)],
                f"{prefix}-h{i} r1")
        for i in range(backlog)
    ]  # fmt: skip
    await preload(stack, prefix, hot_messages)
    _zoom_latency(stack, latency_ms)
    paced: list[tuple[Message, float]] = []

    async def traffic() -> None:
        # Start once the worker owns its partitions (and has begun on the hot backlog), so
        # the group join, seconds on this broker, is not counted as the others' latency.
        log_path = os.path.join(tempfile.gettempdir(), f"bench-{prefix}-worker.log")
        while not _assigned(log_path):  # noqa: ASYNC110 - another process writes it
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        paced.extend(await _paced(stack, prefix, others, rate, seconds))

    sender = asyncio.create_task(traffic())
    try:
        expected = backlog + int(rate * seconds)
        run = await measure(
            stack, prefix, "worker", expected, extra_env=env, timeout=seconds + 60,
            partial_ok=True,
        )  # fmt: skip
        await sender
    finally:
        _zoom_latency(stack, 0)
    sent_at = {m.message_id: at for m, at in paced}
    latencies = []
    handled = 0
    for r in run.results:
        if r.value and r.value.get("correlation_id") in sent_at:
            handled += 1
            latencies.append(r.timestamp_ms - sent_at[r.value["correlation_id"]] * 1000)
    # Still unanswered at the end: counted with their age so far (a lower bound).
    answered = {r.value.get("correlation_id") for r in run.results if r.value}
    now_ms = time.time() * 1000
    latencies += [now_ms - at * 1000 for mid, at in sent_at.items() if mid not in answered]
    return {"hot_backlog": backlog, "others_sent": len(paced), "others_results": handled,
            "others_e2e_ms": summary(latencies), "seconds": round(run.seconds, 1)}  # fmt: skip


async def fairness(
    stack: Stack, hot: list[str], others: list[str], backlog: int, rate: float, seconds: float,
    latency_ms: float, env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    calm = await _fair_run(stack, hot, others, 0, rate, seconds, latency_ms, env)
    busy = await _fair_run(stack, hot, others, backlog, rate, seconds, latency_ms, env)
    p99_calm = calm.get("others_e2e_ms", {}).get("p99", float("nan"))
    p99_busy = busy.get("others_e2e_ms", {}).get("p99", float("nan"))
    ratio = p99_busy / p99_calm if p99_calm else float("nan")
    print(f"  fairness: others p99 {p99_calm:.0f} ms alone, {p99_busy:.0f} ms beside the hot "
          f"account, x{ratio:.1f}", flush=True)  # fmt: skip
    return {"without_hot": calm, "with_hot": busy, "p99_ratio": round(ratio, 2),
            "zoom_latency_ms": latency_ms, "rate_per_second": rate, "seconds": seconds}  # fmt: skip
