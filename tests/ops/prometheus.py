"""A real Prometheus server (Debian's binary) on a free loopback port, for one test module.

It scrapes the given targets every second under the job and namespace the chart's alerts and
dashboard select, evaluates the given rule file every second, and keeps its data in a
temporary directory. Queries go through the HTTP API, as Grafana's would.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from devservices._process import die_with_parent, free_port


@dataclass
class PrometheusServer:
    binary: str
    directory: Path
    job: str
    namespace: str
    targets: list[str]
    rules: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "prometheus.log"

    def start(self) -> None:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(self.rules)],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "static_configs": [
                        {"targets": self.targets, "labels": {"namespace": self.namespace}}
                    ],
                }
            ],
        }
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus not ready in 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[Any]:
        data = self._get(
            "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}
        )
        result: list[Any] = data["result"]
        return result

    def query(self, expr: str) -> list[Any]:
        result: list[Any] = self._get("/api/v1/query", {"query": expr})["result"]
        return result

    def fired(self, start: float, end: float) -> set[str]:
        """Names of the alerts that were firing at some point between start and end."""
        series = self.query_range('ALERTS{alertstate="firing"}', start, end)
        return {s["metric"]["alertname"] for s in series}

    def scrape_health(self) -> list[str]:
        targets = self._get("/api/v1/targets", {})["activeTargets"]
        return [str(t.get("health")) for t in targets]

    def explain(self, alert: str, start: float, end: float) -> dict[str, Any]:
        """An alert's expression over the run, and each metric it reads (for a failure)."""
        rules = yaml.safe_load(self.rules.read_text())
        (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r["alert"] == alert]
        metrics = sorted(set(re.findall(r"\b(zoom_\w+|up)\{", expr)))
        seen = {m: self.query_range(f"sum({m})", start, end) for m in metrics}
        return {
            "expr": expr,
            "values": [s["values"][-20:] for s in self.query_range(expr, start, end)],
            "metrics": {m: [s["values"][-30:] for s in r] for m, r in seen.items()},
        }
