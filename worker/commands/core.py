"""The core commands: run the worker, migrate the database."""

from __future__ import annotations

import argparse

from worker.cli import command
from worker.runtime.config import Settings


@command("migrate", "apply database migrations (idempotent, safe to run concurrently)", "database")
def migrate(_: argparse.Namespace, settings: Settings) -> int:
    import migrations

    applied = migrations.apply(settings.dsn())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


@command(
    "run",
    "consume calendar events and keep Zoom meetings in step",
    "kafka",
    "database",
    "keys",
    "zoom",
)
def run(_: argparse.Namespace, settings: Settings) -> int:
    from worker.runtime import app

    return app.main(settings)
