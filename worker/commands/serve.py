"""``zoom-worker serve`` (the connect side, its own process) and ``zoom-worker connect-ticket``.

``serve`` listens on ``SERVE_PORT`` with the routes of ``worker.web.app`` plus ``/healthz`` and
``/readyz`` (database reachable); SIGTERM/SIGINT stop it after in-flight requests finish. It
needs the tables of ``zoom-worker migrate`` (0003_connect_state).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from contextlib import AsyncExitStack

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from token_store import TokenStore, ZoomOAuth
from worker.cli import command
from worker.config import Settings
from worker.health import serving
from worker.http import http_client
from worker.logging import get_logger
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
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            settings.dsn(), min_size=1, max_size=16, open=False
        )
        await pool.open(wait=True, timeout=30)
        stack.push_async_callback(pool.close)
        http = await stack.enter_async_context(http_client())
        secret = settings.zoom_client_secret
        oauth = ZoomOAuth(
            http,
            oauth_base_url=settings.zoom_oauth_base_url,
            api_base_url=settings.zoom_api_base_url,
            client_id=settings.zoom_client_id or "",
            client_secret=secret.get_secret_value() if secret else "",
        )

        async def database_ready() -> bool:
            async with pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True

        app = create_app(
            web_config(settings),
            TokenStore(pool, settings.key_ring(), oauth),
            StateStore(pool),
            ready=database_ready,
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
