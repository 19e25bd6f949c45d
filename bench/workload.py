"""The messages a run pre-loads: events of many organizers, each created, often moved, sometimes
deleted, so every run exercises create, update and cancel and has per-event order to keep."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

KIND_TOPIC = {"created": "event.created", "updated": "event.updated", "deleted": "event.deleted"}


@dataclass(frozen=True)
class Message:
    kind: str  # created | updated | deleted
    event_id: str
    message_id: str
    revision: int
    organizer: str
    title: str | None  # None for a deletion

    def value(self, sent_at: datetime | None = None) -> bytes:
        start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=30 * self.revision)
        body: dict[str, Any] = {
            "schema_version": 1,
            "message_id": self.message_id,
            "event_id": self.event_id,
            "revision": self.revision,
            "occurred_at": (sent_at or datetime.now(UTC)).isoformat(),
            "organizer": {"user_id": self.organizer, "email": f"{self.organizer}@talivo.example"},
        }
        if self.kind != "deleted":
            body |= {
                "title": self.title,
                "description": "Technical interview. " * 5,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=45)).isoformat(),
                "timezone": "Europe/Berlin",
                "attendees": [{"email": "candidate@example.org", "name": "Candidate"}],
                "video_conference": "zoom",
            }
        return json.dumps(body, separators=(",", ":")).encode()


def events(
    run: str,
    count: int,
    organizers: list[str],
    seed: int = 7,
    update_share: float = 0.5,
    delete_share: float = 0.1,
) -> list[Message]:
    """About ``count`` messages: every event created (rev 1), some updated (2), some deleted (3)."""
    rng = random.Random(seed)
    out: list[Message] = []
    i = 0
    while len(out) < count:
        event_id = f"{run}-e{i}"
        organizer = organizers[i % len(organizers)]
        out.append(Message("created", event_id, f"{event_id}-1", 1, organizer, f"{event_id} r1"))
        if len(out) < count and rng.random() < update_share:
            out.append(
                Message("updated", event_id, f"{event_id}-2", 2, organizer, f"{event_id} r2")
            )
        if len(out) < count and rng.random() < delete_share:
            out.append(Message("deleted", event_id, f"{event_id}-3", 3, organizer, None))
        i += 1
    return out
