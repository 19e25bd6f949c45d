"""What a chaos test sends: every source record, byte for byte, and what it should lead to.

A ``Plan`` is the calendar's side of the story. The invariants (``invariants.py``) read from it
which messages must be answered and what Zoom must look like at the end; the feeders send its
records in plan order (duplicates included: the same ``Source`` twice is one message
delivered twice).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

UPSERTS = ("created", "updated")


@dataclass(frozen=True, eq=False)
class Source:
    kind: str  # created | updated | deleted
    value: bytes  # exactly what is produced
    key: bytes
    message_id: str
    event_id: str
    revision: int
    body: dict[str, Any] | None  # None when ``value`` is not a JSON object of ours
    tags: frozenset[str] = frozenset()
    # Schema-valid or not, the worker cannot carry it out as asked (a time past the end of the
    # calendar in UTC, a character Postgres cannot store): it must be answered with
    # meeting.failed or parked, and it must not stop the worker.
    poison: bool = False

    @property
    def wants_zoom(self) -> bool:
        return (
            self.kind in UPSERTS
            and self.body is not None
            and self.body.get("video_conference") == "zoom"
        )

    @property
    def organizer(self) -> str:
        assert self.body is not None
        return str(self.body["organizer"]["user_id"])

    def meeting_fields(self) -> dict[str, Any]:
        """The Zoom meeting this upsert asks for, as the emulator stores it."""
        assert self.body is not None
        start = _time(self.body["start"])
        end = _time(self.body["end"])
        return {
            "topic": self.body["title"][:200],
            "agenda": (self.body.get("description") or "")[:2000],
            "start_time": start.astimezone(UTC).replace(microsecond=0),
            "duration": max(1, math.ceil((end - start).total_seconds() / 60)),
            "timezone": self.body["timezone"],
        }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.upper())


@dataclass
class Plan:
    sources: list[Source] = field(default_factory=list)

    def add(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        tags: Iterable[str] = (),
        poison: bool = False,
        value: bytes | None = None,
    ) -> Source:
        source = Source(
            kind=kind,
            value=value if value is not None else json.dumps(body).encode(),
            key=str(body["event_id"]).encode(),
            message_id=str(body["message_id"]),
            event_id=str(body["event_id"]),
            revision=int(body["revision"]),
            body=body,
            tags=frozenset(tags),
            poison=poison,
        )
        self.sources.append(source)
        return source

    def again(self, source: Source) -> Source:
        """Send ``source`` once more (an exact redelivery: same bytes, same message id)."""
        self.sources.append(source)
        return source

    def unique(self) -> list[Source]:
        """Each message once, in first-sent order."""
        return list({id(s): s for s in self.sources}.values())

    def by_event(self) -> dict[str, list[Source]]:
        events: dict[str, list[Source]] = defaultdict(list)
        for source in self.unique():
            events[source.event_id].append(source)
        return dict(events)

    def by_message_id(self) -> dict[str, Source]:
        return {s.message_id: s for s in self.unique()}

    def message_ids(self) -> set[str]:
        return {s.message_id for s in self.sources}

    def must_answer(self) -> set[str]:
        """Messages whose result no processing order can skip.

        An upsert that wants Zoom always makes a result (linked or failed) when it is the
        newest its event has seen, and is answered with the stored result when it comes late,
        unless the event's newest message left nothing to answer with: a delete or a switch
        away from Zoom of an event that had no meeting. So such an upsert must be answered when
        every newer message of its event (and any other at its revision) also wants Zoom.
        Deletes and switches away are answered only if a meeting existed when they ran, which
        depends on the order the three topics are read in: not required here; the final Zoom
        state is checked for them instead.
        """
        wanted: set[str] = set()
        for sources in self.by_event().values():
            for s in sources:
                newer = [
                    o for o in sources if o.message_id != s.message_id and o.revision >= s.revision
                ]
                # A poison message may leave nothing stored to answer with: count it as one
                # that does not want Zoom.
                if (
                    s.wants_zoom
                    and not s.poison
                    and all(o.wants_zoom and not o.poison for o in newer)
                ):
                    wanted.add(s.message_id)
        return wanted

    def final(self, event_id: str) -> Source:
        """The event's newest revision: what the calendar says at the end."""
        return max(self.by_event()[event_id], key=lambda s: s.revision)
