"""How fast the worker reads calendar messages: parse N valid messages, print messages/s.

Run with ``python -m bench.contracts [N]`` (default 100,000). The mix is 45% created, 45% updated,
10% deleted, with 0-8 attendees and a description on half of them, like a busy calendar.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from schemas import EventKind, parse_event

KINDS: tuple[EventKind, ...] = ("created", "updated", "deleted")


def messages(count: int, seed: int = 7) -> list[tuple[EventKind, bytes]]:
    rng = random.Random(seed)
    base = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    out: list[tuple[EventKind, bytes]] = []
    for i in range(count):
        kind = rng.choices(KINDS, weights=(45, 45, 10))[0]
        start = base + timedelta(minutes=15 * rng.randrange(10_000))
        doc: dict[str, object] = {
            "schema_version": 1,
            "message_id": f"msg-{i:08d}",
            "event_id": f"evt-{rng.randrange(1_000_000)}",
            "revision": rng.randrange(20),
            "occurred_at": (start - timedelta(days=3)).isoformat().replace("+00:00", "Z"),
            "organizer": {"user_id": f"usr-{rng.randrange(5000)}", "email": "dana@example.com"},
        }
        if kind != "deleted":
            doc |= {
                "title": f"Interview {i}: Backend Engineer",
                "description": "Technical interview. " * 10 if rng.random() < 0.5 else None,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=rng.choice((30, 45, 60)))).isoformat(),
                "timezone": rng.choice(("Europe/Berlin", "America/New_York", "Asia/Tokyo")),
                "attendees": [
                    {"email": f"candidate{j}@example.org", "name": f"Candidate {j}"}
                    for j in range(rng.randrange(9))
                ],
                "video_conference": rng.choice(("zoom", "zoom", "none")),
            }
        out.append((kind, json.dumps(doc, separators=(",", ":")).encode()))
    return out


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 100_000
    batch = messages(count)
    size = sum(len(data) for _, data in batch)
    started = time.perf_counter()
    for kind, data in batch:
        parse_event(kind, data)
    elapsed = time.perf_counter() - started
    print(
        f"parse_event: {count:,} valid messages ({size / count:.0f} bytes avg) in {elapsed:.2f} s"
        f" = {count / elapsed:,.0f} messages/s ({elapsed / count * 1e6:.1f} us each)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
