"""The chart's alert rules and dashboard, and the real Prometheus tools that check them.

Rules are rendered from the chart with the real Helm engine (``helm_python``, as in
tests/helm) and written as a plain Prometheus rule file. ``promtool`` and ``prometheus`` are
Debian's ``prometheus`` package (``make`` installs it as root); without them these tests
skip, and under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.helm.manifests import NAMESPACE, RELEASE, deep_merge, find, objects

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = ROOT / "helm" / "zoom-worker" / "dashboards" / "zoom-worker.json"
RUNBOOKS = ROOT / "docs" / "runbooks"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")

# The selectors the chart derives for release RELEASE in NAMESPACE (its metrics Services).
WORKER_JOB = f"{RELEASE}-zoom-worker-metrics"
SERVE_JOB = f"{RELEASE}-zoom-worker-serve"
RULES_ON: dict[str, Any] = {"prometheusRule": {"enabled": True}}


def tool(name: str) -> str:
    """Path of a Prometheus binary; skips without it, fails under CI (which must have it)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install Debian's prometheus package (`make` does as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def rule_groups(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's PrometheusRule as a Prometheus rule file ({"groups": [...]})."""
    (rule,) = find(objects(chart, deep_merge(RULES_ON, values or {})), "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def alerts(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups["groups"] for r in g["rules"] if "alert" in r}


def write_rules(groups: dict[str, Any], directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text())
    return loaded


__all__ = [
    "DASHBOARD_JSON",
    "NAMESPACE",
    "RELEASE",
    "RUNBOOKS",
    "SERVE_JOB",
    "UNIT_TESTS",
    "WORKER_JOB",
    "alerts",
    "dashboard",
    "rule_groups",
    "tool",
    "write_rules",
]
