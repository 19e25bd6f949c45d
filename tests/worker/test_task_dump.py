"""SIGUSR1 makes a running worker print where each of its asyncio tasks waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

import pytest

from worker.runtime.resources import stop_on_signals


async def parked_in_a_context_manager(entered: asyncio.Event) -> None:
    @contextlib.asynccontextmanager
    async def holding() -> AsyncIterator[None]:
        yield
        await asyncio.sleep(3600)  # the exit waits

    async with holding():
        entered.set()
    # never reached within the test


async def test_sigusr1_prints_every_task_and_its_chain_of_awaits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop_on_signals()
    entered = asyncio.Event()
    task = asyncio.create_task(parked_in_a_context_manager(entered), name="the-parked-one")
    await entered.wait()
    await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.sleep(0.05)
    task.cancel()
    err = capsys.readouterr().err
    assert "asyncio tasks (SIGUSR1)" in err and "--- end of tasks ---" in err
    dump = err.split("the-parked-one:\n")[1].split("\n--- end")[0].split(":\n")[0]
    assert "in parked_in_a_context_manager" in dump
    assert "in holding" in dump  # through the context manager's exit, into its generator
    assert "in sleep" in dump
