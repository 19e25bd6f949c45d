"""The pods the chart makes: restricted security, probes, shutdown grace, secrets kept out."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from connect.config import SECRET_NAMES as CONNECT_SECRET_NAMES
from tests.helm.manifests import ALL_ON, Manifest, deep_merge, find, objects
from worker.runtime.config import SECRET_NAMES, Settings

SERVE_ONLY_SETTINGS = {
    "SERVE_PORT",
    "CONNECT_RETURN_URL_ALLOWLIST",
    "ZOOM_REDIRECT_URI",
    "TOPIC_MEETING_CHANGED",
}
SENTINELS = {
    "databaseUrl": "postgresql://u:SENTINEL-db-password@db/zw",
    "tokenEncryptionKeys": "k1:SENTINEL-encryption-key",
    "zoomClientSecret": "SENTINEL-zoom-client-secret",
    "kafkaSaslPassword": "SENTINEL-sasl-password",
    "connectTicketSecret": "SENTINEL-ticket-secret",
    "zoomWebhookSecretToken": "SENTINEL-webhook-token",
}


def pod_specs(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    """Component -> pod spec, for every Deployment and Job."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-optional-parts-on"])
def test_every_pod_meets_the_restricted_security_standard(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    specs = pod_specs(objects(chart, values))

    assert set(specs) == {"worker", "serve", "migrate"}
    for component, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, component
        assert spec["securityContext"]["runAsUser"] != 0, component
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, component
        assert spec["automountServiceAccountToken"] is False, component
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, component
            assert context["readOnlyRootFilesystem"] is True, component
            assert context["capabilities"]["drop"] == ["ALL"], component
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, component
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], component


def test_worker_probes_hit_healthz_and_readyz_on_the_metrics_port(
    chart: helm_python.Chart,
) -> None:
    (container,) = pod_specs(objects(chart, {}))["worker"]["containers"]

    assert container["args"] == ["run"]
    assert container["ports"] == [
        {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_serve_probes_hit_its_own_port(chart: helm_python.Chart) -> None:
    (container,) = pod_specs(objects(chart, {"serve": {"port": 9000}}))["serve"]["containers"]

    assert container["args"] == ["serve"]
    assert container["ports"][0]["containerPort"] == 9000
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize(
    ("grace", "margin", "expected"),
    [(25, 15, 40), (90.5, 15, 106), (5, 30, 35)],
    ids=["default", "fractional-grace", "wide-margin"],
)
def test_termination_grace_outlasts_the_worker_shutdown_grace(
    chart: helm_python.Chart, grace: float, margin: int, expected: int
) -> None:
    values = {"worker": {"shutdownGraceSeconds": grace}, "terminationGraceMarginSeconds": margin}
    manifests = objects(chart, values)
    specs = pod_specs(manifests)
    (config,) = find(manifests, "ConfigMap")

    assert specs["worker"]["terminationGracePeriodSeconds"] == expected
    assert specs["worker"]["terminationGracePeriodSeconds"] > grace
    assert float(config["data"]["SHUTDOWN_GRACE_SECONDS"]) == grace
    # serve also pauses in preStop before its own shutdown grace starts.
    assert specs["serve"]["terminationGracePeriodSeconds"] == expected + 5


def test_no_secret_value_or_secret_setting_reaches_a_config_map(
    chart: helm_python.Chart,
) -> None:
    values = deep_merge(ALL_ON, {"secrets": {"trial": {"create": True, **SENTINELS}}})
    manifests = objects(chart, values)

    (config,) = find(manifests, "ConfigMap")
    text = repr(config)
    assert not [s for s in SENTINELS.values() if s in text]
    assert not set(config["data"]) & (SECRET_NAMES | CONNECT_SECRET_NAMES)
    # Every setting the ConfigMap carries is one the app reads.
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert set(config["data"]) - aliases <= SERVE_ONLY_SETTINGS
    # Sentinels only ever appear in the trial Secret.
    (secret,) = find(manifests, "Secret")
    assert set(secret["stringData"].values()) == set(SENTINELS.values())
    others = [m for m in manifests if m["kind"] != "Secret"]
    assert not [s for s in SENTINELS.values() if s in repr(others)]


def test_secret_settings_come_from_secret_key_refs_with_configured_names(
    chart: helm_python.Chart,
) -> None:
    specs = pod_specs(objects(chart, ALL_ON))

    def refs(component: str) -> dict[str, tuple[str, str]]:
        (container,) = specs[component]["containers"]
        return {
            e["name"]: (ref["name"], ref["key"])
            for e in container["env"]
            if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
        }

    worker = refs("worker")
    assert worker["DATABASE_URL"] == ("pg-app", "uri")
    assert worker["ZOOM_CLIENT_SECRET"] == ("zoom-worker-prod", "ZOOM_CLIENT_SECRET")
    assert set(worker) == SECRET_NAMES
    assert set(refs("serve")) == CONNECT_SECRET_NAMES
    assert set(refs("migrate")) == {"DATABASE_URL"}
