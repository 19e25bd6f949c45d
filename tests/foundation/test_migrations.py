"""Migrations: applied in order, recorded, idempotent, safe from two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
from devservices import PostgresService, create_database

import migrations


def test_two_processes_migrating_at_once_apply_each_file_once(postgres: PostgresService) -> None:
    url = create_database(postgres.url, f"mig_{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "DATABASE_URL": url}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    names = [m.name for m in migrations.available()]
    with psycopg.connect(url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert recorded == names
    # Between them the two runs applied every file exactly once.
    applied = sum(int(out.split()[1]) for out in outputs)
    assert applied == len(names)
    assert migrations.apply(url) == []


def test_links_stored_before_hosts_were_recorded_keep_no_host(postgres: PostgresService) -> None:
    """0004 adds the link's host; existing links get NULL, read as the current organizer."""
    url = create_database(postgres.url, f"mig_{uuid.uuid4().hex[:8]}")
    earlier = [m for m in migrations.available() if m.name < "0004"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in earlier:
            conn.execute(migration.sql.encode())
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (migration.name,))
        conn.execute(
            "INSERT INTO event_links (event_id, organizer_user_id, state, seen_revision,"
            " zoom_meeting_id) VALUES ('ev-old', 'ana', 'linked', 3, 81234567890)"
        )
    assert migrations.apply(url) == ["0004_link_hosts"]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT zoom_meeting_id, host_user_id, replaced_meeting_id, replaced_host_user_id"
            " FROM event_links WHERE event_id = 'ev-old'"
        ).fetchone()
    assert row == (81234567890, None, None, None)
