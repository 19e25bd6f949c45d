"""The revoke loop of ``zoom-worker serve``: pays the revokes Zoom is owed.

Every grant we let go of is written to the revoke outbox (``token_store.revokes``) and tried at
once; what Zoom did not accept then is retried here, in every serve replica:

- a pass claims due revokes (``FOR UPDATE SKIP LOCKED``, each moved past its claim lease in
  that same short transaction), attempts them concurrently (at most ``batch`` at a time) and
  goes on while whole batches come back; then it refreshes ``zoom_token_revokes_pending`` and
  sleeps ``interval`` seconds (or until stopped);
- replicas share the rows without revoking one twice at once; rows outlive the process, so a
  restart resumes where the last pass stopped, and a row claimed by a process that died is
  due again when its lease runs out (a repeated revoke is answered "invalid token": done);
- a pass that fails (the database down) is logged with the error's class, and the loop goes
  on; it never ends the process;
- stopping cancels what is under way; the rows it had claimed are tried after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from structlog.stdlib import get_logger

log = get_logger("connect.revoker")

INTERVAL_SECONDS = 10.0
BATCH = 10


class Outbox(Protocol):
    """The part of ``token_store.revokes.RevokeOutbox`` the loop drives."""

    async def run_due(self, batch: int = BATCH) -> int: ...

    async def refresh_pending(self) -> int: ...


async def run_pass(outbox: Outbox, batch: int = BATCH) -> int:
    """Attempt every revoke due now, ``batch`` at a time, then refresh the pending gauge.
    Returns the revokes claimed. Database errors raise."""
    claimed = 0
    while True:
        got = await outbox.run_due(batch)
        claimed += got
        if got < batch:
            break
    await outbox.refresh_pending()
    return claimed


async def run_revoker(
    outbox: Outbox,
    stop: asyncio.Event,
    *,
    interval: float = INTERVAL_SECONDS,
    batch: int = BATCH,
) -> None:
    """Passes until ``stop`` is set, the first at once, then every ``interval`` seconds."""
    while not stop.is_set():
        try:
            claimed = await run_pass(outbox, batch)
        except Exception as exc:  # the database, mostly: the next pass tries again
            log.warning("zoom_revoker.pass_failed", error=type(exc).__name__)
        else:
            if claimed:
                log.info("zoom_revoker.pass", claimed=claimed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


@contextlib.asynccontextmanager
async def revoking(
    outbox: Outbox, *, interval: float = INTERVAL_SECONDS, batch: int = BATCH
) -> AsyncIterator[None]:
    """Run the loop for the duration of the block; leaving it cancels the loop and waits."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_revoker(outbox, stop, interval=interval, batch=batch))
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
