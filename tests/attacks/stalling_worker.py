"""``python -m tests.attacks.stalling_worker``: ``zoom-worker run`` that SIGSTOPs itself at a
crash step (``ATTACK_STOP_AT=step[:N]``), as a GC pause, a frozen VM or a throttled container
would stall it; the test SIGCONTs it later. Built like ``devservices.crashing_worker``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from worker.pipeline.crashpoints import CrashPoints, CrashStep
from worker.runtime import app
from worker.runtime import logging as worker_logging
from worker.runtime.config import load_settings


class StopPoints(CrashPoints):
    def reached(self, step: CrashStep) -> None:
        if step != self.target:
            return
        self._seen += 1
        if self._seen == self.on_count:
            print(f"attack: SIGSTOP at {step}:{self._seen}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
            print(f"attack: resumed after {step}", flush=True)


def main() -> int:
    base = CrashPoints.parse(os.environ["ATTACK_STOP_AT"])
    stop = StopPoints(base.target, base.on_count)
    settings = load_settings(os.environ, ("kafka", "database", "keys", "zoom"))
    worker_logging.configure(settings.log_level, settings.log_format)
    return asyncio.run(app.run(settings, crash=stop))


if __name__ == "__main__":
    sys.exit(main())
