"""``zoom-worker serve`` (the connect side, its own process) and ``zoom-worker connect-ticket``.

``serve`` listens on ``SERVE_PORT`` with the routes of ``worker.web.app`` plus ``/healthz`` and
``/readyz`` (database reachable); SIGTERM/SIGINT stop it after in-flight requests finish. It
needs the tables of ``zoom-worker migrate`` (0003_connect_state).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AsyncExitStack

from worker.cli import command
from worker.config import Settings
from worker.health import serving
from worker.http import http_client
from worker.logging import get_logger
from worker.resources import database_ready, open_pool, stop_on_signals, token_store
from worker.web.app import WebConfig, create_app
from worker.web.return_urls import ReturnUrlAllowlist
from worker.web.state import StateStore
from worker.web.tickets import MAX_TTL_SECONDS, make_ticket

log = get_logger("worker.serve")


def web_config(settings: Settings) -> WebConfig:
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


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    stop = stop_on_signals(stop)
    async with AsyncExitStack() as stack:
        pool = await open_pool(stack, settings, 16)
        http = await stack.enter_async_context(http_client())
        app = create_app(
            web_config(settings),
            token_store(settings, pool, http),
            StateStore(pool),
            ready=lambda: database_ready(pool),
        )
        await stack.enter_async_context(serving(app, settings.serve_port))
        log.info("serve started", port=settings.serve_port)
        await stop.wait()
        log.info("serve stopping")
    return 0


@command("serve", "serve the OAuth connect pages and Zoom's webhook", "database", "keys", "zoom",
         "serve")  # fmt: skip
def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(serve(settings))


def _ticket_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the Talivo user id")
    parser.add_argument("--return-url", required=True, help="on CONNECT_RETURN_URL_ALLOWLIST")
    parser.add_argument("--ttl", type=int, default=300, help=f"seconds, 1-{MAX_TTL_SECONDS}")
    parser.add_argument("--purpose", choices=("connect", "disconnect"), default="connect")


@command("connect-ticket", "print a signed connect/disconnect ticket (for tests and support)",
         "ticket", arguments=_ticket_args)  # fmt: skip
def connect_ticket(args: argparse.Namespace, settings: Settings) -> int:
    assert settings.connect_ticket_secret is not None
    ticket = make_ticket(
        settings.connect_ticket_secret.get_secret_value().encode(),
        args.user,
        args.return_url,
        now=time.time(),
        ttl_seconds=args.ttl,
        purpose=args.purpose,
    )
    print(ticket)
    return 0
