"""The help article's disconnect, end to end: `zoom-worker serve` and `zoom-worker run` as
separate processes. After Disconnect the tokens are gone and revoked, the existing meeting
keeps its link, and the next change to the event says "User has not authorized Zoom access"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from devservices import KafkaService
from devservices._process import die_with_parent, free_port
from devservices.zoom_emulator import ZoomEmulator

from connect.tickets import make_ticket
from tests.worker.conftest import Pipeline, make_pipeline
from tests.worker.harness import event

TICKET_SECRET = "disconnect-test-ticket-secret-0123456789"
RETURN_URL = "https://app.talivo.test/settings/integrations"


@pytest.fixture(scope="module")
async def pipeline(
    kafka: KafkaService, database_url: str, zoom: ZoomEmulator
) -> AsyncIterator[Pipeline]:
    prefix = f"d-{uuid.uuid4().hex[:8]}"
    async for p in make_pipeline(kafka, database_url, zoom, prefix, f"g-{prefix}"):
        p.worker().start()
        yield p


@pytest.fixture(scope="module")
def serve_url(pipeline: Pipeline) -> str:
    port = free_port()
    env = {
        **os.environ,
        **pipeline.env,
        "SERVE_PORT": str(port),
        "CONNECT_TICKET_SECRET": TICKET_SECRET,
        "CONNECT_RETURN_URL_ALLOWLIST": RETURN_URL,
        "ZOOM_WEBHOOK_SECRET_TOKEN": "disconnect-test-webhook-secret",
        "ZOOM_REDIRECT_URI": f"http://127.0.0.1:{port}/zoom/callback",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield base
    serve.terminate()
    assert serve.wait(20) == 0


async def test_after_disconnect_the_meeting_stays_and_changes_say_not_connected(
    pipeline: Pipeline, serve_url: str
) -> None:
    zoom_user = await pipeline.connect("hana")
    ev = f"ev-{uuid.uuid4().hex[:10]}"
    await pipeline.sender.send("created", event(ev, 1, organizer="hana", title=f"{ev} call"))
    (created,) = await pipeline.results.wait_for(ev, 1)
    revokes = pipeline.zoom.calls("POST /oauth/revoke")

    ticket = make_ticket(
        TICKET_SECRET.encode(), "hana", RETURN_URL, now=time.time(), purpose="disconnect"
    )
    answer = httpx.post(
        f"{serve_url}/zoom/disconnect", headers={"authorization": f"Bearer {ticket}"}
    )
    assert answer.status_code == 204
    assert pipeline.zoom.calls("POST /oauth/revoke") == revokes + 1
    assert await pipeline.store.status("hana") is None

    await pipeline.sender.send("updated", event(ev, 2, organizer="hana", title=f"{ev} moved"))
    _, refused = await pipeline.results.wait_for(ev, 2)
    assert refused["reason"] == "zoom_not_connected"
    assert refused["message"].startswith("User has not authorized Zoom access")
    # The existing meeting keeps its link: Talivo just can no longer change it.
    alive = [m for m in pipeline.zoom.meetings(zoom_user) if m.id == created["meeting"]["id"]]
    assert [m.topic for m in alive] == [f"{ev} call"]
