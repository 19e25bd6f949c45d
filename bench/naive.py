"""The naive baseline: a plain aiokafka consumer, one message at a time, as a first version would
be written, with the same Zoom client and token store as the worker.

Run by the benchmark as ``python -m bench.naive`` with the worker's environment. For each
message: parse, look up the event's meeting in its own table, create / patch / delete it on
Zoom, store the meeting id, publish the result, commit; one JSON line per message on stdout.
It keeps no revisions and runs nothing concurrently. SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas import (
    LinkedAction,
    MeetingDetails,
    MeetingLinked,
    SourceEvent,
    parse_event,
)
from schemas.events import (
    EventUpsert,
)
from token_store import TokenStore, ZoomOAuth
from worker.pipeline.processor import result_message_id
from worker.runtime.config import load_settings
from worker.runtime.http import http_client
from worker.zoom import ZoomMeetings
from worker.zoom.errors import MeetingNotFound
from worker.zoom.models import MeetingPatch, MeetingSpec

TABLE = """CREATE TABLE IF NOT EXISTS bench_naive_links (
    event_id text PRIMARY KEY, meeting_id bigint NOT NULL, join_url text NOT NULL)"""


def spec_of(event: EventUpsert) -> MeetingSpec:
    return MeetingSpec(
        topic=event.title,
        agenda=(event.description or "")[:2000],
        start_time=event.start,
        duration_minutes=event.duration_minutes,
        timezone=event.timezone,
    )


async def handle(
    event: SourceEvent, conn: AsyncConnection, zoom: ZoomMeetings
) -> tuple[LinkedAction, int, str | None] | None:
    user = event.organizer.user_id
    row = await (
        await conn.execute(
            "SELECT meeting_id, join_url FROM bench_naive_links WHERE event_id = %s",
            (event.event_id,),
        )
    ).fetchone()
    if not isinstance(event, EventUpsert) or not event.wants_zoom:
        if row is None:
            return None
        with contextlib.suppress(MeetingNotFound):
            await zoom.delete_meeting(user, row[0])
        await conn.execute("DELETE FROM bench_naive_links WHERE event_id = %s", (event.event_id,))
        return LinkedAction.CANCELLED, row[0], None
    spec = spec_of(event)
    if row is not None:
        patch = MeetingPatch(
            topic=spec.topic,
            agenda=spec.agenda,
            start_time=spec.start_time,
            duration_minutes=spec.duration_minutes,
            timezone=spec.timezone,
        )
        await zoom.update_meeting(user, row[0], patch)
        return LinkedAction.UPDATED, row[0], row[1]
    meeting = await zoom.create_meeting(user, spec)
    await conn.execute(
        "INSERT INTO bench_naive_links VALUES (%s, %s, %s)",
        (event.event_id, meeting.id, meeting.join_url),
    )
    return LinkedAction.CREATED, meeting.id, meeting.join_url


async def main() -> None:
    settings = load_settings(os.environ)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    kinds = {
        settings.topic_event_created: "created",
        settings.topic_event_updated: "updated",
        settings.topic_event_deleted: "deleted",
    }
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        settings.dsn(), min_size=2, max_size=4, open=False
    )
    await pool.open()
    http = http_client()
    oauth = ZoomOAuth(
        http,
        settings.zoom_oauth_base_url,
        settings.zoom_api_base_url,
        settings.zoom_client_id or "",
        settings.zoom_client_secret.get_secret_value() if settings.zoom_client_secret else "",
    )
    zoom = ZoomMeetings(
        http,
        api_base_url=settings.zoom_api_base_url,
        tokens=TokenStore(pool, settings.key_ring(), oauth),
        retry_budget_seconds=settings.zoom_retry_budget_seconds,
    )
    async with pool.connection() as conn:
        await conn.execute(TABLE)
    common = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    consumer = AIOKafkaConsumer(
        *kinds,
        **common,
        group_id=settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**common, enable_idempotence=settings.kafka_enable_idempotence)
    await consumer.start()
    await producer.start()
    print("READY", flush=True)
    try:
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(consumer.getone(), 0.5)
            except TimeoutError:
                continue
            started = time.monotonic()
            event = parse_event(kinds[msg.topic], msg.value)  # type: ignore[arg-type]
            async with pool.connection() as conn:
                done = await handle(event, conn, zoom)
            if done is not None:
                action, meeting_id, join_url = done
                upsert = event if isinstance(event, EventUpsert) else None
                cancelled = upsert is None
                result = MeetingLinked(
                    message_id=result_message_id(event.message_id),
                    correlation_id=event.message_id,
                    event_id=event.event_id,
                    revision=event.revision,
                    organizer_user_id=event.organizer.user_id,
                    action=action,
                    meeting=MeetingDetails(
                        id=meeting_id,
                        join_url=None if cancelled else join_url,
                        topic=upsert.title if upsert else None,
                        start_time=upsert.start if upsert else None,
                        duration=upsert.duration_minutes if upsert else None,
                        timezone=upsert.timezone if upsert else None,
                    ),
                    linked_at=datetime.now(UTC),
                )
                await producer.send_and_wait(
                    settings.topic_meeting_linked, result.to_bytes(), key=event.event_id.encode()
                )
            await consumer.commit()
            seconds = time.monotonic() - started
            outcome = "linked" if done else "skipped"
            print(json.dumps({"event": "message", "outcome": outcome,
                              "duration_ms": round(seconds * 1000, 1)}), flush=True)  # fmt: skip
    finally:
        await consumer.stop()
        await producer.stop()
        await http.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
