"""Plain SQL migrations, applied in file-name order and recorded in ``schema_migrations``.

``apply`` is idempotent and safe to run from several processes at once: a transaction-level
advisory lock serialises them, and each file is applied in its own transaction together with
its record, so a failed file leaves nothing half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

_LOCK_KEY = 0x7A00_3D57  # "zoom migrations"; any constant shared by every runner


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("migrations") / "sql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text("utf-8")) for f in files]


def apply(dsn: str) -> list[str]:
    """Apply every migration not yet recorded; return the names applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Under the lock too: two ``CREATE TABLE IF NOT EXISTS`` at once can both find no
        # table, and the second fails on the catalog's unique index (``pg_type``).
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for migration in available():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = %s", (migration.name,)
                ).fetchone()
                if done:
                    continue
                conn.execute(migration.sql.encode())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (migration.name,))
                applied_now.append(migration.name)
    return applied_now
