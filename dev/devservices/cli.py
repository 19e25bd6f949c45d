"""``zoom-dev``: the dev tooling's commands, installed only into the dev environment.

- ``zoom-dev demo``: the whole pipeline on embedded services, told as a short story (or on a
  real Zoom when ``ZOOM_CLIENT_ID``/``ZOOM_CLIENT_SECRET`` are set; see ``devservices.demo``).
- ``zoom-dev sandbox``: the Zoom emulator on its own, for trying the worker by hand. Prints the
  environment that points the worker (and ``zoom-worker tokens connect``) at it, then serves
  until Ctrl-C. Users given with ``--user`` are created with a fresh grant; faults use the
  emulator's ``name=value,...`` syntax (see ``devservices.zoom_emulator.faults``).

The production console script (``zoom-worker``) has neither command: nothing here ships.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import cast

from connect.config import ConnectSettings
from devservices.zoom_emulator import ZoomEmulator, parse_fault
from devservices.zoom_emulator.models import Plan
from worker.runtime import logging as worker_logging
from worker.runtime.config import ConfigError, load_settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--client-id", default="emu-client")
    parser.add_argument("--client-secret", default="emu-secret")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EMAIL[:PLAN]",
        help="seed a Zoom user (plan free|pro|business, default pro); repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help=(
            "inject a fault, e.g. 'kind=error,status=503,probability=0.1' or "
            "'kind=rate_limit,count=5,retry_after=http_date' or "
            "'kind=drop,when=after,endpoint=POST /oauth/token'; repeatable"
        ),
    )
    parser.add_argument("--access-token-ttl", type=int, default=3599, help="seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for random faults")


def sandbox(args: argparse.Namespace) -> int:
    try:
        faults = [parse_fault(spec) for spec in args.fault]
        users = [_user_arg(spec) for spec in args.user]
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    zoom = ZoomEmulator(
        args.client_id, args.client_secret, host=args.host, port=args.port, seed=args.seed
    )
    with zoom:
        zoom.access_token_ttl = args.access_token_ttl
        zoom.faults = faults
        print("# Zoom emulator running; point the worker at it with:")
        print(f"export ZOOM_API_BASE_URL={zoom.api_base_url}")
        print(f"export ZOOM_OAUTH_BASE_URL={zoom.oauth_base_url}")
        print(f"export ZOOM_CLIENT_ID={args.client_id}")
        print(f"export ZOOM_CLIENT_SECRET={args.client_secret}")
        for email, plan in users:
            user = zoom.add_user(email, plan=plan)
            print(f"# user {email} plan={plan} zoom_user_id={user.id} account_id={user.account_id}")
        print(f"# control and inspection: {zoom.base_url}/_emulator/... (calls, faults, users)")
        print("# Ctrl-C to stop", flush=True)
        zoom.serve_forever()
    return 0


def _user_arg(spec: str) -> tuple[str, Plan]:
    email, _, plan = spec.partition(":")
    plan = plan or "pro"
    if plan not in ("free", "pro", "business") or "@" not in email:
        raise ValueError(f"--user {spec!r}: expected EMAIL[:free|pro|business]")
    return email, cast("Plan", plan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoom-dev", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="run the whole pipeline on embedded services with a story")
    _arguments(sub.add_parser("sandbox", help="run the Zoom emulator standalone"))
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        worker_logging.configure("INFO", os.environ.get("LOG_FORMAT", "console"))
        return sandbox(args)
    try:
        settings = load_settings(os.environ, (), ConnectSettings)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    worker_logging.configure(settings.log_level, settings.log_format)
    from devservices import demo

    return demo.main(settings)


if __name__ == "__main__":
    sys.exit(main())
