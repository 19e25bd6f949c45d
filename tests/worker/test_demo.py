"""`make demo` is a promise to newcomers: it runs the story end to end and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_tells_its_whole_story() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOPIC_"))}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo passed" in done.stdout
    assert done.stdout.count("\nok ") == 9
