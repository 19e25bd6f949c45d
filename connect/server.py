"""``zoom-worker serve``: the connect app with its database pool, HTTP client and token store.

Listens on ``SERVE_PORT`` with the routes of ``connect.app`` plus ``/healthz`` and ``/readyz``
(database reachable), and on ``SERVE_METRICS_PORT``, when set, with ``/metrics`` beside those
two. Runs the revoke loop (``connect.revoker``) until it stops. SIGTERM/SIGINT stop it after
in-flight requests finish. It needs the tables of ``zoom-worker migrate`` (0003_connect_state,
0007_webhook_deliveries, 0008_revoke_outbox, 0009_meeting_changes).

With ``KAFKA_BOOTSTRAP_SERVERS`` set it also publishes ``meeting.changed`` from Zoom's meeting
webhooks (``connect.meeting_sync``) with a producer built as the worker builds its own; the
producer starts in the background, so ``serve`` comes up while the broker is away. Without it
those webhooks are acknowledged and ignored (logged once at start-up).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from structlog.stdlib import get_logger

from connect.app import WebConfig, create_app
from connect.config import ConnectSettings
from connect.deliveries import DeliveryLog
from connect.meeting_links import MeetingLinks
from connect.meeting_sync import MeetingSync
from connect.publisher import ChangePublisher
from connect.return_urls import ReturnUrlAllowlist
from connect.revoker import revoking
from connect.state import StateStore
from worker.runtime import kafka
from worker.runtime.health import health_app, serving
from worker.runtime.http import http_client
from worker.runtime.resources import (
    Pool,
    database_ready,
    open_pool,
    stop_on_signals,
    token_store,
)

log = get_logger("connect.server")


def web_config(settings: ConnectSettings) -> WebConfig:
    assert settings.connect_ticket_secret and settings.zoom_webhook_secret_token
    assert settings.zoom_redirect_uri
    return WebConfig(
        ticket_secret=settings.connect_ticket_secret.get_secret_value().encode(),
        webhook_secret=settings.zoom_webhook_secret_token.get_secret_value().encode(),
        allowlist=ReturnUrlAllowlist.parse(settings.connect_return_url_allowlist),
        redirect_uri=settings.zoom_redirect_uri,
        client_id=settings.zoom_client_id or "",
        oauth_base_url=settings.zoom_oauth_base_url,
    )


async def serve(settings: ConnectSettings, stop: asyncio.Event | None = None) -> int:
    stop = stop_on_signals(stop)
    async with AsyncExitStack() as stack:
        pool = await open_pool(stack, settings, 16)
        http = await stack.enter_async_context(http_client())
        store = token_store(settings, pool, http)
        checks = {"database": lambda: database_ready(pool)}
        changes = await _meeting_changes(stack, settings, pool)
        app = create_app(
            web_config(settings),
            store,
            StateStore(pool),
            DeliveryLog(pool),
            checks=checks,
            meeting_changes=changes,
        )
        # Stopped before the HTTP client and the pool it uses (the stack unwinds in reverse).
        await stack.enter_async_context(revoking(store.revokes))
        if settings.serve_metrics_port is not None:
            metrics = health_app(checks)
            await stack.enter_async_context(serving(metrics, settings.serve_metrics_port))
        await stack.enter_async_context(serving(app, settings.serve_port))
        log.info("serve started", port=settings.serve_port)
        await stop.wait()
        log.info("serve stopping")
    return 0


async def _meeting_changes(
    stack: AsyncExitStack, settings: ConnectSettings, pool: Pool
) -> MeetingSync | None:
    """What carries out Zoom's meeting webhooks, closed with ``stack`` (after the app stops:
    it is entered first); None without a broker to publish to."""
    if not settings.kafka_bootstrap_servers:
        log.warning("serve.meeting_changes_off", reason="KAFKA_BOOTSTRAP_SERVERS is not set")
        return None
    publisher = await stack.enter_async_context(
        ChangePublisher(lambda: kafka.producer(settings)).running()
    )
    sync = MeetingSync(MeetingLinks(pool), publisher, settings.topic_meeting_changed)
    stack.push_async_callback(sync.aclose)
    return sync
