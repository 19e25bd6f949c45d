"""psycopg_pool's connection wait, mended so that a cancellation is never lost (Python 3.11).

psycopg_pool (3.3) waits for a connection with ``asyncio.wait_for``. On Python 3.11
``wait_for`` drops a cancellation that arrives in the same loop turn as the connection it
waited for (CPython gh-86296, fixed in 3.12): ``pool.connection()`` then returns a connection
to a task that was cancelled, and the task goes on as if it had not been. A loop stopped by
cancellation (a lease's renewal, ``worker/leases.py``) then never stops, and whoever awaits it
waits for ever: under the chaos suite's 10,000 hostile messages the worker stalled so, with
every key of a stuck message renewed for good. ``tests/worker/test_pool_cancellation.py``
reproduces it.

``mend`` swaps the pool's wait for one on ``asyncio.timeout``, which keeps the cancellation. It
is applied when ``worker`` is imported, before any pool exists; nothing changes on 3.12+.
"""

from __future__ import annotations

import asyncio
import sys

from psycopg_pool import _acompat


async def _wait_timeout(
    self: asyncio.Condition | asyncio.Event,
    timeout: float,  # noqa: ASYNC109 (psycopg_pool calls it so)
) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await self.wait()
    except TimeoutError:
        return False
    return True


def mend() -> None:
    """Make psycopg_pool's waits keep their cancellation (idempotent; a no-op on 3.12+)."""
    if sys.version_info >= (3, 12):
        return
    _acompat.ACondition.wait_timeout = _wait_timeout  # type: ignore[method-assign]
    _acompat.AEvent.wait_timeout = _wait_timeout  # type: ignore[method-assign]
