"""Migrations: applied in order, recorded, idempotent, safe from two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
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
    assert migrations.apply(url)[0] == "0004_link_hosts"
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT zoom_meeting_id, host_user_id, replaced_meeting_id, replaced_host_user_id"
            " FROM event_links WHERE event_id = 'ev-old'"
        ).fetchone()
    assert row == (81234567890, None, None, None)


def _links_before_0005(postgres: PostgresService, rows: list[tuple[str, int | None]]) -> str:
    """A database migrated up to 0004, holding ``(event_id, zoom_meeting_id)`` links."""
    url = create_database(postgres.url, f"mig_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations.available():
            if migration.name >= "0005":
                break
            conn.execute(migration.sql.encode())
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (migration.name,))
        for event_id, meeting_id in rows:
            conn.execute(
                "INSERT INTO event_links (event_id, organizer_user_id, state, seen_revision,"
                " zoom_meeting_id) VALUES (%s, 'ana', 'linked', 1, %s)",
                (event_id, meeting_id),
            )
    return url


def test_a_meeting_can_be_linked_to_one_event_only(postgres: PostgresService) -> None:
    """0005: a unique index on the linked meeting; links without a meeting are not counted."""
    url = _links_before_0005(postgres, [("ev-a", 81234567890), ("ev-b", None), ("ev-c", None)])
    assert migrations.apply(url)[0] == "0005_one_event_per_meeting"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO event_links (event_id, organizer_user_id, state, seen_revision)"
            " VALUES ('ev-d', 'ana', 'none', 1)"
        )
        with pytest.raises(psycopg.errors.UniqueViolation) as refused:
            conn.execute(
                "INSERT INTO event_links (event_id, organizer_user_id, state, seen_revision,"
                " zoom_meeting_id) VALUES ('ev-twin', 'ana', 'linked', 1, 81234567890)"
            )
    assert refused.value.diag.constraint_name == "event_links_zoom_meeting_id"


def test_links_already_sharing_a_meeting_stop_the_migration_and_are_named(
    postgres: PostgresService,
) -> None:
    url = _links_before_0005(postgres, [("ev-a", 81234567890), ("ev-twin", 81234567890)])
    with pytest.raises(psycopg.errors.RaiseException, match="81234567890"):
        migrations.apply(url)
    with psycopg.connect(url) as conn:  # nothing half-applied; the links are as they were
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
        count = conn.execute("SELECT count(*) FROM event_links").fetchone()
    assert "0005_one_event_per_meeting" not in names and count == (2,)
