"""The table ``python -m bench`` prints."""

from __future__ import annotations

from typing import Any


def _ok(checks: dict[str, Any]) -> str:
    if not checks:
        return "-"
    if checks.get("ok"):
        return "ok"
    bad = [k for k in ("missing", "duplicates", "order_violations", "wrong_final_state",
                       "duplicate_meetings", "dead_lettered") if checks.get(k)]  # fmt: skip
    if checks.get("failed"):
        bad.append(f"failed={checks['failed']}")
    return "FAIL " + ",".join(bad)


def table(out: dict[str, Any]) -> str:
    m, s = out["machine"], out["setup"]
    lines: list[str] = [
        f"\nmachine: {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"{m['platform']}",
        f"setup: broker {s.get('broker', '?')}, MAX_IN_FLIGHT={s['max_in_flight']} "
        f"(DB pool {s['db_pool']}), "
        f"{s['partitions']} partitions, {s['organizers']} organizers in {s['zoom_accounts']} "
        f"Zoom accounts ({s['plan']}), daily limit {s['daily_limit']}",
        "",
        f"{'zoom ms':>7} {'who':<7} {'msgs':>6} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/ev':>9} {'peak MB':>8} {'speedup':>7}  checks",
    ]
    for row in out.get("throughput", {}).get("rows", []):
        for who in ("naive", "worker"):
            r = row[who]
            speed = f"x{row['speedup']}" if who == "worker" else ""
            lines.append(
                f"{row['zoom_latency_ms']:>7.0f} {who:<7} {r['messages']:>6} "
                f"{r['events_per_second']:>9.1f} {r['latency_ms']['p50']:>8.1f} "
                f"{r['latency_ms']['p99']:>8.1f} {r['cpu_ms_per_event']:>9.3f} "
                f"{r['peak_rss_mb']:>8.1f} {speed:>7}  {_ok(r['checks'])}"
            )
    if "cpu" in out:
        c = out["cpu"]
        lines.append(
            f"\ncpu per event at 0 ms: worker {c['worker']['cpu_ms_per_event']:.3f} ms, bare "
            f"aiokafka loop {c['bare']['cpu_ms_per_event']:.3f} ms ({c['bare']['messages']} msgs)"
            f" -> x{c['ratio']} (goal: within 3x)"
        )
    if "fairness" in out:
        f = out["fairness"]
        calm, busy = f["without_hot"], f["with_hot"]
        if "error" in calm or "error" in busy:
            lines.append(f"\nfairness: {calm.get('error') or busy.get('error')}")
        else:
            lines.append(
                f"\nfairness (Zoom {f['zoom_latency_ms']:.0f} ms, 20 accounts at "
                f"{f['rate_per_second']:.0f}/s for {f['seconds']:.0f} s): others' e2e p99 "
                f"{calm['others_e2e_ms']['p99']:.0f} ms alone, {busy['others_e2e_ms']['p99']:.0f}"
                f" ms beside a hot account with a {busy['hot_backlog']} backlog -> "
                f"x{f['p99_ratio']} (goal: within 1.5x)"
            )
    if "replicas" in out:
        rep = out["replicas"]
        lines.append(
            f"\nreplicas sharing one Zoom account (ceiling {rep['ceiling_per_second']:.0f} "
            f"creates/s; calm account alone: p99 {rep['calm_alone']['calm_e2e_ms']['p99']:.0f} ms)"
        )
        lines.append(
            f"{'replicas':>8} {'events/s':>9} {'creates/s':>9} {'ceiling':>8} {'429s':>6} "
            f"{'conns':>5} {'cpu ms/ev':>9} {'p50 ms':>7} {'p99 ms':>7} {'calm p99':>9}"
        )
        for r in rep["rows"]:
            lines.append(
                f"{r['replicas']:>8} {r['events_per_second']:>9.1f} "
                f"{r['zoom_creates_per_second']:>9.1f} {r['ceiling_share']:>8.0%} "
                f"{r['share_429']:>6.1%} {r['peak_connections_per_replica']:>5} "
                f"{r['cpu_ms_per_event']:>9.3f} {r['processing_ms']['p50']:>7.0f} "
                f"{r['processing_ms']['p99']:>7.0f} "
                f"{r['calm_e2e_ms']['p99']:>6.0f} ms (x{r['calm_p99_vs_alone']})"
            )
    if "memory" in out:
        mem = out["memory"]
        lines.append(
            f"\nmemory: {mem['messages']} messages at 0 ms in {mem['seconds']} s, peak RSS "
            f"{mem['peak_rss_mb']} MB (goal: flat, < 250 MB); RSS by handled: "
            + ", ".join(f"{h}:{mb}" for h, mb in mem["rss_mb_by_handled"])
            + f"  checks {_ok(mem['checks'])}"
        )
    lines.append(f"\ntotal {out.get('total_seconds', 0)} s")
    return "\n".join(lines)
