"""The dashboard JSON in the chart is what devservices.dashboards builds, ships in a ConfigMap
for the Grafana sidecar, and every panel asks valid PromQL about the worker's metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import helm_python
import yaml
from devservices.dashboards import PANELS, panel_queries, render

from tests.helm.manifests import find, objects, validate
from tests.ops.tools import DASHBOARD_JSON, ROOT, dashboard, tool

# What issue #17 asks the dashboard to show: each of these metrics is in some panel.
METRICS = [
    "zoom_worker_messages_total",
    "zoom_worker_failures_total",
    "zoom_worker_consumergroup_lag",
    "zoom_worker_oldest_unfinished_age_seconds",
    "zoom_worker_zoom_request_seconds_bucket",
    'status="429"',
    "zoom_worker_zoom_retries_total",
    "zoom_token_refreshes_total",
    "zoom_worker_dead_lettered_total",
    "zoom_worker_in_flight",
    "zoom_worker_active",
    "up{",
    "zoom_worker_retries_pending",
    "zoom_worker_retry_oldest_age_seconds",
    "zoom_worker_breaker_state",
    "zoom_token_revokes_pending",
    "zoom_worker_db_pool_connections",
    "zoom_worker_db_pool_waiting",
]


def test_the_checked_in_dashboard_is_what_the_generator_builds() -> None:
    assert DASHBOARD_JSON.read_text() == render(), "stale: run `make dashboards`"


def test_the_generator_check_mode_tells_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "zoom-worker.json"
    stale.write_text("{}\n")
    command = [sys.executable, "-m", "devservices.dashboards"]

    fails = subprocess.run([*command, str(stale), "--check"], capture_output=True, text=True)
    subprocess.run([*command, str(stale)], check=True, capture_output=True)
    passes = subprocess.run([*command, str(stale), "--check"], capture_output=True, text=True)

    assert fails.returncode == 1 and "make dashboards" in fails.stderr
    assert passes.returncode == 0


def test_every_panel_has_a_title_an_explanation_and_queries() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]

    assert [p["title"] for p in panels] == [spec.title for spec in PANELS]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["description"], panel["title"]
        assert panel["targets"] and all(t["refId"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "namespace", "job"]


def test_the_dashboard_covers_every_metric_the_issue_names() -> None:
    queries = " ".join(q for qs in panel_queries(dashboard()).values() for q in qs)

    assert [m for m in METRICS if m not in queries] == []


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (with the variables filled in) as a recording rule."""
    promtool = tool("promtool")
    variables = {"namespace": "calendar", "job": "zw-zoom-worker-metrics", "__rate_interval": "1m"}
    queries = panel_queries(dashboard(), variables)
    rules = [
        {"record": f"dashboard:panel_{n}:{i}", "expr": expr}
        for n, exprs in enumerate(queries.values())
        for i, expr in enumerate(exprs)
    ]
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))

    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "$" not in " ".join(r["expr"] for r in rules)


def test_the_configmap_ships_the_dashboard_labelled_for_the_grafana_sidecar(
    chart: helm_python.Chart,
) -> None:
    assert not [m for m in find(objects(chart, {}), "ConfigMap") if "dashboard" in str(m)]

    (default,) = [
        m
        for m in find(objects(chart, {"dashboard": {"enabled": True}}), "ConfigMap")
        if m["metadata"]["name"].endswith("-dashboard")
    ]
    validate(default)
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in default["metadata"]
    assert json.loads(default["data"]["zoom-worker.json"]) == dashboard()

    custom_values = {
        "dashboard": {
            "enabled": True,
            "label": "example.com/dashboard",
            "labelValue": "zoom",
            "folder": "Calendar",
            "labels": {"team": "calendar"},
        }
    }
    (custom,) = [
        m
        for m in find(objects(chart, custom_values), "ConfigMap")
        if m["metadata"]["name"].endswith("-dashboard")
    ]
    labels = custom["metadata"]["labels"]
    assert labels["example.com/dashboard"] == "zoom" and labels["team"] == "calendar"
    assert "grafana_dashboard" not in labels
    assert custom["metadata"]["annotations"] == {"grafana_folder": "Calendar"}


def test_make_dashboards_regenerates_the_file() -> None:
    makefile = (ROOT / "Makefile").read_text()

    assert "\ndashboards: $(STAMP)\n\t$(BIN)/python -m devservices.dashboards" in makefile
