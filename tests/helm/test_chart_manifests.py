"""Rendered manifests validate against Kubernetes 1.34 (core kinds strictly) and the CRDs used."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.helm.manifests import ALL_ON, NAMESPACE, RELEASE, find, objects, validate


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-optional-parts-on"])
def test_every_rendered_object_validates(chart: helm_python.Chart, values: dict[str, Any]) -> None:
    manifests = objects(chart, values)

    assert manifests
    for manifest in manifests:
        validate(manifest)


def test_defaults_render_the_core_objects_and_no_optional_ones(chart: helm_python.Chart) -> None:
    kinds = sorted(m["kind"] for m in objects(chart, {}))

    assert kinds == sorted(
        ["ConfigMap", "Deployment", "Deployment", "Job", "PodDisruptionBudget",
         "PodDisruptionBudget", "Service", "Service", "ServiceAccount"]
    )  # fmt: skip


def test_all_optional_parts_render(chart: helm_python.Chart) -> None:
    kinds = {m["kind"] for m in objects(chart, ALL_ON)}

    assert {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "Ingress"} <= kinds
    # The HPA is the alternative to KEDA; it renders (and validates) on its own.
    hpa_values = {**ALL_ON, "keda": {"enabled": False}, "autoscaling": {"enabled": True}}
    hpa_objects = objects(chart, hpa_values)
    for manifest in find(hpa_objects, "HorizontalPodAutoscaler"):
        validate(manifest)
    assert len(find(hpa_objects, "HorizontalPodAutoscaler")) == 1


def test_the_trial_secret_renders_as_a_hook_before_the_migration_job(
    chart: helm_python.Chart,
) -> None:
    manifests = objects(chart, {"secrets": {"trial": {"create": True, "databaseUrl": "x"}}})

    (secret,) = find(manifests, "Secret")
    (job,) = find(manifests, "Job")
    validate(secret)
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert secret["metadata"]["name"] == "zw-zoom-worker-secrets"


@pytest.mark.parametrize(
    ("scaler", "max_key", "field"),
    [("keda", "ScaledObject", "maxReplicaCount"), ("autoscaling", "HorizontalPodAutoscaler",
     "maxReplicas")],
    ids=["keda", "hpa"],
)  # fmt: skip
def test_autoscalers_are_capped_at_the_partition_count(
    chart: helm_python.Chart, scaler: str, max_key: str, field: str
) -> None:
    values = {scaler: {"enabled": True, "maxReplicas": 50}, "kafka": {"partitionCount": 12}}

    (scaler_object,) = find(objects(chart, values), max_key)

    assert scaler_object["spec"][field] == 12


def test_the_migration_job_runs_migrate_before_install_and_upgrade(
    chart: helm_python.Chart,
) -> None:
    (job,) = find(objects(chart, {}), "Job")

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert [e["name"] for e in container["env"] if "valueFrom" in e] == ["DATABASE_URL"]


def test_serve_can_be_switched_off(chart: helm_python.Chart) -> None:
    manifests = objects(chart, {"serve": {"enabled": False, "ingress": {"enabled": True}}})

    assert find(manifests, "Deployment", "serve") == []
    assert find(manifests, "Service", "serve") == []
    assert find(manifests, "Ingress") == []
    assert len(find(manifests, "Deployment", "worker")) == 1


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_selectors_connect_services_monitors_and_ingress(chart: helm_python.Chart) -> None:
    manifests = objects(chart, ALL_ON)
    (worker,) = find(manifests, "Deployment", "worker")
    (serve,) = find(manifests, "Deployment", "serve")
    (metrics,) = find(manifests, "Service", "worker")
    (serve_service,) = find(manifests, "Service", "serve")
    (monitor,) = find(manifests, "ServiceMonitor")
    (ingress,) = find(manifests, "Ingress")
    worker_pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    serve_pod_labels = serve["spec"]["template"]["metadata"]["labels"]

    assert _subset(metrics["spec"]["selector"], worker_pod_labels)
    assert not _subset(metrics["spec"]["selector"], serve_pod_labels)
    assert _subset(serve_service["spec"]["selector"], serve_pod_labels)
    monitored = monitor["spec"]["selector"]["matchLabels"]
    assert _subset(monitored, metrics["metadata"]["labels"])
    assert not _subset(monitored, serve_service["metadata"]["labels"])
    assert monitor["spec"]["endpoints"][0]["port"] == metrics["spec"]["ports"][0]["name"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": serve_service["metadata"]["name"], "port": {"name": "http"}}
    for pdb in find(manifests, "PodDisruptionBudget"):
        component = pdb["metadata"]["labels"]["app.kubernetes.io/component"]
        pod_labels = worker_pod_labels if component == "worker" else serve_pod_labels
        assert _subset(pdb["spec"]["selector"]["matchLabels"], pod_labels)


def test_standard_labels_on_every_object(chart: helm_python.Chart) -> None:
    for manifest in objects(chart, ALL_ON):
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "zoom-worker", manifest["kind"]
        assert labels["app.kubernetes.io/instance"] == "zw", manifest["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", manifest["kind"]
        assert labels["app.kubernetes.io/version"] == "0.1.0", manifest["kind"]


def test_install_notes_name_the_secrets_to_create_and_what_is_missing(
    chart: helm_python.Chart,
) -> None:
    notes = chart.render({}, name=RELEASE, namespace=NAMESPACE, is_install=True)[
        "zoom-worker/templates/NOTES.txt"
    ]

    assert 'DATABASE_URL: Secret "zw-zoom-worker-secrets", key "DATABASE_URL"' in notes
    assert "KAFKA_SASL_PASSWORD" not in notes  # PLAINTEXT by default: not read
    assert "zoom.clientId is empty" in notes
    assert "kubectl -n calendar rollout status deployment/zw-zoom-worker" in notes
