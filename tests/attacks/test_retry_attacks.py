"""Self-healing retries under attack: crashes, horizons, redeliveries, replicas, Postgres away.

Real worker processes, broker, Postgres and emulator. The invariant checked on the results is
the README's: per source message one notice (``next_attempt_at``) then one outcome, under two
ids; never a notice after the outcome; never an older revision's outcome after a newer one's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from devservices.faultproxy import FaultProxy
from devservices.zoom_emulator.faults import Fault

from tests.attacks.conftest import CREATE, rows, start
from tests.worker.conftest import Pipeline
from tests.worker.harness import event


def by_source(results: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, int]]]:
    """correlation_id -> [(message_id, 'notice'|'outcome', revision)] in publish order."""
    out: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for r in results:
        kind = "notice" if r.get("next_attempt_at") else "outcome"
        out[r["correlation_id"]].append((r["message_id"], kind, r["revision"]))
    return out


def check_ids(results: list[dict[str, Any]]) -> list[str]:
    """Violations of 'one notice then one outcome per source, distinct ids, never a notice after
    the outcome, same id = same content'."""
    problems = []
    content: dict[str, str] = {}
    for r in results:
        key = json.dumps(
            {k: v for k, v in r.items() if k not in ("failed_at", "linked_at")}, sort_keys=True
        )
        if r["message_id"] in content and content[r["message_id"]] != key:
            problems.append(f"id {r['message_id'][:8]} reused for other content: {r}")
        content.setdefault(r["message_id"], key)
    for source, seq in by_source(results).items():
        kinds = {}
        for mid, kind, _ in seq:
            kinds.setdefault(mid, kind)
        order = list(dict.fromkeys(mid for mid, _, _ in seq))
        notices = [m for m in order if kinds[m] == "notice"]
        outcomes = [m for m in order if kinds[m] == "outcome"]
        if len(notices) > 1 or len(outcomes) > 1:
            problems.append(f"{source[:8]}: {len(notices)} notice ids, {len(outcomes)} outcome ids")
        seen_outcome = False
        for _mid, kind, _ in seq:
            seen_outcome |= kind == "outcome"
            if kind == "notice" and seen_outcome:
                problems.append(f"{source[:8]}: a notice after the outcome")
    return problems


async def test_a_retry_killed_between_storing_and_publishing_its_outcome_still_publishes_it(
    pipeline: Pipeline,
) -> None:
    """SIGKILL after the retry stored its outcome (conclude) and before it published it. For a
    Kafka record the uncommitted offset brings it back; a retry's record is long committed."""
    organizer = f"kr-{uuid.uuid4().hex[:6]}"
    await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    a, _ = start(pipeline, crash_at="after_db:2")  # 1: the notice; 2: the retry's outcome
    b = None
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        source = event(ev, 1, organizer)
        await pipeline.sender.send("created", source)
        (notice,) = await pipeline.results.wait_for(ev, 1, timeout=30)
        assert "next_attempt_at" in notice
        pipeline.zoom.faults = []
        assert a.process is not None
        await asyncio.to_thread(a.process.wait, 30)  # killed itself at after_db:2
        b, _ = start(pipeline)
        try:
            await pipeline.results.wait_for(ev, 2, timeout=25)
        except AssertionError:
            state = rows(
                pipeline.env["DATABASE_URL"],
                "SELECT state, seen_revision, last_result IS NOT NULL FROM event_links"
                " WHERE event_id = %s",
                ev,
            )
            pending = rows(
                pipeline.env["DATABASE_URL"],
                "SELECT count(*) FROM retry_schedule WHERE event_id = %s",
                ev,
            )
            raise AssertionError(
                f"the outcome was never published: link {state}, retries pending {pending}, "
                f"results {pipeline.results.for_event(ev)}"
            ) from None
    finally:
        a.stop()
        if b is not None:
            b.stop()


async def test_after_the_horizon_a_replay_publishes_its_outcome_under_a_new_id(
    pipeline: Pipeline,
) -> None:
    """Past RETRY_HORIZON_SECONDS the failure is final (outcome id) and the record parked; the
    README's cure is `dlq replay`. The replay's success is a second outcome of the same source."""
    organizer = f"hz-{uuid.uuid4().hex[:6]}"
    await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    a, _ = start(pipeline, RETRY_HORIZON_SECONDS="3", RETRY_DELAYS_SECONDS="1")
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        await pipeline.results.until(
            lambda: any(
                r.get("retryable") and not r.get("next_attempt_at")
                for r in pipeline.results.for_event(ev)
            ),
            timeout=40,
        )
        await pipeline.results.until(
            lambda: any(ev.encode() in h["__value__"] for h in pipeline.results.dead_letters()),
            timeout=10,
        )
        parked = next(h for h in pipeline.results.dead_letters() if ev.encode() in h["__value__"])
        pipeline.zoom.faults = []
        # What `zoom-worker dlq replay` does: the parked value, untouched, onto its topic.
        await pipeline.sender.send("created", parked["__value__"], key=ev)
        await pipeline.results.until(
            lambda: any(r.get("action") == "created" for r in pipeline.results.for_event(ev)),
            timeout=30,
        )
        got = pipeline.results.for_event(ev)
        print(
            "\n",
            [
                (
                    r["message_id"][:8],
                    r.get("action") or r.get("reason"),
                    bool(r.get("next_attempt_at")),
                )
                for r in got
            ],
        )
        problems = check_ids(got)
        assert not problems, problems
    finally:
        a.stop()


async def test_redeliveries_and_an_older_revision_while_retries_are_pending(
    pipeline: Pipeline,
) -> None:
    organizer = f"rd-{uuid.uuid4().hex[:6]}"
    zoom_user = await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    a, _ = start(pipeline, RETRY_DELAYS_SECONDS="2")
    b, _ = start(pipeline, RETRY_DELAYS_SECONDS="2")
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        rev1, rev2 = event(ev, 1, organizer), event(ev, 2, organizer, title="Moved")
        await pipeline.sender.send("created", rev1)
        await pipeline.sender.send("created", rev1)  # redelivered while pending
        await pipeline.results.wait_for(ev, 2, timeout=30)
        await pipeline.sender.send("updated", rev2)  # newer, fails too: replaces the retry
        await pipeline.results.until(
            lambda: any(r["revision"] == 2 for r in pipeline.results.for_event(ev)), timeout=30
        )
        await pipeline.sender.send("created", rev1)  # older, after a pending newer one
        await pipeline.results.wait_for(ev, 4, timeout=30)
        await pipeline.sender.send("updated", rev2)  # redelivered while pending
        await pipeline.results.wait_for(ev, 5, timeout=30)
        pipeline.zoom.faults = []
        await pipeline.results.until(
            lambda: any(r.get("action") == "created" for r in pipeline.results.for_event(ev)),
            timeout=30,
        )
        await pipeline.sender.send("created", rev1)  # stale, after the outcome
        await pipeline.sender.send("updated", rev2)  # redelivered after the outcome
        await pipeline.results.settle(4.0)
        got = pipeline.results.for_event(ev)
        print(
            "\n",
            [
                (
                    r["correlation_id"][:6],
                    r["message_id"][:8],
                    r["revision"],
                    r.get("action") or r.get("reason"),
                    bool(r.get("next_attempt_at")),
                )
                for r in got
            ],
        )
        problems = check_ids(got)
        outcomes = [r["revision"] for r in got if not r.get("next_attempt_at")]
        assert outcomes == sorted(outcomes), outcomes
        assert len(pipeline.zoom.meetings(zoom_user)) == 1
        meeting = pipeline.zoom.meetings(zoom_user)[0]
        assert meeting.topic == "Moved", meeting.topic
        assert not problems, problems
    finally:
        a.stop()
        b.stop()


async def test_a_newer_revision_while_a_retry_runs_in_another_replica(
    pipeline: Pipeline,
) -> None:
    organizer = f"nr-{uuid.uuid4().hex[:6]}"
    zoom_user = await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    a, _ = start(pipeline)
    b, _ = start(pipeline)
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        await pipeline.results.wait_for(ev, 1, timeout=30)
        creates = pipeline.zoom.calls(CREATE)
        # The retry's create takes 3 s at Zoom; rev 2 arrives meanwhile.
        pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=3000, count=1)]
        deadline = time.monotonic() + 15
        while pipeline.zoom.calls(CREATE) == creates and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        claimed = rows(
            pipeline.env["DATABASE_URL"],
            "SELECT claimed_by IS NOT NULL FROM retry_schedule WHERE event_id = %s",
            ev,
        )
        await pipeline.sender.send("updated", event(ev, 2, organizer, title="Moved"))
        await pipeline.results.until(
            lambda: any(r["revision"] == 2 for r in pipeline.results.for_event(ev)), timeout=30
        )
        await pipeline.results.settle(2.0)
        got = pipeline.results.for_event(ev)
        print(
            "\nclaimed while rev 2 sent:",
            claimed,
            [(r["revision"], r.get("action") or r.get("reason")) for r in got],
        )
        assert not check_ids(got), check_ids(got)
        outcomes = [r["revision"] for r in got if not r.get("next_attempt_at")]
        assert outcomes == sorted(outcomes)
        meetings = pipeline.zoom.meetings(zoom_user)
        assert [m.topic for m in meetings] == ["Moved"]
    finally:
        a.stop()
        b.stop()


async def test_a_worker_killed_mid_retry_leaves_it_to_another_after_the_claim_lease(
    pipeline: Pipeline,
) -> None:
    organizer = f"kc-{uuid.uuid4().hex[:6]}"
    zoom_user = await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    # after_zoom #1 never comes (the first create fails); after_zoom:1 is the retry's create,
    # made on Zoom, the process killed before it stores it.
    a, _ = start(pipeline, crash_at="after_zoom:1", RETRY_LEASE_SECONDS="4")
    b = None
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        await pipeline.results.wait_for(ev, 1, timeout=30)
        pipeline.zoom.faults = []
        assert a.process is not None
        await asyncio.to_thread(a.process.wait, 30)
        killed = time.monotonic()
        b, _ = start(pipeline, RETRY_LEASE_SECONDS="4")
        await pipeline.results.wait_for(ev, 2, timeout=40)
        took = time.monotonic() - killed
        await pipeline.results.settle(2.0)
        got = pipeline.results.for_event(ev)
        print(
            f"\nrecovered {took:.1f}s after the kill:",
            [(r.get("action") or r.get("reason")) for r in got],
        )
        assert not check_ids(got), check_ids(got)
        assert len(pipeline.zoom.meetings(zoom_user)) == 1
    finally:
        a.stop()
        if b is not None:
            b.stop()


async def test_postgres_away_while_retries_are_due(pipeline: Pipeline, database_url: str) -> None:
    parts = urlsplit(database_url)
    assert parts.hostname and parts.port
    with FaultProxy(parts.hostname, parts.port, name="atk-pg") as proxy:
        proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@{proxy.address}"))
        organizers = [f"pg{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
        for o in organizers:
            await pipeline.connect(o)
        pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
        a, _port = start(pipeline, DATABASE_URL=proxied, RETRY_DELAYS_SECONDS="2")
        try:
            evs = [f"ev-{uuid.uuid4().hex[:8]}" for _ in range(9)]
            for i, ev in enumerate(evs):
                await pipeline.sender.send("created", event(ev, 1, organizers[i % 3]))
            for ev in evs:
                await pipeline.results.wait_for(ev, 1, timeout=30)
            pipeline.zoom.faults = []
            proxy.cut()  # the retries come due while Postgres is away
            await asyncio.sleep(8)
            proxy.restore()
            await pipeline.results.until(
                lambda: all(
                    any(r.get("action") == "created" for r in pipeline.results.for_event(ev))
                    for ev in evs
                ),
                timeout=40,
            )
            await pipeline.results.settle(2.0)
            problems = [p for ev in evs for p in check_ids(pipeline.results.for_event(ev))]
            assert not problems, problems
            total = sum(len(pipeline.zoom.meetings(pipeline.zoom_users[o])) for o in organizers)
            assert total == len(evs)
            assert not [h for h in pipeline.results.dead_letters()]
            log = a.log()
            print(
                "\nlog signs:",
                {
                    s: log.count(s)
                    for s in (
                        "retry_runner_error",
                        "poison_message",
                        "LeaseLost",
                        "lease_not_released",
                        "retry_not_run",
                    )
                },
            )
        finally:
            proxy.restore()
            assert a.stop() == 0, a.log()[-3000:]


async def test_a_retry_row_deleted_by_hand_while_its_retry_runs(pipeline: Pipeline) -> None:
    organizer = f"dl-{uuid.uuid4().hex[:6]}"
    zoom_user = await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    a, _ = start(pipeline)
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        await pipeline.results.wait_for(ev, 1, timeout=30)
        creates = pipeline.zoom.calls(CREATE)
        pipeline.zoom.faults = [Fault(kind="latency", endpoint=CREATE, latency_ms=2500, count=1)]
        deadline = time.monotonic() + 15
        while pipeline.zoom.calls(CREATE) == creates and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        deleted = rows(
            pipeline.env["DATABASE_URL"],
            "DELETE FROM retry_schedule WHERE event_id = %s RETURNING 1",
            ev,
        )
        await pipeline.results.wait_for(ev, 2, timeout=20)
        await pipeline.results.settle(2.0)
        got = pipeline.results.for_event(ev)
        assert deleted and not check_ids(got), (deleted, got)
        assert len(pipeline.zoom.meetings(zoom_user)) == 1
        log = a.log()
        assert "poison_message" not in log and "retry_not_run" not in log
    finally:
        a.stop()
