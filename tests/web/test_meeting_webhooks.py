"""Zoom's meeting webhooks through ``zoom-worker serve``: a host's edits and deletes on Zoom
reach the calendar as ``meeting.changed``, the worker's own calls coming back do not.

Everything is real: ``serve`` itself (``connect.server.serve``) over HTTP with its Kafka
producer, the broker, Postgres, the worker as a subprocess, and the Zoom emulator, which sends
its webhooks as Zoom does (signed, retried after a failed answer) for the worker's calls and for
what a host does in Zoom's own apps (its control API).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from devservices import KafkaService
from devservices.kafka import create_topics
from devservices.zoom_emulator import ZoomEmulator
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from connect.config import ConnectSettings
from connect.server import serve
from schemas import parse_changed
from tests.schemas.contract_files import schema_errors
from tests.web.conftest import ALLOWLIST, TICKET_SECRET, WEBHOOK_SECRET
from tests.worker.conftest import CLIENT_ID, CLIENT_SECRET, KEYS, Pipeline, make_pipeline
from tests.worker.harness import PARTITIONS, event, until
from worker.runtime.config import load_settings

RETRIES = (0.4, 0.8, 1.6)  # Zoom's are 5, 20 and 60 minutes
JSON = {"accept": "application/json"}


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomEmulator]:
    """The worker's client id: the worker and serve both talk to this emulator."""
    with ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as emulator:
        yield emulator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(
    database_url: str, zoom: ZoomEmulator, kafka: KafkaService | None, topic: str, **env: str
) -> AsyncIterator[str]:
    """``zoom-worker serve`` on this event loop, configured as a deployment configures it."""
    port = _free_port()
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEYS": KEYS,
            "ZOOM_CLIENT_ID": CLIENT_ID,
            "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "SERVE_PORT": str(port),
            "CONNECT_TICKET_SECRET": TICKET_SECRET.decode(),
            "CONNECT_RETURN_URL_ALLOWLIST": ALLOWLIST,
            "ZOOM_WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
            "ZOOM_REDIRECT_URI": f"http://127.0.0.1:{port}/zoom/callback",
            "TOPIC_MEETING_CHANGED": topic,
            **(
                {
                    "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                    "KAFKA_ENABLE_IDEMPOTENCE": str(kafka.supports_idempotence).lower(),
                }
                if kafka is not None
                else {}
            ),
            **env,
        },
        ["database", "keys", "zoom", "serve"],
        ConnectSettings,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 30
            while True:
                if task.done():
                    task.result()
                    raise RuntimeError("serve stopped at start")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/readyz")).is_success:
                        break
                assert time.monotonic() < deadline, "serve did not become ready"
                await asyncio.sleep(0.05)
        yield base
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0


@dataclass
class Changes:
    """Everything published on the meeting.changed topic, read without a group."""

    bootstrap: str
    topic: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await self.consumer.start()
        parts = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_beginning(*parts)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def drain(self, seconds: float = 0.1) -> None:
        assert self.consumer is not None
        batch = await self.consumer.getmany(timeout_ms=int(seconds * 1000))
        for records in batch.values():
            for record in records:
                assert record.key is not None and record.value is not None
                value = json.loads(record.value)
                assert record.key.decode() == value["event_id"]
                headers = dict(record.headers or ())
                assert headers["message-type"] == b"meeting.changed"
                assert schema_errors("meeting.changed", value) == []
                parse_changed(record.value)
                self.seen.append(value)

    def of(self, event_id: str) -> list[dict[str, Any]]:
        return [v for v in self.seen if v["event_id"] == event_id]

    async def wait_for(
        self, event_id: str, count: int, timeout: float = 20
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.drain()
            if len(self.of(event_id)) >= count:
                return self.of(event_id)
        raise AssertionError(f"expected {count} changes for {event_id}: {self.of(event_id)}")

    async def settle(self, seconds: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.drain()


@dataclass(frozen=True)
class World:
    pipeline: Pipeline
    zoom: ZoomEmulator
    base_url: str
    changes: Changes
    pool: AsyncConnectionPool


@pytest.fixture(scope="module")
async def world(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator, pool: AsyncConnectionPool
) -> AsyncIterator[World]:
    prefix = f"mw-{uuid.uuid4().hex[:8]}"
    async for pipeline in make_pipeline(kafka, database_url, zoom, prefix, f"{prefix}-group"):
        topic = f"{prefix}.meeting.changed"
        await create_topics(kafka.bootstrap_servers, [topic], partitions=PARTITIONS)
        pipeline.worker().start()
        async with serving(database_url, zoom, kafka, topic) as base_url:
            await until(lambda: _sample("zoom_meeting_changes_producer_up") >= 1, timeout=30)
            zoom.subscribe_webhooks(
                f"{base_url}/zoom/webhook", WEBHOOK_SECRET, retry_delays=RETRIES
            )
            changes = Changes(kafka.bootstrap_servers, topic)
            await changes.start()
            try:
                yield World(pipeline, zoom, base_url, changes, pool)
            finally:
                zoom.unsubscribe_webhooks()
                await changes.stop()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _outcomes(event: str, outcome: str) -> float:
    return _sample("zoom_meeting_webhooks_total", event=event, outcome=outcome)


async def _linked_meeting(world: World, event_id: str, revision: int, **fields: Any) -> int:
    """Send the event and return the meeting the worker made or kept for it."""
    kind = "created" if revision == 1 else "updated"
    await world.pipeline.sender.send(kind, event(event_id, revision, **fields))
    results = await world.pipeline.results.wait_for(event_id, revision, timeout=30)
    answer = results[-1]
    assert answer.get("action") in ("created", "updated"), answer
    meeting: int = answer["meeting"]["id"]
    return meeting


async def _link(world: World, event_id: str) -> dict[str, Any]:
    async with world.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT state, zoom_meeting_id, title, start_time, duration_minutes, timezone"
            " FROM event_links WHERE event_id = %s",
            (event_id,),
        )
        row = await cursor.fetchone()
    assert row is not None
    names = ("state", "zoom_meeting_id", "title", "start_time", "duration_minutes", "timezone")
    return dict(zip(names, row, strict=True))


async def _delivered(zoom: ZoomEmulator, event_type: str, meeting_id: int, count: int) -> None:
    """Wait until ``count`` events of that type about that meeting were delivered (2xx)."""

    def done() -> bool:
        ok = [
            d
            for d in zoom.webhook_deliveries()
            if d.event == event_type and d.meeting_id == meeting_id and d.delivered
        ]
        return len(ok) >= count

    await until(done, timeout=20)


@pytest.fixture
async def ana(world: World) -> str:
    user = f"ana-{uuid.uuid4().hex[:6]}"
    await world.pipeline.connect(user)
    return user


async def test_a_host_moving_the_meeting_on_zoom_reaches_the_calendar_and_the_link(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana, title="Interview")

    assert world.zoom.edit_meeting(meeting, start_time="2026-12-01T16:30:00Z", duration=45)
    (changed,) = await world.changes.wait_for(ev, 1)
    assert changed["change"] == "updated_on_zoom"
    assert changed["organizer_user_id"] == ana and changed["revision"] == 1
    assert changed["meeting"] == {
        "id": meeting, "topic": "Interview", "start_time": "2026-12-01T16:30:00Z",
        "duration": 45, "timezone": "Europe/Madrid",
    }  # fmt: skip
    assert sorted(changed["changed"]) == ["duration", "start_time"]
    await _delivered(world.zoom, "meeting.updated", meeting, 1)  # answered: stored by then
    link = await _link(world, ev)
    assert link["start_time"] == datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    assert (link["state"], link["duration_minutes"], link["title"]) == ("linked", 45, "Interview")

    # A title-only edit on Zoom: the rest as Zoom has it now, i.e. as the link now stores it.
    assert world.zoom.edit_meeting(meeting, topic="Interview (moved by the host)")
    second = (await world.changes.wait_for(ev, 2))[1]
    assert second["changed"] == ["topic"]
    assert second["meeting"]["start_time"] == "2026-12-01T16:30:00Z"
    assert second["message_id"] != changed["message_id"]


async def test_the_workers_own_update_comes_back_and_publishes_nothing(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    echoes = _outcomes("meeting.updated", "echo")

    # The calendar moves the event: the worker's PATCH comes back as meeting.updated.
    await _linked_meeting(world, ev, 2, organizer=ana, shift_minutes=60, title="Moved")
    await _delivered(world.zoom, "meeting.updated", meeting, 1)
    await until(lambda: _outcomes("meeting.updated", "echo") >= echoes + 1)
    await world.changes.settle(1.0)
    assert world.changes.of(ev) == []


async def test_the_calendar_moves_a_meeting_back_only_with_a_new_revision(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana, title="Interview")
    world.zoom.edit_meeting(meeting, start_time="2026-12-01T18:00:00Z")
    await world.changes.wait_for(ev, 1)
    patches = world.zoom.calls("PATCH /v2/meetings/{meetingId}")

    # Redelivered, the old revision changes nothing on Zoom.
    await world.pipeline.sender.send("created", event(ev, 1, ana, title="Interview"))
    await world.pipeline.results.wait_for(ev, 2)
    assert world.zoom.calls("PATCH /v2/meetings/{meetingId}") == patches
    # A new revision (title only) puts the calendar's time back: the link held Zoom's time.
    await world.pipeline.sender.send("updated", event(ev, 2, ana, title="Interview, round 2"))
    assert (await world.pipeline.results.wait_for(ev, 3))[-1]["action"] == "updated"
    record = world.zoom.meeting(meeting)
    assert record is not None and record.start_time == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert record.topic == "Interview, round 2"
    await _delivered(world.zoom, "meeting.updated", meeting, 2)  # the host's, the worker's
    await world.changes.settle(1.0)
    assert len(world.changes.of(ev)) == 1


async def test_a_host_deleting_the_meeting_on_zoom_and_the_next_revision_recreating_it(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)

    assert world.zoom.delete_meeting(meeting)
    (deleted,) = await world.changes.wait_for(ev, 1)
    assert deleted["change"] == "deleted_on_zoom" and deleted["meeting"] == {"id": meeting}
    assert "changed" not in deleted
    await _delivered(world.zoom, "meeting.deleted", meeting, 1)
    link = await _link(world, ev)
    assert (link["state"], link["zoom_meeting_id"]) == ("none", None)

    creates = world.zoom.calls("POST /v2/users/{userId}/meetings")
    patches = world.zoom.calls("PATCH /v2/meetings/{meetingId}")
    await world.pipeline.sender.send("updated", event(ev, 2, ana, title="Still on"))
    answer = (await world.pipeline.results.wait_for(ev, 2))[-1]
    assert answer["action"] == "created" and answer["meeting"]["id"] != meeting
    assert world.zoom.calls("POST /v2/users/{userId}/meetings") == creates + 1
    assert world.zoom.calls("PATCH /v2/meetings/{meetingId}") == patches  # no 3001 detour

    # The worker's own cancel comes back as meeting.deleted: nothing published.
    echoes = _outcomes("meeting.deleted", "echo")
    await world.pipeline.sender.send("deleted", event(ev, 3, ana, deleted=True))
    assert (await world.pipeline.results.wait_for(ev, 3))[-1]["action"] == "cancelled"
    await _delivered(world.zoom, "meeting.deleted", answer["meeting"]["id"], 1)
    await until(lambda: _outcomes("meeting.deleted", "echo") >= echoes + 1)
    await world.changes.settle(1.0)
    assert len(world.changes.of(ev)) == 1


async def test_started_and_ended_and_zoom_retrying_one_event_publishes_it_once(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    assert world.zoom.start_meeting(meeting)
    assert world.zoom.end_meeting(meeting)
    changes = await world.changes.wait_for(ev, 2)
    # Zoom promises no order between two events; occurred_at tells which came first.
    by_time = sorted(changes, key=lambda c: parse_changed(json.dumps(c).encode()).occurred_at)
    assert [c["change"] for c in by_time] == ["started", "ended"]

    # Zoom retries an event it got no answer for, signed anew over the same body: the
    # delivery log cannot tell (another timestamp), the message id can.
    await _delivered(world.zoom, "meeting.started", meeting, 1)
    (started,) = [d for d in world.zoom.webhook_deliveries() if d.event == "meeting.started"
                  and d.meeting_id == meeting]  # fmt: skip
    payload = {"account_id": "acc", "object": {"id": meeting, "uuid": "u==", "host_id":
               world.pipeline.zoom_users[ana], "topic": "Interview", "type": 2}}  # fmt: skip
    url = f"{world.base_url}/zoom/webhook"
    for _ in range(2):
        retry = await world.zoom.send_webhook(
            url, "meeting.started", payload, WEBHOOK_SECRET, event_ts=started.event_ts
        )
        assert retry.status_code == 200
        assert retry.json() == {"status": "ignored", "why": "duplicate"}
        await asyncio.sleep(1.1)  # the next second: another signature, another delivery
    await world.changes.settle(1.0)
    assert len(world.changes.of(ev)) == 2


async def test_meetings_no_link_knows_and_hosts_no_longer_connected_are_acknowledged(
    world: World, ana: str
) -> None:
    url = f"{world.base_url}/zoom/webhook"
    unknown = {"account_id": "acc", "object": {"id": 99_999_999_999, "topic": "Elsewhere"}}
    answer = await world.zoom.send_webhook(url, "meeting.updated", unknown, WEBHOOK_SECRET)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ignored", "why": "unknown_meeting"}

    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    assert await world.pipeline.store.disconnect(ana)
    # Zoom stops notifying once the grant is revoked: the emulator sends nothing more...
    assert not world.zoom.edit_meeting(meeting, topic="After leaving")
    # ...and a late (or still subscribed) notification is acknowledged and ignored.
    late = {"account_id": "acc", "object": {"id": meeting, "topic": "After leaving"}}
    answer = await world.zoom.send_webhook(url, "meeting.updated", late, WEBHOOK_SECRET)
    assert answer.json() == {"status": "ignored", "why": "not_connected"}
    await world.changes.settle(0.5)
    assert world.changes.of(ev) == []
    assert (await _link(world, ev))["title"] == "Interview"


async def test_a_webhook_waits_for_the_worker_and_zoom_retries_it_when_it_cannot(
    world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    # The worker holds the event (a long Zoom call, say): the webhook waits for it, gives up
    # within Zoom's 3 seconds, answers 503 and forgets the delivery; Zoom's retry acts on it.
    # Over the lease the worker may not have released yet (releases go in the background).
    async with world.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO leases (key, owner, until) VALUES (%s, 'a-worker', now() + interval '1h')"
            " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until",
            (f"event:{ev}",),
        )
    world.zoom.edit_meeting(meeting, duration=90)

    def refused() -> bool:
        tries = world.zoom.webhook_deliveries()
        return any(d.meeting_id == meeting and d.status == 503 for d in tries)

    await until(refused)
    assert world.changes.of(ev) == []
    async with world.pool.connection() as conn:
        await conn.execute("DELETE FROM leases WHERE owner = 'a-worker'")
    (changed,) = await world.changes.wait_for(ev, 1)
    assert changed["meeting"]["duration"] == 90
    await _delivered(world.zoom, "meeting.updated", meeting, 1)
    tries = [d for d in world.zoom.webhook_deliveries() if d.event == "meeting.updated"
             and d.meeting_id == meeting]  # fmt: skip
    assert tries[0].status == 503 and tries[-1].delivered and len({d.event_ts for d in tries}) == 1
    assert (await _link(world, ev))["duration_minutes"] == 90
    await world.changes.settle(1.0)
    assert len(world.changes.of(ev)) == 1


async def test_no_broker_answers_503_and_forgets_the_delivery(
    database_url: str, zoom: ZoomEmulator, world: World, ana: str
) -> None:
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    dead = _free_port()  # nothing listens there: the broker is down
    broken = KafkaService(f"127.0.0.1:{dead}", "env", supports_idempotence=False)
    async with serving(database_url, zoom, broken, "meeting.changed") as base_url:
        payload = {"account_id": "acc", "object": {"id": meeting, "duration": 15}}
        url = f"{base_url}/zoom/webhook"
        signed_at, happened = time.time(), int(time.time() * 1000) + 1
        for _ in range(2):  # the same signed delivery twice: forgotten after the first failure
            answer = await zoom.send_webhook(
                url, "meeting.updated", payload, WEBHOOK_SECRET, timestamp=signed_at,
                event_ts=happened,
            )  # fmt: skip
            assert answer.status_code == 503
            assert answer.json()["error"] == "webhook_deferred"
    assert (await _link(world, ev))["duration_minutes"] == 30


async def test_a_publish_the_broker_does_not_acknowledge_in_time_answers_503_then_zoom_retries(
    database_url: str, kafka: KafkaService, zoom: ZoomEmulator, world: World, ana: str
) -> None:
    if not kafka.is_apache_kafka:
        pytest.skip("needs a broker that does not create topics on first use")
    ev = f"ev-{uuid.uuid4().hex[:8]}"
    meeting = await _linked_meeting(world, ev, 1, organizer=ana)
    topic = f"mw-late-{uuid.uuid4().hex[:8]}.meeting.changed"  # not created yet
    async with serving(database_url, zoom, kafka, topic) as base_url:
        url = f"{base_url}/zoom/webhook"
        payload = {"account_id": "acc", "object": {"id": meeting, "topic": "Slow broker"}}
        started = time.monotonic()
        first = await zoom.send_webhook(url, "meeting.updated", payload, WEBHOOK_SECRET,
                                        event_ts=1_900_000_000_000)  # fmt: skip
        assert first.status_code == 503 and time.monotonic() - started < 3.5
        await create_topics(kafka.bootstrap_servers, [topic], partitions=PARTITIONS)
        late = Changes(kafka.bootstrap_servers, topic)
        await late.start()
        try:

            async def retried() -> httpx.Response:
                return await zoom.send_webhook(url, "meeting.updated", payload, WEBHOOK_SECRET,
                                               event_ts=1_900_000_000_000)  # fmt: skip

            answer = await _eventually(retried, lambda r: r.status_code == 200)
            assert answer.json() == {"status": "published", "change": "updated_on_zoom"}
            await late.settle(1.0)
            assert [c["meeting"]["topic"] for c in late.of(ev)] == ["Slow broker"]
        finally:
            await late.stop()


async def _eventually(
    call: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 20
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await call()
        if ok(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(1.1)  # Zoom signs each try anew: the next second
