"""Leases instead of advisory locks: a holder stalled past its lease (SIGSTOP, then SIGCONT).

Real worker processes on the real broker, Postgres and the Zoom emulator. ``stalling_worker``
SIGSTOPs itself at a crash step; another replica takes over; then the first one is resumed.
"""

from __future__ import annotations

import asyncio
import uuid

from devservices.zoom_emulator.faults import Fault

from tests.attacks.conftest import CREATE, cont, start, wait_stopped
from tests.worker.conftest import Pipeline
from tests.worker.harness import event


async def test_a_stalled_holder_makes_no_second_meeting_after_another_took_over(
    pipeline: Pipeline,
) -> None:
    """A stalls after storing its intent, before its Zoom create (a GC pause, a frozen VM).
    B takes the event once A's lease ran out, recovers nothing, creates, links. A resumes."""
    organizer = f"st-{uuid.uuid4().hex[:6]}"
    zoom_user = await pipeline.connect(organizer)
    a, _ = start(pipeline, stop_at="after_intent")
    b = None
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        await asyncio.to_thread(wait_stopped, a)
        b, _ = start(pipeline)
        (linked,) = await pipeline.results.wait_for(ev, 1, timeout=45)
        assert linked["action"] == "created"
        cont(a)
        await pipeline.results.settle(6.0)
        meetings = pipeline.zoom.meetings(zoom_user)
        a_log = a.log()
        print("\nA's log tail:\n", a_log[-2500:])
        assert len(meetings) == 1, (
            f"{len(meetings)} meetings on Zoom for one event: "
            f"{[(m.id, m.topic) for m in meetings]}; linked {linked['meeting']['id']}; "
            f"A wrote LeaseLost: {'LeaseLost' in a_log}"
        )
    finally:
        cont(a)
        a.stop()
        if b is not None:
            b.stop()


async def test_a_stalled_retry_publishes_no_older_outcome_after_a_newer_one(
    pipeline: Pipeline,
) -> None:
    """A's retry runner stores rev 1's outcome, then stalls before publishing it. B takes the
    partitions, rev 2 arrives and is linked. A resumes and publishes rev 1's outcome."""
    organizer = f"sp-{uuid.uuid4().hex[:6]}"
    await pipeline.connect(organizer)
    pipeline.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
    # after_db #1: the first failure's notice; #2: the retry's outcome, stored, not yet published
    a, _ = start(pipeline, stop_at="after_db:2")
    b = None
    try:
        ev = f"ev-{uuid.uuid4().hex[:8]}"
        await pipeline.sender.send("created", event(ev, 1, organizer))
        (notice,) = await pipeline.results.wait_for(ev, 1, timeout=30)
        assert "next_attempt_at" in notice
        await asyncio.sleep(1.0)  # A commits rev 1's offset
        pipeline.zoom.faults = []
        await asyncio.to_thread(wait_stopped, a)
        b, _ = start(pipeline)
        await pipeline.sender.send("updated", event(ev, 2, organizer, title="Moved"))
        await pipeline.results.until(
            lambda: any(r["revision"] == 2 for r in pipeline.results.for_event(ev)), timeout=45
        )
        cont(a)
        await pipeline.results.settle(5.0)
        got = pipeline.results.for_event(ev)
        seen: list[tuple[str, int, str | None]] = []
        ids: set[str] = set()
        for r in got:
            if r["message_id"] in ids:
                continue  # a consumer dropping repeated ids
            ids.add(r["message_id"])
            seen.append((r["message_id"][:8], r["revision"], r.get("action") or r.get("reason")))
        print("\nresults as a de-duplicating consumer sees them:", seen)
        revisions = [rev for _, rev, _ in seen]
        assert revisions == sorted(revisions), f"an older revision's outcome after a newer: {seen}"
    finally:
        cont(a)
        a.stop()
        if b is not None:
            b.stop()
