"""``zoom-worker serve`` (the connect side, its own process) and ``zoom-worker connect-ticket``."""

from __future__ import annotations

import argparse
import time

from connect.config import ConnectSettings
from connect.tickets import MAX_TTL_SECONDS, make_ticket
from worker.cli import command


@command("serve", "serve the OAuth connect pages and Zoom's webhook", "database", "keys", "zoom",
         "serve", settings=ConnectSettings)  # fmt: skip
def serve_command(args: argparse.Namespace, settings: ConnectSettings) -> int:
    import uvloop

    from connect.server import serve

    return uvloop.run(serve(settings))


def _ticket_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the Talivo user id")
    parser.add_argument("--return-url", required=True, help="on CONNECT_RETURN_URL_ALLOWLIST")
    parser.add_argument("--ttl", type=int, default=300, help=f"seconds, 1-{MAX_TTL_SECONDS}")
    parser.add_argument("--purpose", choices=("connect", "disconnect"), default="connect")


@command("connect-ticket", "print a signed connect/disconnect ticket (for tests and support)",
         "ticket", arguments=_ticket_args, settings=ConnectSettings)  # fmt: skip
def connect_ticket(args: argparse.Namespace, settings: ConnectSettings) -> int:
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
