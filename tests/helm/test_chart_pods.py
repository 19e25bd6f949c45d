"""The pods the chart makes: restricted security, probes, shutdown grace, secrets kept out."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import pytest

from connect.config import SECRET_NAMES as CONNECT_SECRET_NAMES
from connect.config import ConnectSettings
from tests.helm.manifests import ALL_ON, Manifest, deep_merge, find, objects
from worker.runtime.config import SECRET_NAMES, Settings, load_settings

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
# Settings the chart leaves to extraEnv: a client certificate and key for mutual TLS to Kafka.
NOT_IN_CHART = {"KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"}
# Values for the secret settings that pass the app's own checks.
PLAUSIBLE_SECRETS = {
    "DATABASE_URL": "postgresql://zoom_worker@db:5432/zoom_worker",
    "TOKEN_ENCRYPTION_KEYS": "k1:" + base64.b64encode(bytes(32)).decode(),
    "ZOOM_CLIENT_SECRET": "zoom-client-secret",
    "KAFKA_SASL_PASSWORD": "sasl-password",
    "CONNECT_TICKET_SECRET": "t" * 32,
    "ZOOM_WEBHOOK_SECRET_TOKEN": "webhook-token",
}
# Each component's command, the settings it validates and the sections it requires.
COMMANDS: dict[str, tuple[type[Settings], tuple[str, ...]]] = {
    "worker": (Settings, ("kafka", "database", "keys", "zoom")),  # zoom-worker run
    "serve": (ConnectSettings, ("database", "keys", "zoom", "serve")),  # zoom-worker serve
}
SASL = {
    "kafka": {
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslUsername": "zoom-worker",
    },
    "secrets": {"kafkaSaslPassword": {"existingSecret": "kafka-user", "key": "password"}},
}
# What serve requires besides the secrets.
SERVE_SETTINGS = {
    "zoom": {"clientId": "aBcD1234efGh", "redirectUri": "https://zoom.example.com/zoom/callback"},
    "serve": {"returnUrlAllowlist": "https://app.talivo.com/"},
}
# Settings the chart exposes: the values key, its variable, an override and how that renders.
TUNABLE = [
    ("worker.databasePoolSize", "DATABASE_POOL_SIZE", 40, "40"),
    ("worker.databasePreparedStatements", "DATABASE_PREPARED_STATEMENTS", False, "false"),
    ("worker.databaseApplicationName", "DATABASE_APPLICATION_NAME", "zw-eu", "zw-eu"),
    ("worker.leaseSeconds", "LEASE_SECONDS", 12.5, "12.5"),
    ("worker.zoomRateLimitScope", "ZOOM_RATE_LIMIT_SCOPE", "process", "process"),
    ("worker.zoomDailyLimitRefreshSeconds", "ZOOM_DAILY_LIMIT_REFRESH_SECONDS", 2, "2"),
    ("worker.zoomMediumPerSecond", "ZOOM_MEDIUM_PER_SECOND", 60, "60"),
    ("worker.zoomLightPerSecond", "ZOOM_LIGHT_PER_SECOND", 80, "80"),
    ("worker.maxInFlightPerOrganizer", "MAX_IN_FLIGHT_PER_ORGANIZER", 4, "4"),
    # Helm holds numbers as floats; a million must not render as "1e+06", which an int refuses.
    ("worker.maxBufferedMessages", "MAX_BUFFERED_MESSAGES", 1_000_000, "1000000"),
    ("kafka.sessionTimeoutMs", "KAFKA_SESSION_TIMEOUT_MS", 1_800_000, "1800000"),
    ("worker.livenessStallSeconds", "LIVENESS_STALL_SECONDS", 600, "600"),
    ("worker.retryRatePerSecond", "RETRY_RATE_PER_SECOND", 2.5, "2.5"),
    ("worker.retryPollSeconds", "RETRY_POLL_SECONDS", 0.5, "0.5"),
    ("worker.retryLeaseSeconds", "RETRY_LEASE_SECONDS", 120, "120"),
    ("worker.breakerFailureRatio", "BREAKER_FAILURE_RATIO", 0.8, "0.8"),
    ("worker.breakerMinCalls", "BREAKER_MIN_CALLS", 25, "25"),
    ("worker.breakerWindowSeconds", "BREAKER_WINDOW_SECONDS", 30, "30"),
]


def pod_specs(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    """Component -> pod spec, for every Deployment and Job."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }


def secret_refs(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variable -> (Secret, key), for each secretKeyRef of the pod's one container."""
    (container,) = spec["containers"]
    return {
        e["name"]: (ref["name"], ref["key"])
        for e in container["env"]
        if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
    }


def nested(dotted: str, value: object) -> dict[str, Any]:
    """``"worker.leaseSeconds", 5`` -> ``{"worker": {"leaseSeconds": 5}}``."""
    head, _, rest = dotted.partition(".")
    return {head: nested(rest, value) if rest else value}


def field_name(alias: str) -> str:
    (name,) = [n for n, f in Settings.model_fields.items() if f.alias == alias]
    return name


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

    worker = secret_refs(specs["worker"])
    assert worker["DATABASE_URL"] == ("pg-app", "uri")
    assert worker["ZOOM_CLIENT_SECRET"] == ("zoom-worker-prod", "ZOOM_CLIENT_SECRET")
    assert set(worker) == SECRET_NAMES
    # ALL_ON uses SASL_SSL: serve publishes to Kafka too, with the worker's KAFKA_* settings.
    assert set(secret_refs(specs["serve"])) == CONNECT_SECRET_NAMES | {"KAFKA_SASL_PASSWORD"}
    assert set(secret_refs(specs["migrate"])) == {"DATABASE_URL"}


def test_serve_reads_the_kafka_sasl_password_from_the_workers_secret_only_with_sasl(
    chart: helm_python.Chart,
) -> None:
    with_sasl = pod_specs(objects(chart, SASL))
    without = pod_specs(objects(chart, {}))

    assert secret_refs(with_sasl["serve"])["KAFKA_SASL_PASSWORD"] == ("kafka-user", "password")
    assert secret_refs(with_sasl["worker"])["KAFKA_SASL_PASSWORD"] == ("kafka-user", "password")
    assert "KAFKA_SASL_PASSWORD" not in secret_refs(without["serve"])
    assert "KAFKA_SASL_PASSWORD" not in secret_refs(without["worker"])


@pytest.mark.parametrize("values", [{}, SASL], ids=["plaintext", "sasl"])
@pytest.mark.parametrize("component", sorted(COMMANDS))
def test_each_pods_environment_passes_its_commands_settings_check(
    chart: helm_python.Chart, values: dict[str, Any], component: str
) -> None:
    manifests = objects(chart, deep_merge(SERVE_SETTINGS, values))
    (config,) = find(manifests, "ConfigMap")
    secrets = secret_refs(pod_specs(manifests)[component])
    model, require = COMMANDS[component]

    env = {**config["data"], **{name: PLAUSIBLE_SECRETS[name] for name in secrets}}
    settings = load_settings(env, require, model)  # raises ConfigError naming what is missing

    assert settings.kafka_security_protocol == ("SASL_SSL" if values else "PLAINTEXT")
    assert (settings.kafka_sasl_password is not None) == bool(values)


def test_config_map_carries_every_setting_the_app_reads_but_secrets(
    chart: helm_python.Chart,
) -> None:
    values = deep_merge(ALL_ON, {"serve": {"metrics": {"enabled": True}}})
    (config,) = find(objects(chart, values), "ConfigMap")

    aliases = {field.alias for field in ConnectSettings.model_fields.values()}
    missing = aliases - set(config["data"]) - SECRET_NAMES - CONNECT_SECRET_NAMES
    assert missing == NOT_IN_CHART


@pytest.mark.parametrize(
    ("key", "env", "override", "rendered"), TUNABLE, ids=[env for _, env, _, _ in TUNABLE]
)
def test_config_map_renders_a_setting_with_the_apps_default_and_an_override(
    chart: helm_python.Chart, key: str, env: str, override: object, rendered: str
) -> None:
    (default,) = find(objects(chart, {}), "ConfigMap")
    (changed,) = find(objects(chart, nested(key, override)), "ConfigMap")
    name = field_name(env)

    assert getattr(load_settings({env: default["data"][env]}), name) == (
        Settings.model_fields[name].default
    )
    assert changed["data"][env] == rendered
    assert getattr(load_settings({env: rendered}), name) == override
