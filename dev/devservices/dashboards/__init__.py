"""Grafana dashboards as code, built with Grafana Labs' ``grafana-foundation-sdk``.

``python -m devservices.dashboards`` (``make dashboards``) writes the worker's dashboard to
``helm/zoom-worker/dashboards/zoom-worker.json``, which the chart ships in a ConfigMap for the
Grafana sidecar; ``--check`` fails when the checked-in file is not what the code builds.
Dev-only: the chart carries the JSON, never this package.
"""

from devservices.dashboards.zoom_worker import (
    DASHBOARD_UID,
    PANELS,
    PanelSpec,
    build,
    panel_queries,
    render,
)

__all__ = ["DASHBOARD_UID", "PANELS", "PanelSpec", "build", "panel_queries", "render"]
