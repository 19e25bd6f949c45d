"""One handler per Zoom step, one signature; ``carry_out`` dispatches a step to its handler.

A handler carries out a ``Decision`` for one event under its link guard: it calls Zoom, records
intent before any call that creates something (so a crash can be recovered), and returns the
link to store plus the action to publish. Zoom and token errors propagate to the processor,
which turns them into ``meeting.failed``. Every meeting that exists is touched only with its
host's token (``worker.handlers.base``).
"""

from __future__ import annotations

from typing import assert_never

from worker.handlers.base import Applied, Step, abandon
from worker.handlers.cancel import cancel
from worker.handlers.create import create
from worker.handlers.handover import handover
from worker.handlers.update import update
from worker.pipeline.decision import Cancel, Create, Handover, Update

ZoomStep = Create | Update | Cancel | Handover


async def carry_out(decision: ZoomStep, step: Step) -> Applied:
    """Run the handler of ``decision``; mypy proves every step has one."""
    match decision:
        case Create():
            return await create(decision, step)
        case Update():
            return await update(decision, step)
        case Cancel():
            return await cancel(decision, step)
        case Handover():
            return await handover(decision, step)
        case _:
            assert_never(decision)


__all__ = ["Applied", "Step", "ZoomStep", "abandon", "carry_out"]
