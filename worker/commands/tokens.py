"""``zoom-worker tokens connect|disconnect|status|rotate-key``: operators' view of the token store.

Output names users, Zoom ids, scopes, expiry and key ids, never a token. Authorization codes and
PKCE verifiers are read from stdin (``-``, the default for the code) so they stay out of the
process list and shell history. Exit codes: 0 done, 1 nothing to do or the store refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from token_store import ConnectionStatus, TokenStore, TokenStoreError, ZoomOAuth
from worker.cli import command
from worker.runtime.config import Settings
from worker.runtime.http import http_client


def _user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", help="the Talivo user id")


def _status_args(parser: argparse.ArgumentParser) -> None:
    _user(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")


def _connect_args(parser: argparse.ArgumentParser) -> None:
    _user(parser)
    parser.add_argument("--redirect-uri", required=True, help="as sent to /oauth/authorize")
    parser.add_argument(
        "--code", default="-", help="the authorization code, or - to read it from stdin"
    )
    parser.add_argument(
        "--code-verifier",
        default=None,
        help="the PKCE verifier, or - to read it from the next stdin line (omit without PKCE)",
    )


def _disconnect_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", nargs="?", help="the Talivo user id")
    parser.add_argument(
        "--zoom-user-id", help="instead: drop every connection to this Zoom user (no revoke)"
    )


def _rotate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=100, help="rows per transaction")


@command(
    "tokens status", "show a user's Zoom connection", "database", "keys", arguments=_status_args
)
def status(args: argparse.Namespace, settings: Settings) -> int:
    async def run(store: TokenStore) -> int:
        found = await store.status(args.user_id)
        if found is None:
            print(f"user {args.user_id}: not connected")
            return 1
        _print_status(found, as_json=args.json)
        return 0

    return _run(settings, run)


@command(
    "tokens connect",
    "exchange an authorization code and store the connection",
    "database",
    "keys",
    "zoom",
    arguments=_connect_args,
)
def connect(args: argparse.Namespace, settings: Settings) -> int:
    code = _stdin_line() if args.code == "-" else args.code
    verifier = _stdin_line() if args.code_verifier == "-" else args.code_verifier

    async def run(store: TokenStore) -> int:
        found = await store.connect(args.user_id, code, verifier, args.redirect_uri)
        _print_status(found, as_json=False)
        return 0

    return _run(settings, run)


@command(
    "tokens disconnect",
    "delete a connection, then revoke it at Zoom",
    "database",
    "keys",
    "zoom",
    arguments=_disconnect_args,
)
def disconnect(args: argparse.Namespace, settings: Settings) -> int:
    if (args.user_id is None) == (args.zoom_user_id is None):
        print("give either a user id or --zoom-user-id", file=sys.stderr)
        return 1

    async def run(store: TokenStore) -> int:
        if args.zoom_user_id is not None:
            deleted = await store.disconnect_zoom_user(args.zoom_user_id)
            print(f"zoom user {args.zoom_user_id}: {deleted} connection(s) deleted")
            return 0 if deleted else 1
        if await store.disconnect(args.user_id):
            print(f"user {args.user_id}: disconnected (tokens deleted, revoke sent to Zoom)")
            return 0
        print(f"user {args.user_id}: not connected")
        return 1

    return _run(settings, run)


@command(
    "tokens rotate-key",
    "re-encrypt every connection under the first key of TOKEN_ENCRYPTION_KEYS",
    "database",
    "keys",
    arguments=_rotate_args,
)
def rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    async def run(store: TokenStore) -> int:
        done = await store.rotate_key(batch_size=args.batch_size)
        print(f"re-encrypted {done} connection(s) under key id {settings.key_ring().active_kid}")
        return 0

    return _run(settings, run)


def _run(settings: Settings, body: Callable[[TokenStore], Awaitable[int]]) -> int:
    async def main() -> int:
        pool = AsyncConnectionPool(settings.dsn(), min_size=1, max_size=2, open=False)
        await pool.open()
        try:
            async with http_client(4) as http:  # TLS 1.3 to Zoom, as the worker
                oauth = ZoomOAuth(
                    http,
                    settings.zoom_oauth_base_url,
                    settings.zoom_api_base_url,
                    settings.zoom_client_id or "",
                    settings.zoom_client_secret.get_secret_value()
                    if settings.zoom_client_secret
                    else "",
                )
                margin = timedelta(seconds=settings.token_refresh_margin_seconds)
                return await body(TokenStore(pool, settings.key_ring(), oauth, margin))
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except TokenStoreError as exc:
        print(f"error ({exc.reason.value}): {exc}", file=sys.stderr)
        return 1


def _stdin_line() -> str:
    return sys.stdin.readline().strip()


def _print_status(found: ConnectionStatus, *, as_json: bool) -> None:
    fields = asdict(found)
    if as_json:
        print(json.dumps(fields, default=str))
        return
    for name, value in fields.items():
        shown = " ".join(value) if isinstance(value, tuple) else value
        print(f"{name}: {'-' if shown is None else shown}")
