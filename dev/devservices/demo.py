"""``zoom-dev demo``: the whole pipeline on embedded services, told as a short story.

Starts a broker, Postgres and the Zoom emulator; connects recruiters through the OAuth code
flow (PKCE) against the emulator; runs the worker in this process; publishes a scripted series
of calendar messages and prints each result as it arrives; then checks the emulator's state,
stops everything and exits 0 when every step ended as expected.

On the emulator, ``zoom-worker serve`` runs in this process too and hears the emulator's
webhooks: the last scene has a host moving and deleting a meeting in Zoom itself, and the
calendar hearing of it (``meeting.changed``); the worker's own calls come back as webhooks
all along and are never reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import migrations
from connect.config import ConnectSettings
from connect.server import serve
from devservices import create_database, kafka_service, postgres_service
from devservices.kafka import create_topics
from devservices.zoom_emulator import Fault, ZoomEmulator
from token_store import TokenStore, ZoomOAuth, pkce
from token_store.crypto import generate_key
from worker.runtime import app
from worker.runtime import logging as worker_logging
from worker.runtime.http import http_client
from worker.zoom import MeetingNotFound, ZoomMeetings

REDIRECT_URI = "http://localhost/zoom/callback"
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-secret"
CREATE = "POST /v2/users/{userId}/meetings"


@dataclass(frozen=True)
class Step:
    title: str
    topic: str  # "created" | "updated" | "deleted" | "raw" | "zoom" (a host acting on Zoom)
    payload: dict[str, Any] | bytes
    # "created", "updated", "cancelled" or a failure reason; for "zoom", the meeting.changed
    expect: str
    then: str | None = None  # a second result expected (after a notice of a retry)
    zoom_down: bool = False  # Zoom fails every create for a few seconds
    emulator_only: bool = False  # a scene only the emulator can stage (Zoom going down)

    @property
    def organizer(self) -> str | None:
        if isinstance(self.payload, dict):
            organizer: str = self.payload["organizer"]["user_id"]
            return organizer
        return None


def _event(event_id: str, revision: int, organizer: str, **fields: Any) -> dict[str, Any]:
    start = datetime(2026, 12, 1, 15, 0, tzinfo=UTC) + timedelta(hours=fields.pop("shift", 0))
    body: dict[str, Any] = {
        "schema_version": 1,
        "message_id": str(uuid.uuid4()),
        "event_id": event_id,
        "revision": revision,
        "occurred_at": datetime.now(UTC).isoformat(),
        "organizer": {"user_id": organizer, "email": f"{organizer}@talivo.example"},
    }
    if fields.pop("deleted", False):
        return body
    body |= {
        "title": fields.pop("title", "Interview: Backend engineer"),
        "description": "Technical interview, 45 minutes.",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=45)).isoformat(),
        "timezone": "America/Mexico_City",
        "attendees": [{"email": "candidate@example.com", "name": "Candidate"}],
        "video_conference": fields.pop("video", "zoom"),
    }
    return body


def _on_zoom(event_id: str, organizer: str, action: str, **fields: Any) -> dict[str, Any]:
    """A host acting on the event's meeting in Zoom itself (``action``: move, delete)."""
    return {"event_id": event_id, "organizer": {"user_id": organizer}, "action": action} | fields


def story() -> list[Step]:
    ev = f"ev-{secrets.token_hex(3)}"
    other = f"ev-{secrets.token_hex(3)}"
    host = f"ev-{secrets.token_hex(3)}"
    down = f"ev-{secrets.token_hex(3)}"
    panel = f"ev-{secrets.token_hex(3)}"
    return [
        Step("Ana schedules an interview with Zoom", "created", _event(ev, 1, "ana"), "created"),
        Step("Ana moves it one hour later", "updated", _event(ev, 2, "ana", shift=1), "updated"),
        Step("Ana switches it to no video", "updated", _event(ev, 3, "ana", video="none"),
             "cancelled"),
        Step("...and back to Zoom", "updated", _event(ev, 4, "ana", shift=1), "created"),
        Step("Ana deletes the event", "deleted", _event(ev, 5, "ana", deleted=True), "cancelled"),
        Step("Carla (no Zoom connected) schedules one", "created", _event(other, 1, "carla"),
             "zoom_not_connected"),
        Step("Zoom is down: Ana schedules another", "created", _event(down, 1, "ana"),
             "zoom_unavailable", then="created", zoom_down=True, emulator_only=True),
        Step("...Ana deletes that one", "deleted", _event(down, 2, "ana", deleted=True),
             "cancelled", emulator_only=True),
        Step("Bruno schedules one", "created", _event(host, 1, "bruno"), "created"),
        Step("Bruno, now on another Zoom account, edits it", "updated",
             _event(host, 2, "bruno", title="Interview: Staff engineer"), "not_meeting_host"),
        Step("A malformed message arrives", "raw",
             json.dumps({"schema_version": 1, "event_id": f"ev-{secrets.token_hex(3)}",
                         "revision": 1, "start": "tomorrow"}).encode(), "invalid_event"),
        Step("Ana schedules a panel interview", "created", _event(panel, 1, "ana"), "created",
             emulator_only=True),
        Step("In Zoom, Ana moves it to 18:00 UTC", "zoom",
             _on_zoom(panel, "ana", "move", start_time="2026-12-01T18:00:00Z", duration=60),
             "updated_on_zoom", emulator_only=True),
        Step("In Zoom, Ana deletes the meeting", "zoom", _on_zoom(panel, "ana", "delete"),
             "deleted_on_zoom", emulator_only=True),
        Step("Ana edits the event: a new meeting", "updated",
             _event(panel, 2, "ana", title="Panel interview"), "created", emulator_only=True),
        Step("...and deletes the event", "deleted", _event(panel, 3, "ana", deleted=True),
             "cancelled", emulator_only=True),
    ]  # fmt: skip


async def connect_via_oauth(store: TokenStore, zoom: ZoomEmulator, user_id: str, email: str) -> str:
    """The OAuth code flow with PKCE, the user clicking Allow on the emulator."""
    zoom_user = zoom.add_user(email)
    verifier, challenge = pkce.new_pair()
    code = zoom.authorize(zoom_user.id, redirect_uri=REDIRECT_URI, code_challenge=challenge)
    await store.connect(user_id, code, verifier, REDIRECT_URI)
    return zoom_user.id


class ZoomSide(Protocol):
    """Where the demo's Zoom lives: the emulator, or the real Zoom with a person at the keyboard."""

    @property
    def api_base_url(self) -> str: ...
    @property
    def oauth_base_url(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...
    @property
    def has_second_account(self) -> bool:
        """Whether one recruiter can switch to a second Zoom account (the not-host scene)."""

    @property
    def can_fail(self) -> bool:
        """Whether this Zoom can be made to fail (the emulator can, the real one cannot)."""

    def fail_creates_for(self, seconds: float) -> None:
        """Make Zoom fail every create for ``seconds``."""

    def notify(self, url: str, secret_token: str) -> None:
        """Send Zoom's meeting webhooks to ``url`` (the emulator; the real Zoom's are set in
        the Zoom app and cannot reach this machine)."""

    def host_acts(self, meeting_id: int, action: str, fields: dict[str, Any]) -> None:
        """The host moves (``fields``: start_time, duration...) or deletes the meeting in Zoom."""

    async def connect(self, store: TokenStore, user_id: str, email: str) -> None: ...


@dataclass
class EmulatedZoom:
    zoom: ZoomEmulator
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    has_second_account: bool = True

    @property
    def api_base_url(self) -> str:
        return self.zoom.api_base_url

    @property
    def oauth_base_url(self) -> str:
        return self.zoom.oauth_base_url

    async def connect(self, store: TokenStore, user_id: str, email: str) -> None:
        await connect_via_oauth(store, self.zoom, user_id, email)

    can_fail: bool = True

    def fail_creates_for(self, seconds: float) -> None:
        self.zoom.faults = [Fault(kind="error", status=503, endpoint=CREATE)]
        asyncio.get_running_loop().call_later(seconds, setattr, self.zoom, "faults", [])

    def notify(self, url: str, secret_token: str) -> None:
        # Zoom's retries come 5, 25 and 85 minutes after a failed try; the demo's, in seconds.
        self.zoom.subscribe_webhooks(url, secret_token, retry_delays=(0.5, 1.0, 2.0))

    def host_acts(self, meeting_id: int, action: str, fields: dict[str, Any]) -> None:
        if action == "delete":
            self.zoom.delete_meeting(meeting_id)
        else:
            self.zoom.edit_meeting(meeting_id, **fields)


@dataclass
class RealZoom:
    """The real Zoom: the operator signs in in a browser and pastes where Zoom sent them."""

    api_base_url: str
    oauth_base_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    has_second_account: bool = False

    async def connect(self, store: TokenStore, user_id: str, email: str) -> None:
        verifier, challenge = pkce.new_pair()
        query = urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": secrets.token_urlsafe(16),
        })  # fmt: skip
        print(f"\nConnect Zoom for {user_id!r}: open this URL, sign in and click Allow:")
        print(f"  {self.oauth_base_url}/oauth/authorize?{query}")
        print("then paste the address Zoom sent your browser to (it holds ?code=...):")
        pasted = (await asyncio.to_thread(sys.stdin.readline)).strip()
        code = parse_qs(urlsplit(pasted).query).get("code", [pasted])[0]
        await store.connect(user_id, code, verifier, self.redirect_uri)

    can_fail: bool = False

    def fail_creates_for(self, seconds: float) -> None:
        raise NotImplementedError("the real Zoom cannot be made to fail")

    def notify(self, url: str, secret_token: str) -> None:
        raise NotImplementedError("the real Zoom's webhooks are set in the Zoom app")

    def host_acts(self, meeting_id: int, action: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError("a person does that in Zoom")


async def _run_story(settings: ConnectSettings, zoom: ZoomSide, bootstrap: str) -> bool:
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(settings.dsn(), open=False)
    await pool.open()
    http = http_client()
    oauth = ZoomOAuth(
        http, zoom.oauth_base_url, zoom.api_base_url, zoom.client_id, zoom.client_secret
    )
    store = TokenStore(pool, settings.key_ring(), oauth)
    await zoom.connect(store, "ana", "ana@zoom.example")
    if zoom.has_second_account:
        await zoom.connect(store, "bruno", "bruno@zoom.example")
    print("connected Zoom through the OAuth code flow (PKCE)")

    stop = asyncio.Event()
    worker = asyncio.create_task(app.run(settings, stop))
    # zoom-worker serve, hearing Zoom's webhooks (the emulator's; the real Zoom's cannot reach it)
    hearing = asyncio.create_task(serve(settings, stop)) if zoom.can_fail else None
    if hearing is not None:
        assert settings.zoom_webhook_secret_token is not None
        url = f"http://127.0.0.1:{settings.serve_port}/zoom/webhook"
        zoom.notify(url, settings.zoom_webhook_secret_token.get_secret_value())
    results = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await results.start()
    parts = [
        TopicPartition(t, p)
        for t in (
            settings.topic_meeting_linked,
            settings.topic_meeting_failed,
            settings.topic_meeting_changed,
        )
        for p in range(3)
    ]
    results.assign(parts)
    await results.seek_to_beginning(*parts)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    topic_of = {
        "created": settings.topic_event_created,
        "updated": settings.topic_event_updated,
        "deleted": settings.topic_event_deleted,
        "raw": settings.topic_event_created,
    }
    ok = True
    ana_meetings: set[int] = set()
    meeting_of: dict[str, int] = {}  # the meeting each event was last linked to
    print(f"\n{'step':<46} {'result':<19} {'detail'}")
    print("-" * 110)
    try:
        for step in story():
            if step.organizer == "bruno" and not zoom.has_second_account:
                print(f"-- {step.title:<43} skipped: needs a second Zoom account")
                continue
            if step.emulator_only and not zoom.can_fail:
                print(f"-- {step.title:<43} skipped: needs the emulator")
                continue
            if step.zoom_down:
                zoom.fail_creates_for(5.0)
            if step.title.startswith("Bruno, now"):
                await zoom.connect(store, "bruno", "bruno.new@zoom.example")
            if step.topic == "zoom":
                assert isinstance(step.payload, dict)
                on_zoom = dict(step.payload)
                meeting_id = meeting_of[on_zoom.pop("event_id")]
                del on_zoom["organizer"]
                zoom.host_acts(meeting_id, on_zoom.pop("action"), on_zoom)
            else:
                value = (
                    step.payload
                    if isinstance(step.payload, bytes)
                    else json.dumps(step.payload).encode()
                )
                key = (
                    step.payload["event_id"].encode() if isinstance(step.payload, dict) else b"bad"
                )
                await producer.send_and_wait(topic_of[step.topic], value, key=key)
            got = await _next_result(results, within=30)
            outcome = got.get("reason") or got.get("action") or got.get("change") or "?"
            meeting = got.get("meeting") or {}
            if meeting and got.get("event_id"):
                meeting_of[got["event_id"]] = meeting["id"]
            detail = meeting.get("join_url") or (
                f"meeting {meeting['id']}" if meeting else got.get("message", "")
            )
            if got.get("change") == "updated_on_zoom":
                detail = f"meeting {meeting['id']} now at {meeting['start_time']}, "
                detail += f"{meeting['duration']} min: the calendar hears of it"
            if step.organizer == "ana" and meeting:
                ana_meetings.add(meeting["id"])
            if step.then is not None:  # a notice first: the worker retries by itself
                detail = f"told once, retrying at {got.get('next_attempt_at')}"
            mark = "ok " if outcome == step.expect else "!! "
            ok &= outcome == step.expect
            print(f"{mark}{step.title:<43} {outcome:<19} {detail}")
            if step.then is not None:
                got = await _next_result(results, within=60)
                outcome = got.get("reason") or got.get("action") or "?"
                meeting = got.get("meeting") or {}
                ok &= outcome == step.then
                mark = "ok " if outcome == step.then else "!! "
                title = "...Zoom is back: linked by itself"
                print(f"{mark}{title:<43} {outcome:<19} {meeting.get('join_url', '')}")
                if meeting:
                    ana_meetings.add(meeting["id"])
        # Ask Zoom itself, as Ana, whether any of her demo meetings still exists.
        meetings = ZoomMeetings(http, api_base_url=zoom.api_base_url, tokens=store)
        left = [m for m in sorted(ana_meetings) if await _exists(meetings, m)]
        print(f"\nZoom meetings of Ana's still on Zoom: {len(left)} (expected 0)")
    finally:
        stop.set()
        await worker
        if hearing is not None:
            await hearing
        await producer.stop()
        await results.stop()
        await http.aclose()
        await pool.close()
    return ok and not left


async def _exists(meetings: ZoomMeetings, meeting_id: int) -> bool:
    try:
        await meetings.get_meeting("ana", meeting_id)
    except MeetingNotFound:
        return False
    return True


async def _next_result(consumer: AIOKafkaConsumer, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200, max_records=1)
        for records in batch.values():
            for record in records:
                parsed: dict[str, Any] = json.loads(record.value)
                return parsed
    raise TimeoutError("no result within the timeout")


def main(settings: ConnectSettings) -> int:
    """With ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET set, the story runs against that Zoom
    (ZOOM_API_BASE_URL, ZOOM_OAUTH_BASE_URL, ZOOM_REDIRECT_URI); otherwise on the emulator."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if settings.zoom_client_id and settings.zoom_client_secret:
            if not settings.zoom_redirect_uri:
                print(
                    "config error: ZOOM_REDIRECT_URI is required to run the demo on a real "
                    "Zoom (example: ZOOM_REDIRECT_URI=https://example.com/zoom/callback)"
                )
                return 2
            zoom: ZoomSide = RealZoom(
                settings.zoom_api_base_url, settings.zoom_oauth_base_url, settings.zoom_client_id,
                settings.zoom_client_secret.get_secret_value(), settings.zoom_redirect_uri,
            )  # fmt: skip
            where = f"Zoom at {settings.zoom_api_base_url}"
        else:
            emulator = stack.enter_context(
                ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
            )
            zoom, where = EmulatedZoom(emulator), f"Zoom emulator {emulator.base_url}"
        ok = _run(stack, zoom, where)
    print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(stack: contextlib.ExitStack, zoom: ZoomSide, where: str) -> bool:
    suffix = secrets.token_hex(3)
    kafka = stack.enter_context(kafka_service())
    postgres = stack.enter_context(postgres_service())
    dsn = create_database(postgres.url, f"zoom_demo_{suffix}")
    migrations.apply(dsn)
    names = {
        "TOPIC_EVENT_CREATED": f"demo-{suffix}.event.created",
        "TOPIC_EVENT_UPDATED": f"demo-{suffix}.event.updated",
        "TOPIC_EVENT_DELETED": f"demo-{suffix}.event.deleted",
        "TOPIC_MEETING_LINKED": f"demo-{suffix}.meeting.linked",
        "TOPIC_MEETING_FAILED": f"demo-{suffix}.meeting.failed",
        "TOPIC_MEETING_CHANGED": f"demo-{suffix}.meeting.changed",
        "TOPIC_DEAD_LETTER": f"demo-{suffix}.dlq",
    }
    asyncio.run(create_topics(kafka.bootstrap_servers, list(names.values()), partitions=3))
    settings = ConnectSettings.model_validate(
        {
            **names,
            # zoom-worker serve beside the worker (the emulator's webhooks reach it)
            "SERVE_PORT": _free_port(),
            "CONNECT_TICKET_SECRET": secrets.token_urlsafe(32),
            "CONNECT_RETURN_URL_ALLOWLIST": "http://localhost/",
            "ZOOM_WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(24),
            "ZOOM_REDIRECT_URI": REDIRECT_URI,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_GROUP_ID": f"demo-{suffix}",
            "KAFKA_ENABLE_IDEMPOTENCE": kafka.supports_idempotence,
            "KAFKA_SESSION_TIMEOUT_MS": 3000,
            "DATABASE_URL": dsn,
            "TOKEN_ENCRYPTION_KEYS": f"demo:{generate_key()}",
            "ZOOM_CLIENT_ID": zoom.client_id,
            "ZOOM_CLIENT_SECRET": zoom.client_secret,
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "HTTP_PORT": 0,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "console",
            "SHUTDOWN_GRACE_SECONDS": 5,
            # The worker's own retries on the demo's time scale (10 s, 1 min... in production).
            "RETRY_DELAYS_SECONDS": "2,2,4",
            "ZOOM_RETRY_BUDGET_SECONDS": 2,
            "RETRY_POLL_SECONDS": 0.5,
            "BREAKER_PROBE_INTERVAL_SECONDS": 1,
            # The scene shows the retry schedule healing; a breaker opened by its few failures
            # would still be probing when the story goes on (tests/worker/test_self_healing.py
            # shows the breaker).
            "BREAKER_MIN_CALLS": 1000,
        }
    )
    print(f"broker ({kafka.source}) {kafka.bootstrap_servers}, postgres ({postgres.source}), "
          f"{where}")  # fmt: skip
    worker_logging.configure("WARNING", "console")  # the table is the demo's output
    return asyncio.run(_run_story(settings, zoom, kafka.bootstrap_servers))
