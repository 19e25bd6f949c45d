"""Zoom's webhook requests, signed as Zoom signs them, and the emulator's event notifications.

``x-zm-request-timestamp`` is Unix seconds; ``x-zm-signature`` is ``v0=`` + hex
HMAC-SHA256(secret token, ``v0:{timestamp}:{raw body}``). ``endpoint.url_validation`` carries a
``plainToken`` the endpoint must answer with ``encryptedToken`` = hex HMAC-SHA256(secret token,
plainToken). The body's ``event_ts`` (Unix ms) is when the event happened.

``WebhookSender`` delivers the emulator's meeting events to a subscribed endpoint as Zoom does
(Zoom's "Webhook delays" article, devsupport.zoom.us 360059893812): the endpoint must answer 200
or 204 within 3 seconds, else the delivery failed and is sent again 5 minutes after the first
try, 20 minutes after that and 60 minutes after that (then never again). Each try is signed
anew (a new ``x-zm-request-timestamp``) over the same body, so ``event_ts`` stays the same.
Tests shorten the delays (``retry_delays``). It runs its own event loop in a daemon thread, so
the emulator's HTTP side and the tests' thread can both hand it events.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

ZOOM_RETRY_DELAYS = (300.0, 1200.0, 3600.0)  # after the first try, the second, the third
ZOOM_ANSWER_TIMEOUT = 3.0
MEETING_EVENTS = ("meeting.updated", "meeting.deleted", "meeting.started", "meeting.ended")


def sign(secret_token: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def encrypted_token(secret_token: str, plain_token: str) -> str:
    return hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def webhook_request(
    event: str,
    payload: dict[str, Any],
    secret_token: str,
    *,
    timestamp: float | None = None,
    event_ts: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Zoom would send for ``event`` at ``timestamp`` (default now);
    ``event_ts`` (Unix ms, default the timestamp's) is when the event happened."""
    ts = int(time.time() if timestamp is None else timestamp)
    when = ts * 1000 if event_ts is None else event_ts
    body = json.dumps(
        {"event": event, "event_ts": when, "payload": payload}, separators=(",", ":")
    ).encode()
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": str(ts),
        "x-zm-signature": sign(secret_token, str(ts), body),
        "user-agent": "Zoom Marketplace/1.0a",
    }
    return body, headers


async def send_webhook(
    url: str,
    event: str,
    payload: dict[str, Any],
    secret_token: str,
    *,
    timestamp: float | None = None,
    event_ts: int | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST a signed webhook to ``url`` and return the answer (no retries)."""
    body, headers = webhook_request(
        event, payload, secret_token, timestamp=timestamp, event_ts=event_ts
    )
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=5) as own:
        return await own.post(url, content=body, headers=headers)


async def validate_endpoint(url: str, secret_token: str) -> bool:
    """Zoom's URL validation: True when the endpoint proves it holds the secret token."""
    plain = secrets.token_urlsafe(16)
    response = await send_webhook(
        url, "endpoint.url_validation", {"plainToken": plain}, secret_token
    )
    if response.status_code != 200:
        return False
    answer = response.json()
    return bool(
        answer.get("plainToken") == plain
        and hmac.compare_digest(
            str(answer.get("encryptedToken", "")), encrypted_token(secret_token, plain)
        )
    )


@dataclass(frozen=True)
class Subscription:
    """The app's event subscription: where Zoom sends which events, signed with what."""

    url: str
    secret_token: str
    events: tuple[str, ...] = MEETING_EVENTS
    retry_delays: tuple[float, ...] = ZOOM_RETRY_DELAYS
    timeout: float = ZOOM_ANSWER_TIMEOUT


@dataclass(frozen=True)
class Delivery:
    """One try at delivering one event: ``status`` is the endpoint's answer (None: none in
    time, or no connection), ``attempt`` 1 for the first try."""

    event: str
    meeting_id: int | None
    event_ts: int
    attempt: int
    status: int | None
    delivered: bool


class WebhookSender:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._journal: list[Delivery] = []
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- configuration and inspection ----------------------------------------------------------

    def subscribe(self, subscription: Subscription | None) -> None:
        """Send future events there (``None``: send nothing). Tries under way go on."""
        with self._lock:
            self._subscription = subscription
        if subscription is not None:
            self._running_loop()  # started now, not in the middle of whatever sends first

    @property
    def subscription(self) -> Subscription | None:
        with self._lock:
            return self._subscription

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._journal)

    def forget(self) -> None:
        with self._lock:
            self._journal.clear()

    @property
    def idle(self) -> bool:
        """No event waits for a try (a first one or a retry)."""
        with self._lock:
            return self._in_flight == 0

    # -- sending ---------------------------------------------------------------------------------

    def send(self, event: str, payload: dict[str, Any], event_ts: int) -> bool:
        """Deliver ``event`` (in the background, with Zoom's retries) if it is subscribed."""
        with self._lock:
            subscription = self._subscription
            if subscription is None or event not in subscription.events:
                return False
            self._in_flight += 1
        loop = self._running_loop()
        asyncio.run_coroutine_threadsafe(
            self._deliver(subscription, event, payload, event_ts), loop
        )
        return True

    def close(self) -> None:
        """Drop every try still waiting (a retry's wait included) and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None
            with self._lock:
                self._in_flight = 0

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="zoom-emulator-webhooks", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def _deliver(
        self, subscription: Subscription, event: str, payload: dict[str, Any], event_ts: int
    ) -> None:
        meeting = payload.get("object", {}).get("id") if isinstance(payload, dict) else None
        delays: Sequence[float] = subscription.retry_delays
        try:
            async with httpx.AsyncClient(timeout=subscription.timeout) as client:
                for attempt in range(1, len(delays) + 2):
                    status = await _try(client, subscription, event, payload, event_ts)
                    delivered = status is not None and 200 <= status < 300
                    with self._lock:
                        self._journal.append(
                            Delivery(event, meeting, event_ts, attempt, status, delivered)
                        )
                    if delivered or attempt > len(delays):
                        return
                    await asyncio.sleep(delays[attempt - 1])
        finally:
            with self._lock:
                self._in_flight -= 1


async def _try(
    client: httpx.AsyncClient,
    subscription: Subscription,
    event: str,
    payload: dict[str, Any],
    event_ts: int,
) -> int | None:
    body, headers = webhook_request(event, payload, subscription.secret_token, event_ts=event_ts)
    try:
        response = await asyncio.wait_for(
            client.post(subscription.url, content=body, headers=headers), subscription.timeout
        )
    except (httpx.HTTPError, TimeoutError):
        return None  # no answer in time counts as a failed delivery, whatever came later
    return response.status_code
