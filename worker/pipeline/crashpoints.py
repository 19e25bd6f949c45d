"""A test hook that kills the process at a named step, to prove crash recovery.

``CrashPoints()`` (what the ``Processor`` and ``zoom-worker run`` use) never fires: production
has no way to arm it, and nothing in the production packages reads the environment for it.
The dev tooling's ``python -m devservices.crashing_worker`` runs the worker with one built by
``CrashPoints.parse``, for the crash-recovery tests.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

CrashStep = Literal[
    "after_intent", "after_zoom", "after_handover_cancel", "after_db", "after_publish"
]
STEPS: Final[tuple[str, ...]] = get_args(CrashStep)


@dataclass
class CrashPoints:
    target: str | None = None
    on_count: int = 1
    _seen: int = field(default=0, init=False)

    @classmethod
    def parse(cls, spec: str) -> CrashPoints:
        """``step`` or ``step:N`` (SIGKILL the N-th time ``step`` is reached, N >= 1).

        Raises ``ValueError`` for an unknown step or a bad count, so a typo cannot leave a
        crash test running without its crash.
        """
        name, _, count = spec.partition(":")
        if name not in STEPS:
            raise ValueError(f"unknown crash step {name!r}; one of {', '.join(STEPS)}")
        if count and not (count.isdigit() and int(count) >= 1):
            raise ValueError(f"the count after {name}: must be a whole number >= 1")
        return cls(name, int(count or 1))

    def reached(self, step: CrashStep) -> None:
        if step != self.target:
            return
        self._seen += 1
        if self._seen == self.on_count:
            os.kill(os.getpid(), signal.SIGKILL)
