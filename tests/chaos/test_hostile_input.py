"""Hostile input over the real pipeline.

``test_ten_thousand_hostile_messages``: 10,000 schema-valid but nasty messages (``hostile.py``:
bidi and invisible characters, maximum lengths, extreme dates and offsets, 300-attendee lists,
colliding ids, organizer changes, reordered revisions, redeliveries), generated from a seed,
loaded as a backlog on the event topics; one worker (MAX_IN_FLIGHT 128) drains it against a
Zoom emulator without latency, forty organizers each on their own Zoom account. Then the
invariants: nothing parked, nothing failed, every must-answer message answered under its
result id, and Zoom holding exactly the calendar's final state, title for title.

``test_messages_the_worker_cannot_carry_out_do_not_stop_it``: poison among ordinary traffic.
Each poison message is one the worker cannot carry out as asked (a start past the end of the
calendar once moved to UTC, an offset Postgres refuses, a NUL where Postgres stores text, a
year Zoom's time format cannot spell, JSON the parser refuses), whether or not the contract
accepts it; it must be answered with meeting.failed or parked, never stop the worker, and never
hold up the events around it. One poisoned event gets a good revision next, which must win.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest

from tests.chaos.conftest import ChaosWorld
from tests.chaos.hostile import hostile_plan
from tests.chaos.invariants import check_invariants
from tests.chaos.plan import Plan
from tests.chaos.workload import calendar_story, event_body, produce_all, settle

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

MESSAGES = int(os.environ.get("CHAOS_HOSTILE_MESSAGES", "10000"))
SEED = int(os.environ.get("CHAOS_SEED", "20261127"))


def organizer_ids(prefix: str, count: int) -> list[str]:
    """Talivo user ids as odd as the contract allows (up to 256 characters, any script)."""
    flavours = [
        lambda n: f"{prefix}-o{n:02d}",
        lambda n: (f"{prefix}-o{n:02d}-" + "u" * 256)[:256],
        lambda n: f"\u202e{prefix}-o{n:02d}\u2066",
        lambda n: f"{prefix}-\u05de\u05d2\u05d9\u05d9\u05e1-{n:02d}",
        lambda n: f"{prefix}-o{n:02d}\u200b",
        lambda n: f"{prefix}-\uff2f{n:02d}",  # full-width O
        lambda n: f"{prefix}-o{n:02d}'; --",
    ]
    return [flavours[n % len(flavours)](n) for n in range(count)]


async def test_ten_thousand_hostile_messages(world: ChaosWorld) -> None:
    organizers = await world.organizers(40, organizer_ids(world.prefix, 40))
    generated = time.monotonic()
    plan = hostile_plan(SEED, organizers, MESSAGES)
    generated = time.monotonic() - generated
    loaded = await produce_all(world.direct, world.topics, plan.sources)
    supervisor = world.supervisor(MAX_IN_FLIGHT="128")
    started = time.monotonic()
    await supervisor.start()
    settled = await settle(
        world.results, plan, bootstrap=world.direct, group=world.group, timeout=600
    )
    total = time.monotonic() - started
    print(
        f"hostile: {len(plan.sources)} records ({len(plan.unique())} messages, "
        f"{len(plan.by_event())} events), generated in {generated:.1f}s, loaded in "
        f"{loaded:.1f}s, drained in {total:.1f}s ({len(plan.sources) / total:.0f}/s)"
    )
    summary = check_invariants(
        plan=plan,
        results=world.results,
        zoom=world.zoom,
        zoom_users=world.zoom_users,
        supervisors=[supervisor],
        settled=settled,
    )
    print(
        f"hostile: {summary.results} results, {summary.meetings} live meetings, "
        f"{len(plan.must_answer())} must-answer messages"
    )


POISON_START = datetime(2027, 5, 1, 10, tzinfo=UTC)


def poison_plan(world: ChaosWorld, organizers: list[str]) -> Plan:
    """Forty ordinary events (~90 messages) with ten poison messages between them."""
    ordinary = calendar_story(world.prefix, organizers, 40, seed=31).sources
    p, who = world.prefix, organizers[0]

    def upsert(event_id: str, revision: int = 1, **fields: object) -> dict[str, object]:
        body = event_body(event_id, revision, who, title=f"{event_id} x", start=POISON_START)
        return body | fields

    lone = upsert(f"{p}-p-surrogate")
    deep = upsert(f"{p}-p-deep")
    poison: list[tuple[dict[str, object], bytes | None]] = [
        # Valid RFC 3339, but past either end of the calendar once moved to UTC.
        (upsert(f"{p}-p-year1", start="0001-01-01T00:30:00+14:00",
                end="0001-01-01T01:30:00+14:00"), None),
        (upsert(f"{p}-p-year10000", start="9999-12-31T22:00:00-14:00",
                end="9999-12-31T23:00:00-14:00"), None),
        # RFC 3339 allows offsets up to 23:59; Postgres keeps them within 15:59.
        (upsert(f"{p}-p-offset", start="2027-05-01T10:00:00+23:59",
                end="2027-05-01T11:00:00+23:59"), None),
        # strftime("%Y") spells year 1 as "1": a start_time nobody can read back.
        (upsert(f"{p}-p-year0001", start="0001-06-01T10:00:00Z",
                end="0001-06-01T11:00:00Z"), None),
        # Postgres text cannot hold U+0000; a terminal escape in free text.
        (upsert(f"{p}-p-nul-title", title="Interview\u0000 at noon"), None),
        (upsert(f"{p}-p-nul\u0000-id"), None),
        (upsert(f"{p}-p-nul-organizer",
                organizer={"user_id": "ana\u0000", "email": "a@b.example"}), None),
        (upsert(f"{p}-p-esc-description", description="\u001b[31mred\u001b[0m \u0000"), None),
        # JSON the parser refuses: a lone surrogate; an unknown field nested 5,000 deep.
        (lone, json.dumps(lone).replace('"title": "', '"title": "\\ud800', 1).encode()),
        (deep, json.dumps(deep)[:-1].encode() + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ]  # fmt: skip
    plan = Plan()
    for n, (body, raw) in enumerate(poison):
        plan.sources.extend(ordinary[n * 6 : n * 6 + 6])
        plan.add("created", body, poison=True, value=raw)
    # The first poisoned event gets a good revision next: it must be carried out.
    plan.add("updated", upsert(f"{p}-p-year1", 2, title=f"{p}-p-year1 fixed"))
    plan.sources.extend(ordinary[len(poison) * 6 :])
    return plan


async def test_messages_the_worker_cannot_carry_out_do_not_stop_it(world: ChaosWorld) -> None:
    organizers = await world.organizers(3)
    plan = poison_plan(world, organizers)
    supervisor = world.supervisor()
    await supervisor.start()
    await produce_all(world.direct, world.topics, plan.sources)
    settled = await settle(
        world.results, plan, bootstrap=world.direct, group=world.group, timeout=120
    )
    check_invariants(
        plan=plan,
        results=world.results,
        zoom=world.zoom,
        zoom_users=world.zoom_users,
        supervisors=[supervisor],
        settled=settled,
    )
