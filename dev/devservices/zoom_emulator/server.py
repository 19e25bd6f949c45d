"""``ZoomEmulator``: the emulator on a loopback port, served by uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from devservices.zoom_emulator import notifications, webhooks
from devservices.zoom_emulator.app import EmulatorApp
from devservices.zoom_emulator.faults import Fault, FaultPlan
from devservices.zoom_emulator.limits import Category
from devservices.zoom_emulator.models import (
    ApiCall,
    EmulatedUser,
    MeetingRecord,
    Plan,
    UserStatus,
)
from devservices.zoom_emulator.state import DEFAULT_SCOPES, World

_WORLDS: list[World] = []  # every emulator of this process, for suite-wide leak scans


def secrets_issued_in_this_process() -> list[str]:
    """Every token and code any emulator of this process has issued (also stopped ones)."""
    return [s for world in _WORLDS for s in world.issued_secrets()]


class ZoomEmulator:
    """A Zoom (OAuth + Meetings API) on ``127.0.0.1``, for tests and the demo.

    Use as a context manager; ``base_url`` is valid inside it. State lives in memory and is
    shared by the HTTP side and these methods (thread-safe).
    """

    def __init__(
        self,
        client_id: str = "emu-client",
        client_secret: str = "emu-secret",  # noqa: S107 - the emulator's own test value
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._world = World(client_id, client_secret, now)
        _WORLDS.append(self._world)
        self._faults = FaultPlan(seed)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> ZoomEmulator:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only for TCP
        # listeners it recognises; without it every keep-alive request waits ~40 ms on a
        # delayed ACK, which real Zoom does not.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._host, self._port))
        self._sock = sock
        config = uvicorn.Config(
            EmulatorApp(self._world, self._faults),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="zoom-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Zoom emulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._world.webhooks.close()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def serve_forever(self) -> None:
        """Block until Ctrl-C (the ``sandbox`` command)."""
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass

    def __enter__(self) -> ZoomEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._sock is None:
            raise RuntimeError("the Zoom emulator is not running")
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/v2"

    @property
    def oauth_base_url(self) -> str:
        return self.base_url

    @property
    def client_id(self) -> str:
        return self._world.client_id

    # -- users and tokens --------------------------------------------------------------------

    def add_user(
        self,
        email: str,
        plan: Plan = "pro",
        account_id: str | None = None,
        status: UserStatus = "active",
    ) -> EmulatedUser:
        """A new Zoom user; its account is created (with ``plan``) unless it exists."""
        return self._world.add_user(email, plan, account_id, status)

    def set_user_status(self, user_id: str, status: UserStatus) -> None:
        self._world.set_user_status(user_id, status)

    def authorize(
        self,
        user_id: str,
        redirect_uri: str,
        code_challenge: str | None = None,
        scopes: str = DEFAULT_SCOPES,
    ) -> str:
        """An authorization code, as if ``user_id`` clicked Allow (S256 challenge if given)."""
        return self._world.authorize(user_id, redirect_uri, code_challenge, scopes)

    def grant_tokens(self, user_id: str) -> tuple[str, str]:
        """``(access_token, refresh_token)`` of a fresh grant, skipping the code flow."""
        return self._world.grant_tokens(user_id)

    @property
    def access_token_ttl(self) -> int:
        return self._world.access_token_ttl

    @access_token_ttl.setter
    def access_token_ttl(self, seconds: int) -> None:
        with self._world.lock:
            self._world.access_token_ttl = seconds

    def expire_access_tokens(self, user_id: str | None = None) -> None:
        self._world.expire_access_tokens(user_id)

    def issued_secrets(self) -> list[str]:
        """Every access/refresh token, code and start_url issued, for log-leak scans."""
        return self._world.issued_secrets()

    # -- webhooks ----------------------------------------------------------------------------

    async def send_webhook(
        self,
        url: str,
        event: str,
        payload: dict[str, Any],
        secret_token: str,
        *,
        timestamp: float | None = None,
        event_ts: int | None = None,
    ) -> httpx.Response:
        """POST ``event`` to ``url`` signed as Zoom signs it (``x-zm-signature``,
        ``x-zm-request-timestamp``); ``timestamp`` (Unix seconds) defaults to now, ``event_ts``
        (Unix ms, when it happened) to the timestamp's. Once, without retries."""
        return await webhooks.send_webhook(
            url, event, payload, secret_token, timestamp=timestamp, event_ts=event_ts
        )

    async def validate_webhook_endpoint(self, url: str, secret_token: str) -> bool:
        """Zoom's ``endpoint.url_validation`` challenge; True when ``url`` answers it right."""
        return await webhooks.validate_endpoint(url, secret_token)

    def subscribe_webhooks(
        self,
        url: str,
        secret_token: str,
        *,
        events: tuple[str, ...] = webhooks.MEETING_EVENTS,
        retry_delays: tuple[float, ...] = webhooks.ZOOM_RETRY_DELAYS,
        timeout: float = webhooks.ZOOM_ANSWER_TIMEOUT,
    ) -> None:
        """Send the meeting events of users who installed the app to ``url``, signed with
        ``secret_token``, retried as Zoom retries (``retry_delays`` after failed tries)."""
        self._world.webhooks.subscribe(
            webhooks.Subscription(url, secret_token, events, retry_delays, timeout)
        )

    def unsubscribe_webhooks(self) -> None:
        self._world.webhooks.subscribe(None)

    def webhook_deliveries(self) -> list[webhooks.Delivery]:
        """Every try at delivering an event so far, in order."""
        return self._world.webhooks.deliveries()

    @property
    def webhooks_idle(self) -> bool:
        """No event is waiting for a first try or a retry."""
        return self._world.webhooks.idle

    # -- a host in Zoom's own apps (each notifies the subscription, when there is one) ------

    def edit_meeting(self, meeting_id: int, **fields: Any) -> bool:
        """The host changes the meeting in Zoom (``PATCH`` fields: ``topic``, ``start_time``,
        ``duration``, ``timezone``, ``agenda``); True when a webhook went out."""
        return notifications.host_edit(self._world, meeting_id, fields)

    def delete_meeting(self, meeting_id: int) -> bool:
        return notifications.host_delete(self._world, meeting_id)

    def start_meeting(self, meeting_id: int) -> bool:
        return notifications.host_start(self._world, meeting_id)

    def end_meeting(self, meeting_id: int) -> bool:
        return notifications.host_end(self._world, meeting_id)

    def meeting(self, meeting_id: int) -> MeetingRecord | None:
        """The meeting as Zoom has it now (deleted ones too: see ``deleted``)."""
        with self._world.lock:
            return self._world.meetings.get(meeting_id)

    # -- limits ------------------------------------------------------------------------------

    @property
    def daily_limit(self) -> int:
        return self._world.limits.daily_limit

    @daily_limit.setter
    def daily_limit(self, value: int) -> None:
        self._world.limits.daily_limit = value

    @property
    def clock_offset(self) -> timedelta:
        """How far the emulator's clock runs ahead of the wall clock (daily limits, tokens)."""
        return self._world.clock_offset

    @clock_offset.setter
    def clock_offset(self, value: timedelta) -> None:
        self._world.clock_offset = value

    @property
    def daily_limit_headers(self) -> bool:
        """Whether the daily-limit 429 carries ``Retry-After`` and ``X-RateLimit-Type``."""
        return self._world.daily_limit_headers

    @daily_limit_headers.setter
    def daily_limit_headers(self, value: bool) -> None:
        self._world.daily_limit_headers = value

    def set_daily_used(self, user_id: str, used: int, day: date | None = None) -> None:
        """Pretend ``user_id`` already made ``used`` create/update calls today (UTC)."""
        self._world.limits.set_daily_used(user_id, day or self._world.now().date(), used)

    def set_qps(self, plan: Plan, category: Category, per_second: int) -> None:
        self._world.limits.qps[plan][category] = per_second

    def qps_refusals(self, account_id: str) -> int:
        """Per-second 429s the account's real limit caused (injected faults not included)."""
        return self._world.limits.refusals[account_id]

    # -- inspection --------------------------------------------------------------------------

    def calls(self, endpoint: str) -> int:
        """Requests that reached ``endpoint`` (``"PATCH /v2/meetings/{meetingId}"``)."""
        with self._world.lock:
            return self._world.calls[endpoint]

    def api_calls(self) -> list[ApiCall]:
        """Every ``/v2`` request that reached a route (injected faults answer before), in order:
        the Zoom user behind its token and, for a request about one meeting, that meeting and
        its host. Tests check with it that a meeting is only ever touched by its host."""
        with self._world.lock:
            return list(self._world.journal)

    def meetings(self, user_id: str) -> list[MeetingRecord]:
        """The meetings ``user_id`` hosts, deleted ones excluded, oldest first."""
        with self._world.lock:
            return sorted(
                (
                    m
                    for m in self._world.meetings.values()
                    if m.host_id == user_id and not m.deleted
                ),
                key=lambda m: m.id,
            )

    # -- faults ------------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, rules: Iterable[Fault]) -> None:
        self._faults.clear()
        self._faults.add(*rules)

    def reset(self) -> None:
        """Forget users, grants, meetings, counts, limits and faults (not the address)."""
        self._world.reset()
        self._faults.clear()
