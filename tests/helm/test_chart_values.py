"""Values that break values.schema.json (or a rule it cannot express) fail with a clear message."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.helm.manifests import render

REJECTED = [
    pytest.param({"replicaCount": "3"}, "/replicaCount", id="string-replica-count"),
    pytest.param({"replicaCoun": 3}, "replicaCoun", id="unknown-top-level-key"),
    pytest.param({"kafka": {"groupID": "x"}}, "groupID", id="unknown-nested-key"),
    pytest.param({"image": None}, "image", id="image-removed"),
    pytest.param({"image": {"repository": ""}}, "/image/repository", id="empty-image-repository"),
    pytest.param({"worker": {"logLevel": "TRACE"}}, "/worker/logLevel", id="bad-enum"),
    pytest.param({"kafka": {"bootstrapServers": "kafka"}}, "bootstrapServers", id="no-port"),
    pytest.param({"worker": {"shutdownGraceSeconds": 0}}, "shutdownGraceSeconds", id="zero-grace"),
    pytest.param(
        {"worker": {"zoomRateLimitScope": "global"}}, "/worker/zoomRateLimitScope", id="bad-scope"
    ),
    # The app refuses fewer than 6 connections (DATABASE_POOL_SIZE); the schema says so first.
    pytest.param({"worker": {"databasePoolSize": 5}}, "/worker/databasePoolSize", id="tiny-pool"),
    pytest.param(
        {"worker": {"databasePreparedStatements": "false"}},
        "/worker/databasePreparedStatements",
        id="string-bool",
    ),
]


@pytest.mark.parametrize(("values", "named"), REJECTED)
def test_schema_rejects_bad_values_naming_the_key(
    chart: helm_python.Chart, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(chart, values)

    assert named in str(caught.value)


RULES = [
    pytest.param({"replicaCount": 7}, "kafka.partitionCount", id="more-replicas-than-partitions"),
    pytest.param(
        {"keda": {"enabled": True}, "autoscaling": {"enabled": True}},
        "enable only one",
        id="keda-and-hpa",
    ),
    pytest.param(
        {"kafka": {"securityProtocol": "SASL_SSL"}}, "kafka.saslMechanism", id="sasl-no-mechanism"
    ),
]


@pytest.mark.parametrize(("values", "message"), RULES)
def test_templates_reject_inconsistent_values(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError) as caught:
        render(chart, values)

    assert message in str(caught.value)


def test_defaults_pass_the_schema(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)

    assert render(chart, {})
