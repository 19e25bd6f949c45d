"""Render the chart in-process with the real Helm engine and check manifests against schemas.

Core kinds are validated against the Kubernetes OpenAPI schemas that ``kubernetes-validate``
ships (strict: unknown fields fail). Custom resources (KEDA, Prometheus Operator) are not in
those schemas; ``CRD_SCHEMAS`` checks the fields this chart uses, written from the CRDs'
documented specs, so a misspelt or mistyped field still fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "zoom-worker"
KUBERNETES_VERSION = "1.34.0"
RELEASE = "zw"
NAMESPACE = "calendar"

Manifest = dict[str, Any]

# Every optional part switched on, with values that exercise the optional branches.
ALL_ON: dict[str, Any] = {
    "image": {"digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "kafka": {
        "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslUsername": "zoom-worker",
        "sslCaFile": "/etc/kafka-ca/ca.crt",
    },
    "zoom": {"clientId": "aBcD1234efGh", "redirectUri": "https://zoom.example.com/oauth/callback"},
    "secrets": {
        "existingSecret": "zoom-worker-prod",
        "databaseUrl": {"existingSecret": "pg-app", "key": "uri"},
    },
    "extraEnv": [{"name": "PYTHONFAULTHANDLER", "value": "1"}],
    "extraVolumes": [{"name": "kafka-ca", "secret": {"secretName": "kafka-ca"}}],
    "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True}],
    "serviceAccount": {"annotations": {"iam.example.com/role": "zoom-worker"}},
    "podAnnotations": {"example.com/team": "calendar"},
    "podLabels": {"team": "calendar"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "workers"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["w"]}]}
                ]
            }
        }
    },
    "priorityClassName": "workers",
    "keda": {"enabled": True, "maxReplicas": 12},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "serve": {
        "returnUrlAllowlist": "https://app.talivo.com/",
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "tls": [{"secretName": "zoom-tls", "hosts": ["zoom-worker.example.com"]}],
        },
    },
}

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NAME = {"type": "string", "minLength": 1}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _NAME, "labels": _STRING_MAP, "annotations": _STRING_MAP},
}


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _METADATA,
            "spec": {"type": "object", "additionalProperties": False, **spec},
        },
    }


_SECRET_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["parameter", "name", "key"],
    "properties": {"parameter": _NAME, "name": _NAME, "key": _NAME},
}
_ENV_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["parameter", "name"],
    "properties": {"parameter": _NAME, "name": _NAME, "containerName": _NAME},
}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _crd(
        {
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {"apiVersion": _NAME, "kind": _NAME, "name": _NAME},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": _NAME,
                            # KEDA trigger metadata is map[string]string: numbers must be quoted.
                            "metadata": _STRING_MAP,
                            "authenticationRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {"name": _NAME, "kind": _NAME},
                            },
                        },
                    },
                },
            },
        }
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _crd(
        {
            "properties": {
                "secretTargetRef": {"type": "array", "items": _SECRET_REF},
                "env": {"type": "array", "items": _ENV_REF},
            },
        }
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _crd(
        {
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRING_MAP},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": _NAME}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": _NAME,
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                        },
                    },
                },
            },
        }
    ),
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, list[Manifest]]:
    """Template path -> the objects it rendered (empty documents dropped); NOTES.txt excluded."""
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {
        path: [doc for doc in yaml.safe_load_all(text) if doc]
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
    }


def objects(chart: helm_python.Chart, values: dict[str, Any]) -> list[Manifest]:
    return [doc for docs in render(chart, values).values() for doc in docs]


def find(manifests: list[Manifest], kind: str, component: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            component is None
            or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]


def validate(manifest: Manifest) -> None:
    """Raise if ``manifest`` does not match its schema (core kinds strictly)."""
    crd_schema = CRD_SCHEMAS.get((manifest["apiVersion"], manifest["kind"]))
    if crd_schema is not None:
        jsonschema.Draft202012Validator(crd_schema).validate(manifest)
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
