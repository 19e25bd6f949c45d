"""The core commands: run the worker, migrate the database, run the demo."""

from __future__ import annotations

import argparse

from worker.cli import command
from worker.config import Settings


@command("migrate", "apply database migrations (idempotent, safe to run concurrently)", "database")
def migrate(_: argparse.Namespace, settings: Settings) -> int:
    import migrations

    applied = migrations.apply(settings.dsn())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
