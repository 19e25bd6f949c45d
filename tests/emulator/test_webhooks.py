"""The emulator's meeting event notifications: sent for the API's changes and a host's changes
in Zoom's own apps, shaped and signed as Zoom's, retried as Zoom retries a failed delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, ZoomEmulator

from tests.emulator.conftest import bearer

SECRET = "emulator-webhook-secret"
QUICK = (0.2, 0.2, 0.2)  # Zoom's: 5, 20 and 60 minutes
SCHEDULED = {"topic": "Interview", "type": 2, "start_time": "2030-01-31T09:30:00Z",
             "duration": 45, "timezone": "Europe/Berlin"}  # fmt: skip


@dataclass
class Received:
    event: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Endpoint:
    """A webhook endpoint answering each request with the next planned status (then 200),
    after the next planned delay (then none)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} received"
            time.sleep(0.02)
        return self.received


@pytest.fixture
def endpoint(zoom: ZoomEmulator) -> Iterator[Endpoint]:
    state = Endpoint()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:  # the plan is followed in the order requests arrive
                state.received.append(Received(json.loads(body)["event"], body, headers))
                delay = state.delays.pop(0) if state.delays else 0.0
                status = state.statuses.pop(0) if state.statuses else 200
            time.sleep(delay)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/zoom/webhook"
    zoom.subscribe_webhooks(state.url, SECRET, retry_delays=QUICK, timeout=0.5)
    try:
        yield state
    finally:
        zoom.unsubscribe_webhooks()
        server.shutdown()
        server.server_close()
        deadline = time.monotonic() + 5
        while not zoom.webhooks_idle and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def api(zoom: ZoomEmulator, ana: EmulatedUser) -> httpx.Client:
    access, _ = zoom.grant_tokens(ana.id)  # ana has the app installed
    return httpx.Client(base_url=zoom.api_base_url, headers=bearer(access), timeout=5)


def _meeting(api: httpx.Client) -> int:
    created = api.post("/users/me/meetings", json=SCHEDULED)
    assert created.status_code == 201
    meeting_id: int = created.json()["id"]
    return meeting_id


def _signed_as_zoom_signs(request: Received) -> bool:
    timestamp = request.headers["x-zm-request-timestamp"]
    message = b"v0:" + timestamp.encode() + b":" + request.body
    expected = "v0=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 10
    return fresh and hmac.compare_digest(expected, request.headers["x-zm-signature"])


def test_the_apis_changes_come_back_as_webhooks(
    zoom: ZoomEmulator, api: httpx.Client, ana: EmulatedUser, endpoint: Endpoint
) -> None:
    meeting = _meeting(api)
    assert api.patch(f"/meetings/{meeting}", json={"topic": "Moved", "duration": 45}).is_success
    assert api.delete(f"/meetings/{meeting}").status_code == 204
    # Zoom promises no order between deliveries: event_ts tells which came first.
    updated, deleted = sorted(endpoint.wait_for(2), key=lambda r: r.json["event_ts"])
    assert all(_signed_as_zoom_signs(r) for r in (updated, deleted))
    assert updated.event == "meeting.updated"
    payload = updated.json["payload"]
    assert payload["object"] == {"id": meeting, "topic": "Moved"}  # only what changed
    assert payload["old_object"] == {"id": meeting, "topic": "Interview"}
    assert (payload["operator"], payload["operator_id"]) == (ana.email, ana.id)
    assert deleted.event == "meeting.deleted"
    assert deleted.json["payload"]["object"]["host_id"] == ana.id
    assert deleted.json["event_ts"] > updated.json["event_ts"]


def test_a_hosts_changes_in_zoom_are_notified(
    zoom: ZoomEmulator, api: httpx.Client, endpoint: Endpoint
) -> None:
    meeting = _meeting(api)
    with httpx.Client(base_url=zoom.base_url, timeout=5) as admin:
        moved = admin.patch(
            f"/_emulator/meetings/{meeting}", json={"start_time": "2030-02-01T10:00:00Z"}
        )
        assert moved.json() == {"notified": True}
        assert admin.post(f"/_emulator/meetings/{meeting}/start").json() == {"notified": True}
        assert admin.post(f"/_emulator/meetings/{meeting}/end").json() == {"notified": True}
        assert admin.delete(f"/_emulator/meetings/{meeting}").json() == {"notified": True}
        assert admin.delete(f"/_emulator/meetings/{meeting}").status_code == 404
        listed = admin.get("/_emulator/webhooks").json()
    received = sorted(endpoint.wait_for(4), key=lambda r: r.json["event_ts"])
    events = [r.event for r in received]
    assert events == ["meeting.updated", "meeting.started", "meeting.ended", "meeting.deleted"]
    updated = received[0].json["payload"]["object"]
    assert updated == {"id": meeting, "start_time": "2030-02-01T10:00:00Z"}
    assert received[2].json["payload"]["object"]["end_time"].endswith("Z")
    assert zoom.calls("PATCH /v2/meetings/{meetingId}") == 0  # not through the API
    assert "deliveries" in listed and "idle" in listed


def test_a_failed_delivery_is_retried_with_the_same_body_signed_anew(
    zoom: ZoomEmulator, api: httpx.Client, endpoint: Endpoint
) -> None:
    meeting = _meeting(api)
    endpoint.statuses = [500, 503]
    endpoint.delays = [0.0, 0.0]
    zoom.edit_meeting(meeting, topic="Retried")
    tries = endpoint.wait_for(3)
    assert len({t.body for t in tries}) == 1 and all(_signed_as_zoom_signs(t) for t in tries)
    time.sleep(0.5)
    assert len(endpoint.received) == 3  # answered 200 the third time: nothing more
    journal = [(d.attempt, d.status, d.delivered) for d in zoom.webhook_deliveries()]
    assert journal == [(1, 500, False), (2, 503, False), (3, 200, True)]


def test_no_answer_in_time_fails_and_four_failures_end_it(
    zoom: ZoomEmulator, api: httpx.Client, endpoint: Endpoint
) -> None:
    meeting = _meeting(api)
    endpoint.delays = [0.8]  # past the 0.5 s this subscription allows (Zoom's: 3 s)
    endpoint.statuses = [200, 500, 500, 500]
    zoom.delete_meeting(meeting)
    endpoint.wait_for(4)
    deadline = time.monotonic() + 5
    while not zoom.webhooks_idle and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)
    assert len(endpoint.received) == 4  # the first try and three retries, then never again
    statuses = [d.status for d in zoom.webhook_deliveries()]
    assert statuses == [None, 500, 500, 500]


def test_nothing_without_the_app_a_subscription_or_a_change(
    zoom: ZoomEmulator, api: httpx.Client, endpoint: Endpoint
) -> None:
    meeting = _meeting(api)
    assert not zoom.edit_meeting(meeting, topic="Interview")  # the same topic: no change
    bea = zoom.add_user("bea@example.com")
    access, _ = zoom.grant_tokens(bea.id)
    with httpx.Client(base_url=zoom.api_base_url, headers=bearer(access), timeout=5) as theirs:
        other = _meeting(theirs)
    with httpx.Client(base_url=zoom.oauth_base_url, auth=("emu-client", "emu-secret")) as oauth:
        assert oauth.post("/oauth/revoke", data={"token": access}).is_success
    assert not zoom.edit_meeting(other, topic="After removing the app")
    zoom.unsubscribe_webhooks()
    assert not zoom.edit_meeting(meeting, topic="Unsubscribed")
    time.sleep(0.3)
    assert endpoint.received == []
