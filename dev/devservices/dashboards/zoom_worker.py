"""The zoom-worker dashboard: what each panel asks Prometheus, and how it is laid out.

Every panel is a :class:`PanelSpec` in :data:`PANELS` (title, what it means, its queries);
:func:`build` turns them into a Grafana dashboard with ``grafana-foundation-sdk`` and
:func:`render` into the JSON the chart ships. Queries select one release with the dashboard's
``$namespace`` and ``$job`` variables (the job is the worker's metrics Service, as the chart's
ServiceMonitor names it); pending revokes come from ``zoom-worker serve``, so that panel
selects by namespace alone. docs/operations.md walks through the panels in this order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

DASHBOARD_UID = "talivo-zoom-worker"
TITLE = "Zoom worker"
# One release: the worker's metrics Service in one namespace.
SELECTOR = 'namespace="$namespace", job="$job"'
RATE = "$__rate_interval"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    row: str
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "breaker"] = "timeseries"
    width: int = 8


def _rate(metric: str, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{SELECTOR}{extra}}}[{RATE}]))"


def _quantile(q: float) -> Query:
    expr = (
        f"histogram_quantile({q}, sum by (le) "
        f"(rate(zoom_worker_zoom_request_seconds_bucket{{{SELECTOR}}}[{RATE}])))"
    )
    return Query(expr, f"p{round(q * 100)}")


PARTITION_LEGEND = "{{topic}} [{{partition}}]"

PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Flow",
        "Messages by outcome",
        "Source messages finished per second, by outcome. Normal: mostly linked, some stale "
        "or skipped. deferred means Zoom could not take it now and a retry is scheduled; "
        "poison and invalid mean the message was parked on the dead-letter topic.",
        (Query(_rate("zoom_worker_messages_total", "outcome"), "{{outcome}}"),),
        unit="ops",
    ),
    PanelSpec(
        "Flow",
        "Failures by reason (meeting.failed)",
        "meeting.failed results per second, by reason: each one is a recruiter told their "
        "Zoom link could not be made. A burst of one reason points at its runbook "
        "(ZoomWorkerFailureRatioHigh).",
        (Query(_rate("zoom_worker_failures_total", "reason"), "{{reason}}"),),
        unit="ops",
    ),
    PanelSpec(
        "Flow",
        "Dead letters by reason",
        "Source messages parked on the dead-letter topic in each interval, by reason. Normal: "
        "none. Replay them with `zoom-worker dlq replay --reason R` once the cause is fixed.",
        (
            Query(
                f"sum by (reason) (increase(zoom_worker_dead_lettered_total{{{SELECTOR}}}"
                f"[{RATE}]))",
                "{{reason}}",
            ),
        ),
    ),
    PanelSpec(
        "Backlog",
        "Committed lag per partition",
        "Messages behind the group's committed offset, per partition (what KEDA scales on). "
        "Normal: a few hundred at most (the worker commits once a second). Growing on one "
        "partition: something holds that partition; on all: the worker is too slow or stopped.",
        (
            Query(
                "max by (consumergroup, topic, partition) "
                f"(zoom_worker_consumergroup_lag{{{SELECTOR}}})",
                PARTITION_LEGEND,
            ),
        ),
        width=9,
    ),
    PanelSpec(
        "Backlog",
        "Oldest unfinished message per partition",
        "Age of the oldest message taken from Kafka and not yet finished, per partition: how "
        "late the slowest recruiter's link is. Normal: under a few seconds.",
        (
            Query(
                "max by (consumergroup, topic, partition) "
                f"(zoom_worker_oldest_unfinished_age_seconds{{{SELECTOR}}})",
                PARTITION_LEGEND,
            ),
        ),
        unit="s",
        width=9,
    ),
    PanelSpec(
        "Backlog",
        "Replicas",
        "Worker targets Prometheus scrapes (up) and of those answering. At most the event "
        "topics' partition count does work.",
        (
            Query(f"sum(up{{{SELECTOR}}})", "up"),
            Query(f"count(up{{{SELECTOR}}})", "targets"),
        ),
        kind="stat",
        width=6,
    ),
    PanelSpec(
        "Backlog",
        "In flight and active",
        "Messages taken from Kafka and not finished (in flight), and of those admitted to Zoom "
        "work (active), all replicas. In flight far above active: messages wait behind a busy "
        "organizer or a dependency outage.",
        (
            Query(f"sum(zoom_worker_in_flight{{{SELECTOR}}})", "in flight"),
            Query(f"sum(zoom_worker_active{{{SELECTOR}}})", "active"),
        ),
        width=12,
    ),
    PanelSpec(
        "Backlog",
        "Consume loop progress age",
        "Seconds since each replica's consume loop last made progress. Climbing while it has "
        "messages in flight: the loop is stuck (ZoomWorkerConsumerNotRunning).",
        (
            Query(
                f"max by (instance) (zoom_worker_consumer_progress_age_seconds{{{SELECTOR}}})",
                "{{instance}}",
            ),
        ),
        unit="s",
        width=12,
    ),
    PanelSpec(
        "Zoom",
        "Zoom latency",
        "Zoom API call latency quantiles over every endpoint. Normal: p99 well under a second; "
        "each second here is a second a recruiter waits for a link.",
        (_quantile(0.5), _quantile(0.95), _quantile(0.99)),
        unit="s",
    ),
    PanelSpec(
        "Zoom",
        "Zoom calls by status",
        "Zoom API calls per second by HTTP status (error: no answer came). 5xx and error open "
        "the breaker; 401 means tokens Zoom no longer accepts.",
        (Query(_rate("zoom_worker_zoom_requests_total", "status"), "{{status}}"),),
        unit="reqps",
    ),
    PanelSpec(
        "Zoom",
        "429s and retries",
        "Zoom's rate-limit answers per second, and the worker's in-place retries by cause. "
        "Sustained 429s: an account is over its per-second limits (ZoomWorkerZoomRateLimited).",
        (
            Query(
                _rate("zoom_worker_zoom_requests_total", "endpoint", ', status="429"'),
                "429 {{endpoint}}",
            ),
            Query(_rate("zoom_worker_zoom_retries_total", "cause"), "retry: {{cause}}"),
        ),
        unit="reqps",
    ),
    PanelSpec(
        "Tokens",
        "Token refreshes by outcome",
        "Access-token refreshes at Zoom per second, by outcome. refreshed is normal; expired "
        "and inactive are recruiters who must reconnect; unavailable and rejected are Zoom's "
        "OAuth or our client credentials (ZoomWorkerTokenRefreshFailures).",
        (Query(_rate("zoom_token_refreshes_total", "outcome"), "{{outcome}}"),),
        unit="ops",
        width=16,
    ),
    PanelSpec(
        "Tokens",
        "Pending revokes",
        "Revokes owed to Zoom for grants we let go of (from zoom-worker serve's outbox). "
        "Normal: 0; staying above 0 for hours means Zoom refuses them.",
        (Query('max(zoom_token_revokes_pending{namespace="$namespace"})', "pending"),),
        kind="stat",
    ),
    PanelSpec(
        "Retries and breaker",
        "Pending retries",
        "Events waiting for the worker's own retry (Zoom unavailable, rate-limited, daily "
        "limit), and of those already due. Normal: 0. Due staying high: the runners fall "
        "behind.",
        (
            Query(f"max(zoom_worker_retries_pending{{{SELECTOR}}})", "pending"),
            Query(f"max(zoom_worker_retries_due{{{SELECTOR}}})", "due"),
        ),
        width=9,
    ),
    PanelSpec(
        "Retries and breaker",
        "Oldest pending retry",
        "Age of the oldest pending retry since its first failure: how long some recruiter "
        "has been without a link. Past the retry horizon (24 h) it fails for good.",
        (Query(f"max(zoom_worker_retry_oldest_age_seconds{{{SELECTOR}}})", "oldest"),),
        unit="s",
        width=9,
    ),
    PanelSpec(
        "Retries and breaker",
        "Zoom breaker",
        "The circuit breaker on Zoom, worst replica: closed (calls flow), half-open (a probe "
        "may go), open (Zoom is failing: no calls, events scheduled for retry).",
        (Query(f"max by (scope) (zoom_worker_breaker_state{{{SELECTOR}}})", "{{scope}}"),),
        kind="breaker",
        width=6,
    ),
    PanelSpec(
        "Dependencies",
        "Database pool",
        "Pooled Postgres connections by state, all replicas, and messages waiting for one. "
        "Waiting above 0 for long: the pool is too small for the load (PoolTimeout follows).",
        (
            Query(f"sum by (state) (zoom_worker_db_pool_connections{{{SELECTOR}}})", "{{state}}"),
            Query(f"sum(zoom_worker_db_pool_waiting{{{SELECTOR}}})", "waiting"),
        ),
        width=12,
    ),
    PanelSpec(
        "Dependencies",
        "Dependencies up",
        "1 while Postgres and the broker answer the worker's probes (worst replica), 0 during "
        "an outage, when the worker waits and starts no new message.",
        (
            Query(
                f"min by (dependency) (zoom_worker_dependency_up{{{SELECTOR}}})", "{{dependency}}"
            ),
        ),
        width=12,
    ),
)


def _targets(spec: PanelSpec) -> list[Builder[variants.Dataquery]]:
    return [
        prometheus.Dataquery()
        .expr(q.expr)
        .legend_format(q.legend)
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, q in enumerate(spec.queries)
    ]


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    panel: timeseries.Panel | stat.Panel
    if spec.kind == "timeseries":
        panel = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(10)
            .legend(
                common_builder.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
            .min(0)
        )
    else:
        panel = (
            stat.Panel()
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        )
    if spec.kind == "breaker":
        states = {"0": ("closed", "green"), "1": ("half-open", "orange"), "2": ("open", "red")}
        panel = panel.mappings(
            [
                model.ValueMap(
                    options={
                        value: model.ValueMappingResult(text=text, color=color, index=int(value))
                        for value, (text, color) in states.items()
                    }
                )
            ]
        ).thresholds(_thresholds((None, "green"), (1, "orange"), (2, "red")))
    return (
        panel.title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(8)
        .targets(_targets(spec))
    )


def _variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    datasource = dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(zoom_worker_messages_total, namespace)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    job = (
        dashboard.QueryVariable("job")
        .label("Worker job")
        .description("The worker's metrics Service (one Helm release).")
        .datasource(DATASOURCE)
        .query('label_values(zoom_worker_messages_total{namespace="$namespace"}, job)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return [datasource, namespace, job]


def build() -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(TITLE)
        .uid(DASHBOARD_UID)
        .description(
            "Talivo Zoom worker: flow, backlog, Zoom, tokens, retries and dependencies. "
            "Generated by devservices.dashboards (make dashboards); do not edit by hand."
        )
        .tags(["talivo", "zoom-worker", "kafka"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for variable in _variables():
        board = board.with_variable(variable)
    row, next_id = "", 1
    for spec in PANELS:
        if spec.row != row:
            row = spec.row
            board = board.with_row(dashboard.Row(row).id(next_id))
            next_id += 1
        board = board.with_panel(_panel(spec).id(next_id))
        next_id += 1
    return board


def render() -> str:
    """The dashboard as the JSON the chart ships (stable key order, trailing newline)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def panel_queries(
    dashboard_json: dict[str, Any], variables: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Panel title -> its query expressions, with ``$name`` / ``${name}`` replaced from
    ``variables`` (names not given are left as they are)."""
    given = variables or {}

    def substitute(expr: str) -> str:
        return _VARIABLE.sub(lambda m: given.get(m[1] or m[2], m[0]), expr)

    queries: dict[str, list[str]] = {}
    for panel in dashboard_json.get("panels", []):
        if panel.get("type") == "row":
            continue
        queries[panel["title"]] = [substitute(t["expr"]) for t in panel.get("targets", [])]
    return queries


def parse(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded
