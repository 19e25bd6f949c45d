"""One handler per Zoom step, one signature, registered in ``HANDLERS``.

A handler carries out a ``Decision`` for one event under its link guard: it calls Zoom, records
intent before any call that creates something (so a crash can be recovered), and returns the
link to store plus the action to publish. Zoom and token errors propagate to the processor,
which turns them into ``meeting.failed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from worker.decision import Cancel, Create, Update
from worker.handlers.base import Applied, Step
from worker.handlers.cancel import cancel
from worker.handlers.create import create
from worker.handlers.update import update

Handler = Callable[[Any, Step], Awaitable[Applied]]

HANDLERS: dict[type, Handler] = {Create: create, Update: update, Cancel: cancel}

__all__ = ["HANDLERS", "Applied", "Step"]
