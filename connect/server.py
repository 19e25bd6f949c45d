"""``zoom-worker serve``: the connect app with its database pool, HTTP client and token store.

Listens on ``SERVE_PORT`` with the routes of ``connect.app`` plus ``/healthz`` and ``/readyz``
(database reachable); SIGTERM/SIGINT stop it after in-flight requests finish. It needs the
tables of ``zoom-worker migrate`` (0003_connect_state).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from structlog.stdlib import get_logger

from connect.app import WebConfig, create_app
from connect.config import ConnectSettings
from connect.return_urls import ReturnUrlAllowlist
from connect.state import StateStore
from worker.runtime.health import serving
from worker.runtime.http import http_client
from worker.runtime.resources import database_ready, open_pool, stop_on_signals, token_store

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
        app = create_app(
            web_config(settings),
            token_store(settings, pool, http),
            StateStore(pool),
            checks={"database": lambda: database_ready(pool)},
        )
        await stack.enter_async_context(serving(app, settings.serve_port))
        log.info("serve started", port=settings.serve_port)
        await stop.wait()
        log.info("serve stopping")
    return 0
