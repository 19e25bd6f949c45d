"""A test-only hook that kills the process at a named step, to prove crash recovery.

Set ``ZOOM_WORKER_CRASH_AT`` to one of the step names (optionally ``name:N`` to crash on the
N-th time the step is reached). Unset in production: every call is then a no-op.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Literal

CrashStep = Literal[
    "after_intent", "after_zoom", "after_handover_cancel", "after_db", "after_publish"
]


@dataclass
class CrashPoints:
    target: str | None = None
    on_count: int = 1
    _seen: int = field(default=0, init=False)

    @classmethod
    def from_env(cls) -> CrashPoints:
        spec = os.environ.get("ZOOM_WORKER_CRASH_AT")
        if not spec:
            return cls()
        name, _, count = spec.partition(":")
        return cls(name, int(count or 1))

    def reached(self, step: CrashStep) -> None:
        if step != self.target:
            return
        self._seen += 1
        if self._seen == self.on_count:
            os.kill(os.getpid(), signal.SIGKILL)
