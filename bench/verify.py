"""Results checked, not just timed: one result per source message, no duplicate meetings on the
emulator, per-event order kept (results in revision order, final state = highest revision)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from devservices.zoom_emulator import ZoomEmulator

from bench.workload import Message

CREATE = "POST /v2/users/{userId}/meetings"


@dataclass(frozen=True)
class Result:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: dict[str, Any] | None


@dataclass(frozen=True)
class Checks:
    messages: int
    results: int
    skipped: int  # messages the process reported as needing no result (e.g. delete before create)
    missing: int
    duplicates: int
    failed: dict[str, int]
    dead_lettered: int
    order_violations: int
    wrong_final_state: int
    duplicate_meetings: int
    creates: int
    events: int

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.duplicates or self.failed or self.dead_lettered
            or self.order_violations or self.wrong_final_state or self.duplicate_meetings
            or self.creates > self.events
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def check(
    messages: list[Message],
    results: list[Result],
    skipped: int,
    zoom: ZoomEmulator,
    zoom_users: list[str],
    creates: int,
) -> Checks:
    sources = {m.message_id for m in messages}
    values = [r for r in results if r.value is not None]
    by_source = Counter(str(r.value["correlation_id"]) for r in values if r.value)
    seen = set(by_source) & sources
    failed = Counter(str(r.value.get("reason")) for r in values if r.value and "reason" in r.value)
    last: dict[str, Message] = {}
    for m in messages:
        if m.event_id not in last or m.revision > last[m.event_id].revision:
            last[m.event_id] = m
    order_violations = 0
    final_revision: dict[str, int] = {}
    for r in sorted(values, key=lambda r: (r.topic, r.partition, r.offset)):
        assert r.value is not None
        event_id, revision = str(r.value["event_id"]), int(r.value["revision"])
        if revision < final_revision.get(event_id, -1):
            order_violations += 1
        final_revision[event_id] = max(revision, final_revision.get(event_id, -1))
    live: dict[str, list[str]] = defaultdict(list)
    run = messages[0].event_id.rsplit("-e", 1)[0] + "-e" if messages else ""
    for user in zoom_users:
        for meeting in zoom.meetings(user):
            if meeting.topic.startswith(run):
                live[meeting.topic.split(" ", 1)[0]].append(meeting.topic)
    wrong = 0
    for event_id, final in last.items():
        want = [] if final.kind == "deleted" else [final.title]
        if live.get(event_id, []) != want:
            wrong += 1
    return Checks(
        messages=len(messages),
        results=len(values),
        skipped=skipped,
        missing=len(sources) - skipped - len(seen),
        duplicates=sum(c - 1 for c in by_source.values() if c > 1),
        failed=dict(failed),
        dead_lettered=len(results) - len(values),
        order_violations=order_violations,
        wrong_final_state=wrong,
        duplicate_meetings=sum(len(v) - 1 for v in live.values() if len(v) > 1),
        creates=creates,
        events=len(last),
    )
