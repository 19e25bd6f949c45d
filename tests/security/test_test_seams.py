"""The crash-injection hook exists for tests only: production cannot arm it.

``zoom-worker run`` passes no crash points, and nothing in the production packages reads
``ZOOM_WORKER_CRASH_AT``; the dev tooling's ``python -m devservices.crashing_worker`` is the
one way to a worker that kills itself (tests/worker/test_resilience.py shows both at work;
tests/helm/test_wheel_install.py checks the built wheel).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from devservices import crashing_worker

import worker.commands.core  # noqa: F401 - registers `run`
from worker.cli import _REGISTRY
from worker.pipeline.crashpoints import STEPS, CrashPoints

REPO = Path(__file__).parents[2]
PRODUCTION = ("worker", "connect", "schemas", "token_store", "migrations")


def test_no_production_source_names_the_crash_variable() -> None:
    readers = [
        str(path.relative_to(REPO))
        for package in PRODUCTION
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        and b"ZOOM_WORKER_CRASH_AT" in path.read_bytes()
    ]  # fmt: skip
    assert readers == []


def test_unarmed_crash_points_never_fire() -> None:
    points = CrashPoints()
    for step in STEPS:
        points.reached(step)  # type: ignore[arg-type]
    # still alive


@pytest.mark.parametrize(
    ("spec", "target", "count"),
    [("after_zoom", "after_zoom", 1), ("after_db:2", "after_db", 2)],
)
def test_a_crash_spec_names_a_step_and_its_occurrence(spec: str, target: str, count: int) -> None:
    parsed = CrashPoints.parse(spec)
    assert (parsed.target, parsed.on_count) == (target, count)


@pytest.mark.parametrize("spec", ["after_zom", "after_db:0", "after_db:x", ":2", "after_db:-1"])
def test_a_bad_crash_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"crash step|count"):
        CrashPoints.parse(spec)


def test_the_crashing_worker_requires_what_zoom_worker_run_requires() -> None:
    assert _REGISTRY["run"].require == crashing_worker.RUN_REQUIRES


@pytest.mark.parametrize(
    ("crash_at", "complaint"),
    [(None, "is required"), ("after_lunch", "unknown crash step 'after_lunch'")],
)
def test_the_crashing_worker_needs_a_valid_crash_step(crash_at: str | None, complaint: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ZOOM_WORKER_CRASH_AT"}
    env["DATABASE_URL"] = "postgresql://worker@db:5432/zoom"
    done = subprocess.run(
        [sys.executable, "-m", "devservices.crashing_worker"],
        env={**env, **({"ZOOM_WORKER_CRASH_AT": crash_at} if crash_at else {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("config error: ZOOM_WORKER_CRASH_AT ") and complaint in lines[0]
    # The other problems of the environment come too, as `zoom-worker run` reports them.
    assert any(line.startswith("config error: KAFKA_BOOTSTRAP_SERVERS ") for line in lines[1:])
