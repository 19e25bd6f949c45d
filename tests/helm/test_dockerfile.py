"""The image recipe, checked by reading it (no Docker engine here to build it)."""

from __future__ import annotations

import json
import re

import yaml

from tests.helm.dockerfile import DOCKERFILE, REPO, copy_sources, stages
from worker.runtime.config import Settings

ARGS, STAGES = stages(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def test_multi_stage_on_a_pinned_slim_python_3_11() -> None:
    assert len(STAGES) >= 2
    for stage in STAGES:
        # A full version tag, not a moving "3.11-slim" or "latest".
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.image)


def test_the_builder_makes_a_wheel_with_the_pinned_constraints() -> None:
    builder = STAGES[0]
    run = " && ".join(builder.all("RUN"))

    assert builder.name
    assert "pip wheel" in run
    assert "--constraint constraints.txt" in run or "-c constraints.txt" in run
    assert any("constraints.txt" in copy for copy in builder.all("COPY"))


def test_the_final_stage_takes_only_the_builders_output() -> None:
    copies = [copy_sources(value) for value in FINAL.all("COPY")]

    assert copies
    assert all(flags.get("from") == STAGES[0].name for flags, _ in copies)
    assert "ADD" not in {i.keyword for i in FINAL.instructions}
    # No package manager runs in the final stage: no shell tools are added.
    assert not [r for r in FINAL.all("RUN") if re.search(r"\bapt(-get)?\b|\bapk\b", r)]


def test_runs_as_a_numeric_non_root_user() -> None:
    user = FINAL.last("USER")

    assert user is not None
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_entrypoint_is_zoom_worker_run_in_exec_form() -> None:
    entrypoint, cmd = FINAL.last("ENTRYPOINT"), FINAL.last("CMD")

    assert entrypoint is not None and cmd is not None
    assert json.loads(entrypoint) == ["zoom-worker"]
    assert json.loads(cmd) == ["run"]


def test_exposes_the_metrics_port_the_app_and_chart_use() -> None:
    chart_values = yaml.safe_load((REPO / "helm/zoom-worker/values.yaml").read_text())
    default_port = Settings.model_fields["http_port"].default

    assert FINAL.all("EXPOSE") == [str(default_port)]
    assert chart_values["worker"]["httpPort"] == default_port


def test_everything_the_builder_copies_exists_and_passes_dockerignore() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [p for v in STAGES[0].all("COPY") for p in copy_sources(v)[1]]

    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, source
