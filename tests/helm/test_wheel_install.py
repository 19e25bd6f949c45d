"""The step the image relies on: build the wheel from what the Dockerfile copies, install it
with its pinned dependencies into a clean virtual environment, run ``zoom-worker --help``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helm.dockerfile import DOCKERFILE, REPO, copy_sources, stages

_, STAGES = stages(DOCKERFILE.read_text())
BUILDER_SOURCES = [p for v in STAGES[0].all("COPY") for p in copy_sources(v)[1]]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy holding only what the builder stage copies, as `docker build` would.
    context = tmp_path_factory.mktemp("context")
    for source in BUILDER_SOURCES:
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    dist = tmp_path_factory.mktemp("dist")
    _run([*PIP, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), "."], cwd=context)
    (built,) = dist.glob("talivo_zoom_worker-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    _run(
        [*PIP, "--python", str(venv / "bin" / "python"), "install", "--quiet",
         "--constraint", str(REPO / "constraints.txt"), str(wheel)],
        cwd=venv.parent,
    )  # fmt: skip
    return venv


# No PYTHONPATH or checkout on the path: only what the wheel installed can be imported.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.mark.timeout(300)
def test_wheel_installs_into_a_clean_venv_and_the_cli_starts(venv: Path, tmp_path: Path) -> None:
    help_text = _run([str(venv / "bin" / "zoom-worker"), "--help"], cwd=tmp_path, env=CLEAN_ENV)
    location = _run(
        [str(venv / "bin" / "python"), "-c", "import worker, migrations; print(worker.__file__)"],
        cwd=tmp_path,
        env=CLEAN_ENV,
    )

    assert help_text.startswith("usage: zoom-worker")
    assert "migrate" in help_text
    assert Path(location.strip()).is_relative_to(venv)


def test_wheel_carries_the_migrations_and_type_markers(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()

    assert [n for n in names if n.startswith("migrations/sql/") and n.endswith(".sql")]
    assert "worker/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_holds_only_production_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}

    assert top_level == {"worker", "connect", "schemas", "token_store", "migrations"}
    assert not [n for n in names if "devservices" in n or "emulator" in n or "demo" in n]
    assert not [n for n in names if n.startswith(("bench/", "dev/", "tests/"))]


def test_nothing_in_the_wheel_can_arm_a_crash_point(wheel: Path) -> None:
    # The crash-injection hook is armed only by the dev tooling (devservices.crashing_worker):
    # no file of the production wheel reads, or even names, its variable.
    with zipfile.ZipFile(wheel) as built:
        naming = [n for n in built.namelist() if b"ZOOM_WORKER_CRASH_AT" in built.read(n)]

    assert naming == []


@pytest.mark.timeout(300)
def test_production_console_script_has_no_dev_commands(venv: Path, tmp_path: Path) -> None:
    cli = str(venv / "bin" / "zoom-worker")
    help_text = _run([cli, "--help"], cwd=tmp_path, env=CLEAN_ENV)
    demo = subprocess.run(
        [cli, "demo"], cwd=tmp_path, env=CLEAN_ENV, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    probe = "import importlib.util as u; print(u.find_spec('devservices') is None)"
    importable = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=CLEAN_ENV)

    assert "run" in help_text and "serve" in help_text
    assert "demo" not in help_text and "sandbox" not in help_text
    assert demo.returncode == 2 and "invalid choice: 'demo'" in demo.stderr
    assert importable.strip() == "True"
