"""The one check every chaos test ends with: whatever broke meanwhile, the outcome is right.

``check_invariants`` compares what was sent (a ``Plan``), what the worker published (result and
dead-letter topics, read from the beginning), what Zoom holds (the emulator, for the test's own
organizers only) and the worker processes (their supervisors), and fails with every violation
at once, grouped by kind, each with the tags of its event (``organizer_change``,
``bidi_title``...), so a failure names the feature it belongs to.

The invariants:

1. **One result id per source.** Every result answers a message that was sent, for the same
   event, under ``result_message_id(source)``: copies (a redelivery, a republish) share the id,
   different sources never do. A notice that the worker retries by itself (``meeting.failed``
   with ``next_attempt_at``) has its own id, ``notice_message_id(source)``, as has the failure
   of a source parked for replay (``parked_message_id``); a notice is resolved:
   an outcome follows for its revision or a newer one (``pending_unresolved`` otherwise).
2. **Answered.** Every message that must have a result (``Plan.must_answer``) has one.
3. **No duplicate meetings.** Every live meeting of the test's organizers is the meeting of
   exactly one event, found through that event's newest result; nothing else is left on Zoom.
4. **Zoom equals the calendar.** An event whose newest revision wants Zoom has exactly one live
   meeting, with that revision's title, agenda, start (to the second), duration, time zone and
   organizer as host; a deleted event or one that no longer wants Zoom has none.
5. **Nothing parked or failed that should not be.** A dead-letter record or a ``meeting.failed``
   is allowed only for poison sources and for the reasons the test names (a notice is not a
   failure: invariant 1 sees it resolved).
6. **The worker rode it out.** Each supervised worker is alive and never exited except when the
   test killed it.

Poison sources (``Source.poison``) must be answered *or* parked (invariant 2 for them); an
event whose newest message is poison follows invariants 3/4 only if the worker did link it
(otherwise it must have no meeting left), and a poison message counts as one that does not
want Zoom when deciding what must be answered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest
from devservices.zoom_emulator import MeetingRecord, ZoomEmulator

from tests.chaos.plan import Plan, Source
from tests.chaos.supervisor import Supervisor
from tests.worker.harness import Results
from worker.pipeline.results import notice_message_id, parked_message_id, result_message_id

EXAMPLES_PER_KIND = 6


@dataclass(frozen=True)
class Settled:
    """How waiting for the end state went (``workload.settle``)."""

    done: bool
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str
    event_id: str | None = None
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Summary:
    sources: int
    results: int
    dead_letters: int
    meetings: int
    violations: tuple[Violation, ...]

    def describe(self) -> str:
        lines = [
            f"{len(self.violations)} violation(s): {self.sources} sources, {self.results} "
            f"results, {self.dead_letters} dead letters, {self.meetings} live meetings"
        ]
        by_kind: dict[str, list[Violation]] = defaultdict(list)
        for v in self.violations:
            by_kind[v.kind].append(v)
        for kind, found in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
            tags = Counter(t for v in found for t in v.tags)
            every = sorted(t for t, n in tags.items() if n == len(found))
            tag_text = ", ".join(f"{t}={n}" for t, n in tags.most_common(8)) or "-"
            lines.append(f"- {kind}: {len(found)} (tags: {tag_text})")
            if every and len(found) > 1:
                lines.append(f"  every one of them: {', '.join(every)}")
            for v in found[:EXAMPLES_PER_KIND]:
                lines.append(f"    {v.event_id!r}: {v.detail}"[:600])
        return "\n".join(lines)


def check_invariants(
    *,
    plan: Plan,
    results: Results,
    zoom: ZoomEmulator,
    zoom_users: Mapping[str, str],
    supervisors: Sequence[Supervisor] = (),
    allowed_dead_letter_reasons: Collection[str] = (),
    allowed_failure_reasons: Collection[str] = (),
    settled: Settled | None = None,
) -> Summary:
    """Fail the test naming every violated invariant; return the summary otherwise."""
    summary = evaluate(
        plan=plan,
        results=results,
        zoom=zoom,
        zoom_users=zoom_users,
        supervisors=supervisors,
        allowed_dead_letter_reasons=allowed_dead_letter_reasons,
        allowed_failure_reasons=allowed_failure_reasons,
        settled=settled,
    )
    if summary.violations:
        pytest.fail(summary.describe(), pytrace=False)
    return summary


def evaluate(
    *,
    plan: Plan,
    results: Results,
    zoom: ZoomEmulator,
    zoom_users: Mapping[str, str],
    supervisors: Sequence[Supervisor] = (),
    allowed_dead_letter_reasons: Collection[str] = (),
    allowed_failure_reasons: Collection[str] = (),
    settled: Settled | None = None,
) -> Summary:
    published = [value for _, value, _ in results.seen if value is not None]
    parked = [headers for topic, _, headers in results.seen if topic == results.topics.dlq]
    meetings = {m.id: m for user in set(zoom_users.values()) for m in zoom.meetings(user)}
    check = _Check(plan, published, parked, meetings, zoom_users)
    check.result_ids()
    check.answered()
    check.failures(set(allowed_failure_reasons))
    check.notices()
    check.dead_letters(set(allowed_dead_letter_reasons))
    check.final_state()
    for supervisor in supervisors:
        check.worker(supervisor)
    if settled is not None and not settled.done:
        check.flag("not_settled", settled.detail)
    return Summary(
        sources=len(plan.sources),
        results=len(published),
        dead_letters=len(parked),
        meetings=len(meetings),
        violations=tuple(check.violations),
    )


def is_notice(result: Mapping[str, Any]) -> bool:
    """A notice that the worker retries by itself: an answer, not yet an outcome."""
    return result.get("next_attempt_at") is not None


def all_answered(plan: Plan, results: Results, must: set[str] | None = None) -> bool:
    """Every must-answer source has a result and every notice is resolved (cheap to poll)."""
    must = plan.must_answer() if must is None else must
    published = [v for _, v, _ in results.seen if v is not None]
    answered = {v["correlation_id"] for v in published}
    return must <= answered and not unresolved_notices(published, plan)


def unresolved_notices(
    published: Sequence[Mapping[str, Any]], plan: Plan
) -> list[Mapping[str, Any]]:
    """Notices with no outcome after them: none for their revision or a newer one. An event
    whose newest message wants no Zoom meeting may end with nothing to publish (no meeting was
    ever made): its notices need no outcome."""
    settled_quietly = {e for e in plan.by_event() if not plan.final(e).wants_zoom}
    newest_outcome: dict[str, int] = {}
    for r in published:
        if not is_notice(r) and isinstance(r.get("revision"), int):
            event_id = str(r.get("event_id"))
            newest_outcome[event_id] = max(newest_outcome.get(event_id, -1), r["revision"])
    return [
        r
        for r in published
        if is_notice(r)
        and str(r.get("event_id")) not in settled_quietly
        and newest_outcome.get(str(r.get("event_id")), -1) < r["revision"]
    ]


class _Check:
    def __init__(
        self,
        plan: Plan,
        published: list[dict[str, Any]],
        parked: list[dict[str, bytes]],
        meetings: dict[int, MeetingRecord],
        zoom_users: Mapping[str, str],
    ) -> None:
        self.plan = plan
        self.sources = plan.by_message_id()
        self.events = plan.by_event()
        self.published = published
        self.parked = parked
        self.meetings = meetings
        self.zoom_users = zoom_users
        self.violations: list[Violation] = []
        self.by_correlation: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for result in published:
            self.by_correlation[str(result.get("correlation_id"))].append(result)
            self.by_event[str(result.get("event_id"))].append(result)
        by_value = {s.value: s for s in plan.unique()}
        self.parked_sources = [(by_value.get(h.get("__value__", b"")), h) for h in parked]

    def flag(self, kind: str, detail: str, event_id: str | None = None) -> None:
        tags: frozenset[str] = frozenset()
        if event_id is not None and event_id in self.events:
            tags = frozenset(t for s in self.events[event_id] for t in s.tags)
        self.violations.append(Violation(kind, detail, event_id, tags))

    # 1
    def result_ids(self) -> None:
        owners: dict[str, str] = {}
        for correlation, found in self.by_correlation.items():
            source = self.sources.get(correlation)
            event_id = str(found[0].get("event_id"))
            if source is None:
                poison_event = any(s.poison for s in self.events.get(event_id, ()))
                if not poison_event:  # poison may be answered under topic/partition/offset
                    self.flag("result_for_unknown_source", f"correlation {correlation!r}", event_id)
                continue
            ids = {r.get("message_id") for r in found}
            notices = {r.get("message_id") for r in found if is_notice(r)}
            allowed = {result_message_id(correlation), parked_message_id(correlation)}
            if notices - {notice_message_id(correlation)} or (ids - notices) - allowed:
                self.flag("result_id_not_the_sources", f"{sorted(map(str, ids))}", event_id)
            wrong = {r.get("event_id") for r in found} - {source.event_id}
            if wrong:
                self.flag("result_for_another_event", f"{wrong}", source.event_id)
            for result_id in ids:
                other = owners.setdefault(str(result_id), correlation)
                if other != correlation:
                    self.flag("result_id_shared", f"{result_id} by {other!r}", event_id)

    # 2
    def answered(self) -> None:
        for message_id in sorted(self.plan.must_answer()):
            if message_id not in self.by_correlation:
                s = self.sources[message_id]
                self.flag("unanswered", f"{s.kind} r{s.revision} {message_id!r}", s.event_id)
        parked_ids = {s.message_id for s, _ in self.parked_sources if s is not None}
        for source in self.plan.unique():
            if not source.poison:
                continue
            failed_for_event = any("reason" in r for r in self.by_event.get(source.event_id, ()))
            if not (
                source.message_id in self.by_correlation
                or source.message_id in parked_ids
                or failed_for_event
            ):
                self.flag("poison_neither_answered_nor_parked", source.kind, source.event_id)

    # 5
    def failures(self, allowed: set[str]) -> None:
        for correlation, found in self.by_correlation.items():
            source = self.sources.get(correlation)
            if source is None or source.poison:
                continue
            for result in found:
                reason = result.get("reason")
                if is_notice(result):
                    continue
                if reason is not None and reason not in allowed:
                    detail = f"{source.kind} r{source.revision}: {reason} ({result.get('action')})"
                    self.flag("failed", detail, source.event_id)

    def notices(self) -> None:
        for notice in unresolved_notices(self.published, self.plan):
            detail = f"r{notice.get('revision')}: {notice.get('reason')}, no outcome followed"
            self.flag("pending_unresolved", detail, str(notice.get("event_id")))

    def dead_letters(self, allowed: set[str]) -> None:
        for source, headers in self.parked_sources:
            reason = headers.get("x-dlq-reason", b"").decode(errors="replace")
            if source is not None and source.poison:
                continue
            if reason in allowed:
                continue
            detail = f"reason={reason} error={headers.get('x-dlq-error', b'')[:200]!r}"
            self.flag("dead_lettered", detail, source.event_id if source else None)

    # 3, 4
    def final_state(self) -> None:
        owner_of: dict[int, str] = {}
        for event_id, sources in self.events.items():
            final = max(sources, key=lambda s: s.revision)
            linked = self._linked_at(event_id, final.revision)
            if not final.wants_zoom or (final.poison and not linked):
                continue  # nothing may be left: the orphan check below finds any meeting
            if not linked:
                self.flag("final_revision_not_linked", self._history(event_id), event_id)
                continue
            if len(linked) > 1:
                self.flag("several_meetings_for_one_revision", f"{sorted(linked)}", event_id)
            for meeting_id in linked:
                other = owner_of.setdefault(meeting_id, event_id)
                if other != event_id:
                    self.flag("meeting_shared_by_events", f"{meeting_id} also {other!r}", event_id)
                self._compare(final, meeting_id)
        for meeting_id, meeting in sorted(self.meetings.items()):
            if meeting_id not in owner_of:
                events = sorted(
                    {
                        str(r["event_id"])
                        for r in self.published
                        if (r.get("meeting") or {}).get("id") == meeting_id
                    }
                )
                detail = f"meeting {meeting_id} {meeting.topic[:60]!r} of events {events}"
                self.flag("meeting_left_on_zoom", detail, events[0] if events else None)

    def _linked_at(self, event_id: str, revision: int) -> set[int]:
        return {
            int(r["meeting"]["id"])
            for r in self.by_event.get(event_id, ())
            if r.get("revision") == revision
            and "reason" not in r
            and r.get("action") in ("created", "updated")
        }

    def _history(self, event_id: str) -> str:
        seen = [
            f"r{r.get('revision')}:{r.get('action')}{'/' + r['reason'] if 'reason' in r else ''}"
            for r in self.by_event.get(event_id, ())
        ]
        sent = [f"{s.kind[0]}{s.revision}" for s in self.events[event_id]]
        return f"sent {sent}, results {seen}"

    def _compare(self, final: Source, meeting_id: int) -> None:
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            self.flag("linked_meeting_gone", f"meeting {meeting_id}", final.event_id)
            return
        want = final.meeting_fields() | {"host_id": self.zoom_users.get(final.organizer)}
        have = {
            "topic": meeting.topic,
            "agenda": meeting.agenda,
            "start_time": meeting.start_time.astimezone(UTC) if meeting.start_time else None,
            "duration": meeting.duration,
            "timezone": meeting.timezone,
            "host_id": meeting.host_id,
        }
        differs = sorted(k for k in want if want[k] != have[k])
        if differs:
            detail = "; ".join(f"{k}: want {want[k]!r:.80} have {have[k]!r:.80}" for k in differs)
            kind = "meeting_on_another_host" if differs == ["host_id"] else "meeting_differs"
            self.flag(kind, f"{meeting_id}: {detail}", final.event_id)

    # 6
    def worker(self, supervisor: Supervisor) -> None:
        for exit_ in supervisor.unplanned_exits():
            self.flag(
                "worker_exited",
                f"{supervisor.name} exited with {exit_.code} after {exit_.after:.1f}s: "
                f"{exit_.last_error}",
            )
        if not supervisor.alive():
            self.flag("worker_not_running", supervisor.name)
