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
