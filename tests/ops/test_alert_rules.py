"""The chart's alerts pass promtool's checks and unit tests, and each has its runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.helm.manifests import find, objects
from tests.ops.tools import (
    NAMESPACE,
    RUNBOOKS,
    SERVE_JOB,
    UNIT_TESTS,
    WORKER_JOB,
    alerts,
    rule_groups,
    tool,
    write_rules,
)

RUNBOOK_SECTIONS = ("## What it means for recruiters", "## Diagnose", "## Fix")
EXPECTED_ALERTS = {
    "ZoomWorkerLagGrowing",
    "ZoomWorkerOldestMessageTooOld",
    "ZoomWorkerConsumerNotRunning",
    "ZoomWorkerDependencyDown",
    "ZoomWorkerFailureRatioHigh",
    "ZoomWorkerZoomUnavailable",
    "ZoomWorkerZoomRateLimited",
    "ZoomWorkerTokenRefreshFailures",
    "ZoomWorkerDeadLetters",
    "ZoomWorkerRetriesPendingTooLong",
    "ZoomWorkerRevokesPending",
    "ZoomWorkerRevokeLost",
}

# The fields of the Prometheus Operator's PrometheusRule this chart uses (its CRD's spec).
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "for", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": "^[0-9]+[smhdwy]$"},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


@pytest.fixture(scope="module")
def groups(chart: helm_python.Chart) -> dict[str, Any]:
    return rule_groups(chart)


def test_the_rule_renders_only_when_enabled_and_matches_the_crd(chart: helm_python.Chart) -> None:
    assert find(objects(chart, {}), "PrometheusRule") == []
    (rule,) = find(objects(chart, {"prometheusRule": {"enabled": True}}), "PrometheusRule")
    jsonschema.Draft202012Validator(PROMETHEUS_RULE_SCHEMA).validate(rule)


def test_promtool_check_rules_accepts_the_rendered_rules(
    groups: dict[str, Any], tmp_path: Path
) -> None:
    promtool = tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(write_rules(groups, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass_for_every_alert(groups: dict[str, Any], tmp_path: Path) -> None:
    promtool = tool("promtool")
    write_rules(groups, tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / UNIT_TESTS.name)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test(groups: dict[str, Any]) -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])

    assert set(alerts(groups)) == EXPECTED_ALERTS
    assert firing == EXPECTED_ALERTS
    # every alert whose condition has a threshold or a duration is also shown to stay quiet
    assert EXPECTED_ALERTS - quiet <= {"ZoomWorkerDependencyDown"}


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_each_alert_says_what_how_bad_and_where_its_runbook_is(
    groups: dict[str, Any], name: str
) -> None:
    rule = alerts(groups)[name]

    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    url = rule["annotations"]["runbook_url"]
    assert url == f"https://github.com/talivo/zoom-worker/blob/main/docs/runbooks/{name}.md"
    page = (RUNBOOKS / f"{name}.md").read_text()
    for section in RUNBOOK_SECTIONS:
        assert section in page, f"{name}.md lacks {section!r}"
    assert "kubectl" in page and "```promql" in page, f"{name}.md gives no commands or PromQL"


def test_runbooks_and_alerts_are_one_to_one() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md") if p.stem != "README"}

    assert pages == EXPECTED_ALERTS


def test_alerts_select_this_release_and_take_their_settings_from_values(
    chart: helm_python.Chart,
) -> None:
    default = alerts(rule_groups(chart))
    worker = f'namespace="{NAMESPACE}", job="{WORKER_JOB}"'
    serve = f'namespace="{NAMESPACE}", job="{SERVE_JOB}"'
    assert worker in default["ZoomWorkerZoomUnavailable"]["expr"]
    assert serve in default["ZoomWorkerRevokesPending"]["expr"]
    assert worker not in default["ZoomWorkerRevokesPending"]["expr"]

    tuned = alerts(
        rule_groups(
            chart,
            {
                "prometheusRule": {
                    "runbookBaseUrl": "https://wiki.example.com/zoom/",
                    "workerSelector": 'cluster="eu", job="zw"',
                    "additionalLabels": {"team": "calendar"},
                    "alerts": {
                        "ZoomWorkerDeadLetters": {"enabled": False},
                        "ZoomWorkerOldestMessageTooOld": {"seconds": 90, "for": "1m"},
                    },
                }
            },
        )
    )
    assert "ZoomWorkerDeadLetters" not in tuned
    oldest = tuned["ZoomWorkerOldestMessageTooOld"]
    assert oldest["for"] == "1m" and re.search(r"\) > 90$", oldest["expr"])
    assert 'zoom_worker_oldest_unfinished_age_seconds{cluster="eu", job="zw"}' in oldest["expr"]
    assert oldest["labels"] == {"severity": "critical", "team": "calendar"}
    assert oldest["annotations"]["runbook_url"] == (
        "https://wiki.example.com/zoom/ZoomWorkerOldestMessageTooOld.md"
    )


def test_a_bad_alert_setting_is_refused_by_the_schema(chart: helm_python.Chart) -> None:
    bad = {"prometheusRule": {"alerts": {"ZoomWorkerLagGrowing": {"for": "soon"}}}}

    with pytest.raises(helm_python.HelmValuesError, match="for"):
        objects(chart, bad)
