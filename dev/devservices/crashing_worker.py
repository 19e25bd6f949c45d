"""``python -m devservices.crashing_worker``: ``zoom-worker run`` with a crash point armed.

The crash-recovery tests need a worker that SIGKILLs itself at a named step. Production cannot
be made to (``worker.pipeline.crashpoints``: ``zoom-worker run`` never arms one); this dev-only
entry point can. It takes the arguments of ``zoom-worker run`` (none), reads the same settings
with the same requirements, and arms ``ZOOM_WORKER_CRASH_AT``: a step name, or ``step:N`` to
crash the N-th time the step is reached (steps: ``worker.pipeline.crashpoints.STEPS``).

Exit codes as ``zoom-worker run``: 2 for bad configuration (one line per problem, a missing or
unknown crash step included); the crash itself ends the process by SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from worker.cli import EXIT_CONFIG
from worker.pipeline.crashpoints import STEPS, CrashPoints
from worker.runtime import app
from worker.runtime import logging as worker_logging
from worker.runtime.config import ConfigError, load_settings

CRASH_AT = "ZOOM_WORKER_CRASH_AT"
# What `zoom-worker run` requires (worker/commands/core.py); tests/security checks they agree.
RUN_REQUIRES = ("kafka", "database", "keys", "zoom")


def crash_points(env: Mapping[str, str]) -> CrashPoints:
    """The crash point ``env`` names; ``ConfigError`` when it names none or a bad one."""
    spec = env.get(CRASH_AT, "")
    if not spec:
        raise ConfigError([f"config error: {CRASH_AT} is required (one of {', '.join(STEPS)})"])
    try:
        return CrashPoints.parse(spec)
    except ValueError as exc:
        raise ConfigError([f"config error: {CRASH_AT} {exc}"]) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devservices.crashing_worker",
        description=f"zoom-worker run, SIGKILLing itself at the step {CRASH_AT} names",
    )
    parser.parse_args(argv)
    problems: list[str] = []
    try:
        crash = crash_points(os.environ)
    except ConfigError as exc:
        problems += exc.problems
    try:
        settings = load_settings(os.environ, RUN_REQUIRES)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    worker_logging.configure(settings.log_level, settings.log_format)
    return asyncio.run(app.run(settings, crash=crash))


if __name__ == "__main__":
    sys.exit(main())
