"""`helm lint --strict` finds nothing above info level, with defaults and with everything on."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.helm.manifests import ALL_ON, CHART_DIR, KUBERNETES_VERSION

WARNING = 2


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-optional-parts-on"])
def test_strict_lint_reports_no_errors_or_warnings(values: dict[str, Any]) -> None:
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")

    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_lint_reports_a_schema_violation_as_an_error() -> None:
    report = helm_python.lint(CHART_DIR, {"replicaCount": "two"}, strict=True)

    assert report["errors"], "a value that breaks the schema must fail lint"
