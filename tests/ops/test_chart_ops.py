"""The chart's autoscaling threshold is the documented one; its topics as code and serve's
metrics render as Strimzi and the Prometheus Operator expect."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.helm.manifests import CHART_DIR, find, objects, validate
from tests.ops.tools import ROOT, SERVE_JOB, alerts, rule_groups

KAFKA_TOPIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
        "kind": {"const": "KafkaTopic"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                # a DNS subdomain name, as Kubernetes requires of every object
                "name": {
                    "type": "string",
                    "maxLength": 253,
                    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                },
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["topicName", "partitions", "replicas"],
            "properties": {
                "topicName": {"type": "string", "minLength": 1},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer", "boolean"]},
                },
            },
        },
    },
}


def _values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    return loaded


def _lag_threshold(chart: helm_python.Chart, keda: dict[str, Any]) -> str:
    (scaled,) = find(objects(chart, {"keda": {"enabled": True, **keda}}), "ScaledObject")
    threshold: str = scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"]
    return threshold


# ---- KEDA ---------------------------------------------------------------------------------


def test_the_keda_threshold_is_the_documented_product_of_measured_throughput_and_backlog(
    chart: helm_python.Chart,
) -> None:
    keda = _values()["keda"]
    rate, seconds = keda["eventsPerSecondPerReplica"], keda["backlogSecondsPerReplica"]
    readme = (CHART_DIR / "README.md").read_text()

    assert (rate, seconds, keda["lagThreshold"]) == (200, 30, 0)
    assert _lag_threshold(chart, {}) == "6000" == str(rate * seconds)
    documented = (
        f"`keda.eventsPerSecondPerReplica` ({rate}) \N{MULTIPLICATION SIGN} "
        f"`keda.backlogSecondsPerReplica` ({seconds}) = {rate * seconds}"
    )
    assert documented in readme
    assert "partition count" in readme.split("## Autoscaling", 1)[1].split("\n## ", 1)[0]


def test_the_per_replica_rate_is_below_every_measured_one_in_the_benchmark() -> None:
    """The README's benchmark table (worker on Apache Kafka, one replica) backs the figure."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) ms \| ([\d.]+)/s", readme, flags=re.MULTILINE)

    assert len(rows) >= 3, "the README's benchmark table changed shape"
    measured = [float(rate) for _, rate in rows]
    assert min(measured) >= _values()["keda"]["eventsPerSecondPerReplica"], measured


def test_the_keda_inputs_and_an_explicit_threshold_are_honoured(chart: helm_python.Chart) -> None:
    assert _lag_threshold(
        chart, {"eventsPerSecondPerReplica": 150, "backlogSecondsPerReplica": 60}
    ) == ("9000")
    assert _lag_threshold(chart, {"lagThreshold": 2500}) == "2500"


# ---- Strimzi topics -------------------------------------------------------------------------


def _topics(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    merged = {"topics": {"strimzi": {"enabled": True}}, **values}
    return {t["spec"]["topicName"]: t for t in find(objects(chart, merged), "KafkaTopic")}


def test_no_topics_unless_asked(chart: helm_python.Chart) -> None:
    assert find(objects(chart, {}), "KafkaTopic") == []


def test_the_seven_topics_render_with_co_partitioned_event_topics(
    chart: helm_python.Chart,
) -> None:
    topics = _topics(chart, {"kafka": {"partitionCount": 12}})

    assert set(topics) == {
        "event.created",
        "event.updated",
        "event.deleted",
        "meeting.linked",
        "meeting.failed",
        "zoom-worker.dlq",
        "meeting.changed",
    }
    for topic in topics.values():
        jsonschema.Draft202012Validator(KAFKA_TOPIC_SCHEMA).validate(topic)
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert topic["spec"]["replicas"] == 3
    events = [
        topics[n]["spec"]["partitions"] for n in ("event.created", "event.updated", "event.deleted")
    ]
    assert events == [12, 12, 12]
    assert topics["meeting.linked"]["spec"]["partitions"] == 6
    assert topics["zoom-worker.dlq"]["spec"]["partitions"] == 1
    # whole numbers stay integers (YAML numbers reach Helm as floats)
    assert topics["zoom-worker.dlq"]["spec"]["config"]["retention.ms"] == 2592000000


def test_topic_names_kubernetes_refuses_become_valid_object_names(chart: helm_python.Chart) -> None:
    values = {
        "kafka": {"topics": {"eventCreated": "Calendar_Event.Created"}},
        "topics": {"strimzi": {"enabled": True, "cluster": "main", "namespace": "kafka"}},
    }
    topic = _topics(chart, values)["Calendar_Event.Created"]

    jsonschema.Draft202012Validator(KAFKA_TOPIC_SCHEMA).validate(topic)
    assert topic["metadata"]["name"] == "calendar-event.created"
    assert topic["metadata"]["namespace"] == "kafka"
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "main"


def test_one_topic_named_twice_is_refused(chart: helm_python.Chart) -> None:
    values = {
        "kafka": {"topics": {"eventUpdated": "event.created"}},
        "topics": {"strimzi": {"enabled": True}},
    }

    with pytest.raises(helm_python.HelmRenderError, match="different topics"):
        objects(chart, values)


# ---- serve's metrics --------------------------------------------------------------------


def test_serve_metrics_are_exposed_scraped_and_selected_by_the_revoke_alerts(
    chart: helm_python.Chart,
) -> None:
    values = {
        "serve": {"metrics": {"enabled": True, "port": 9102}},
        "metrics": {"serviceMonitor": {"enabled": True}},
    }
    manifests = objects(chart, values)
    (serve_service,) = find(manifests, "Service", "serve")
    (serve,) = find(manifests, "Deployment", "serve")
    (monitor,) = find(manifests, "ServiceMonitor", "serve")
    config = [m for m in find(manifests, "ConfigMap") if "SERVE_PORT" in m.get("data", {})]

    for manifest in (serve_service, serve, monitor):
        validate(manifest)
    assert {
        "name": "http-metrics",
        "port": 9102,
        "targetPort": "http-metrics",
        "protocol": "TCP",
    } in (serve_service["spec"]["ports"])
    (container,) = serve["spec"]["template"]["spec"]["containers"]
    assert {"name": "http-metrics", "containerPort": 9102, "protocol": "TCP"} in container["ports"]
    assert config[0]["data"]["SERVE_METRICS_PORT"] == "9102"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= serve_service["metadata"]["labels"].items()
    )
    assert serve_service["metadata"]["name"] == SERVE_JOB
    revokes = alerts(rule_groups(chart, values))["ZoomWorkerRevokesPending"]
    assert f'job="{SERVE_JOB}"' in revokes["expr"]


def test_serve_metrics_are_off_by_default(chart: helm_python.Chart) -> None:
    manifests = objects(chart, {"metrics": {"serviceMonitor": {"enabled": True}}})

    assert find(manifests, "ServiceMonitor", "serve") == []
    (serve_service,) = find(manifests, "Service", "serve")
    assert [p["name"] for p in serve_service["spec"]["ports"]] == ["http"]


def test_strict_lint_is_clean_with_every_ops_part_on() -> None:
    from tests.helm.manifests import ALL_ON, KUBERNETES_VERSION, deep_merge

    values = deep_merge(
        ALL_ON,
        {
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True, "folder": "Calendar"},
            "topics": {"strimzi": {"enabled": True}},
            "serve": {"metrics": {"enabled": True}},
        },
    )
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
