"""``python -m bench`` (``make bench``): the whole benchmark in one run; see README "Benchmark".

Sizes are flags (``--help``); the defaults fit in under 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench import replicas, scenarios
from bench.report import table
from bench.stack import Stack, connect_users, stack

RESULTS = Path(__file__).parent / "results" / "latest.json"


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--messages", type=int, default=3000, help="worker backlog per latency")
    p.add_argument(
        "--naive",
        default="0:600,50:300,200:100",
        help="naive backlog per latency, latency_ms:messages,...",
    )
    p.add_argument("--latencies", default="0,50,200", help="Zoom latencies in ms")
    p.add_argument("--max-in-flight", type=int, default=128)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--accounts", type=int, default=40)
    p.add_argument("--bare", type=int, default=20000, help="bare loop backlog")
    p.add_argument("--memory", type=int, default=30000, help="backlog of the memory run (0: skip)")
    p.add_argument("--fair-seconds", type=float, default=20, help="0: skip fairness")
    p.add_argument("--fair-rate", type=float, default=20, help="others' messages per second")
    p.add_argument("--fair-backlog", type=int, default=600, help="the hot account's backlog")
    p.add_argument("--fair-latency", type=float, default=50)
    p.add_argument("--replicas", default="1,2,4", help="replica counts sharing one account")
    p.add_argument("--replicas-backlog", type=int, default=800, help="the one account's creates")
    p.add_argument("--calm-rate", type=float, default=12, help="the calm account's events/s")
    p.add_argument("--only", default="", help="run only these scenarios (e.g. replicas)")
    p.add_argument("--profile", default="", help="write a pyinstrument profile of the 0 ms run")
    p.add_argument("--out", default=str(RESULTS))
    return p.parse_args(argv)  # fmt: skip


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
    }


async def _run(s: Stack, args: argparse.Namespace) -> dict[str, Any]:
    env = {"MAX_IN_FLIGHT": str(args.max_in_flight)}
    s.organizers = await connect_users(s, "bench", args.users, args.accounts + 1)
    hot_account = f"bench-acct{args.accounts}"
    hot = [u for u in s.organizers if s.account_of[u] == hot_account]
    s.organizers = [u for u in s.organizers if s.account_of[u] != hot_account]
    latencies = [float(x) for x in args.latencies.split(",")]
    naive = {float(k): int(v) for k, v in (kv.split(":") for kv in args.naive.split(","))}
    out: dict[str, Any] = {
        "machine": machine(),
        "setup": {
            "broker": s.broker,
            "max_in_flight": args.max_in_flight,
            "db_pool": 16,  # DATABASE_POOL_SIZE's default
            "partitions": 12,
            "organizers": len(s.organizers),
            "zoom_accounts": args.accounts,
            "plan": "pro (emulator: 20 creates/s, 30 light/s per account; every replica "
            "takes its slots from one schedule per account: 18.4/s and a burst of 1)",
            "daily_limit": "raised to 1e9 on the emulator",
            "workload": "each event created; 50% also updated; 10% also deleted",
        },
    }
    only = set(filter(None, args.only.split(",")))
    if args.replicas and (not only or "replicas" in only):
        counts = [int(n) for n in args.replicas.split(",")]
        calm = [u for u in s.organizers if s.account_of[u] == s.account_of[s.organizers[0]]]
        print(f"replicas sharing one Zoom account ({', '.join(map(str, counts))}):", flush=True)
        out["replicas"] = await replicas.replicas(
            s, hot, calm, counts, args.replicas_backlog, args.calm_rate, env
        )
    if only and "throughput" not in only:
        return out
    print("throughput and latency (backlog, naive vs worker):", flush=True)
    out["throughput"] = await scenarios.throughput(
        s, latencies, args.messages, naive, env, args.profile or None
    )
    zero = [r for r in out["throughput"]["rows"] if r["zoom_latency_ms"] == 0]
    if zero and args.bare:
        out["cpu"] = await scenarios.cpu(s, zero[0]["worker"], args.bare, env)
    if args.fair_seconds:
        others = [u for u in s.organizers if int(u.rsplit("-acct", 1)[0].rsplit("-u", 1)[1]) >= 0]
        by_account: dict[str, str] = {}
        for u in s.organizers:
            by_account.setdefault(s.account_of[u], u)
        others = list(by_account.values())[:20]
        out["fairness"] = await scenarios.fairness(
            s, hot, others, args.fair_backlog, args.fair_rate, args.fair_seconds,
            args.fair_latency, env,
        )  # fmt: skip
    if args.memory:
        out["memory"] = await scenarios.memory(s, args.memory, env, 600)
    return out


def main(argv: list[str]) -> int:
    args = _args(argv)
    started = time.monotonic()
    with stack() as s:
        out = asyncio.run(_run(s, args))
    out["total_seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    print(f"\nwritten to {args.out}")
    return 0 if all_ok(out) else 1


def all_ok(out: dict[str, Any]) -> bool:
    rows = out.get("throughput", {}).get("rows", [])
    checks = [r["worker"]["checks"] for r in rows]
    if "memory" in out:
        checks.append(out["memory"]["checks"])
    linked = all(r["linked"] >= r["hot_backlog"] for r in out.get("replicas", {}).get("rows", []))
    return linked and all(c.get("ok") for c in checks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
