"""Faults injected mid-stream into each service the worker needs; the worker must ride them out.

Every test runs the same shape: a worker (supervised: restarted if it exits, and the exit
reported) owns its partitions; a feeder sends a seeded calendar story (~150 events, ~330
messages, six organizers) at 50 messages a second with Zoom answering in ~15 ms; once a quarter
is sent, the fault strikes and is lifted a few seconds later; the feeder finishes; the test
waits until every must-answer message is answered and the group has committed everything; and
``check_invariants`` has the last word (``invariants.py``): one result id per source, no
duplicate meeting, Zoom equal to the calendar, nothing parked or failed that should not be,
and the worker never exited.

Where Zoom fails or its answer to a create is lost (a connection reset or closed mid-request)
the worker tells the calendar once (``meeting.failed`` with ``next_attempt_at``) and retries by
itself, looking for a meeting a lost create may have made: nothing may be parked and no final
failure published; every notice must be followed by an outcome (``invariants.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, fields

import pytest
from devservices.faultproxy import ProxyStats
from devservices.zoom_emulator.faults import Fault

from tests.chaos.conftest import ChaosWorld
from tests.chaos.invariants import Summary, check_invariants
from tests.chaos.plan import Plan
from tests.chaos.supervisor import Supervisor
from tests.chaos.workload import Feeder, calendar_story, settle

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

EVENTS = 150
RATE = 50.0
OUTAGE = 4.0


@dataclass
class Run:
    world: ChaosWorld
    plan: Plan
    supervisor: Supervisor
    feeder: Feeder
    before: dict[str, ProxyStats]


def proxy_stats(world: ChaosWorld) -> dict[str, ProxyStats]:
    proxies = {"pg": world.pg_proxy, "zoom": world.zoom_proxy, "kafka": world.kafka.proxy}
    return {name: proxy.stats() for name, proxy in proxies.items()}


def what_the_proxies_saw(run: Run) -> str:
    """Per proxy, the counters that moved during this test."""
    parts = []
    for name, now in proxy_stats(run.world).items():
        then = run.before[name]
        moved = {
            f.name: getattr(now, f.name) - getattr(then, f.name)
            for f in fields(now)
            if f.name != "active" and getattr(now, f.name) != getattr(then, f.name)
        }
        parts.append(f"{name} {moved}")
    return "; ".join(parts)


async def begin(world: ChaosWorld, seed: int, **env: str) -> Run:
    """Worker up, traffic flowing, a quarter of it sent: the moment to strike."""
    organizers = await world.organizers(6)
    plan = calendar_story(world.prefix, organizers, EVENTS, seed)
    world.zoom.faults = [Fault(kind="latency", latency_ms=15, distribution="lognormal")]
    before = proxy_stats(world)
    supervisor = world.supervisor(**env)
    await supervisor.start()
    feeder = Feeder(world.direct, world.topics, plan.sources, RATE).start()
    await feeder.wait_sent(len(plan.sources) // 4)
    return Run(world, plan, supervisor, feeder, before)


async def finish(run: Run, *, timeout: float = 150.0) -> Summary:
    world = run.world
    await run.feeder.done()
    settled = await settle(
        world.results, run.plan, bootstrap=world.direct, group=world.group, timeout=timeout
    )
    print(
        f"{world.prefix}: settled {settled.seconds:.1f}s after the feeder; worker exits "
        f"{[e.code for e in run.supervisor.exits]}; proxies: {what_the_proxies_saw(run)}"
    )
    return check_invariants(
        plan=run.plan,
        results=world.results,
        zoom=world.zoom,
        zoom_users=world.zoom_users,
        supervisors=[run.supervisor],
        settled=settled,
    )


async def for_a_while(fault: Callable[[], None], lift: Callable[[], None], seconds: float) -> None:
    fault()
    try:
        await asyncio.sleep(seconds)
    finally:
        lift()


async def repeatedly(action: Callable[[], None], times: int, every: float) -> None:
    for _ in range(times):
        action()
        await asyncio.sleep(every)


# -- Postgres --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "reset", "blackhole"])
async def test_postgres_unreachable_for_seconds(world: ChaosWorld, mode: str) -> None:
    run = await begin(world, seed=101)
    proxy = world.pg_proxy
    await for_a_while(lambda: proxy.cut(mode), proxy.restore, OUTAGE)  # type: ignore[arg-type]
    await finish(run)


async def test_postgres_slow_for_seconds(world: ChaosWorld) -> None:
    run = await begin(world, seed=102)
    proxy = world.pg_proxy
    await for_a_while(lambda: proxy.delay(0.05), lambda: proxy.delay(0), 5.0)
    await finish(run)


async def test_postgres_connections_reset_again_and_again(world: ChaosWorld) -> None:
    run = await begin(world, seed=103)
    await repeatedly(world.pg_proxy.reset, times=4, every=1.0)
    await finish(run)


@pytest.mark.parametrize("how", ["kill", "immediate", "fast"])
async def test_postgres_dies_and_comes_back_with_its_data(world: ChaosWorld, how: str) -> None:
    """kill: SIGKILL to the postmaster and every backend (the host died); immediate: SIGQUIT
    (no checkpoint, crash recovery on start); fast: SIGINT (sessions terminated)."""
    run = await begin(world, seed=104)
    world.postgres.stop(how)  # type: ignore[arg-type]
    await asyncio.sleep(3.0)
    world.postgres.start()  # on this (the main) thread: its processes die with the thread
    await finish(run)


# -- Kafka -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_the_broker_stops_and_starts_again(world: ChaosWorld, kill: bool) -> None:
    run = await begin(world, seed=105)
    broker = world.kafka.broker
    run.feeder.gate.clear()  # the calendar's own producer waits for the broker too
    try:
        await asyncio.to_thread(broker.stop, kill=kill)
        await asyncio.sleep(3.0)
    finally:
        broker.start()  # on this (the main) thread: the JVM dies with the thread that started it
        run.feeder.gate.set()
    await finish(run)


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_the_network_to_the_broker_fails(world: ChaosWorld, mode: str) -> None:
    """Only the worker's path to Kafka breaks (the broker runs on): a partition longer than the
    group's session timeout (3 s), so the broker evicts the worker from its group meanwhile."""
    run = await begin(world, seed=106)
    proxy = world.kafka.proxy
    await for_a_while(lambda: proxy.cut(mode), proxy.restore, 6.0)  # type: ignore[arg-type]
    await finish(run)


async def test_the_broker_is_slow(world: ChaosWorld) -> None:
    run = await begin(world, seed=107)
    proxy = world.kafka.proxy
    await for_a_while(lambda: proxy.delay(0.05), lambda: proxy.delay(0), 5.0)
    await finish(run)


# -- Zoom ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_zoom_unreachable_for_seconds(world: ChaosWorld, mode: str) -> None:
    run = await begin(world, seed=108)
    proxy = world.zoom_proxy
    await for_a_while(lambda: proxy.cut(mode), proxy.restore, OUTAGE)  # type: ignore[arg-type]
    await finish(run)


async def test_zoom_connections_reset_again_and_again(world: ChaosWorld) -> None:
    run = await begin(world, seed=109)
    await repeatedly(world.zoom_proxy.reset, times=5, every=0.7)
    await finish(run)


async def test_zoom_slow_for_seconds(world: ChaosWorld) -> None:
    run = await begin(world, seed=110)
    proxy = world.zoom_proxy
    await for_a_while(lambda: proxy.delay(0.3), lambda: proxy.delay(0), 5.0)
    await finish(run)


async def test_zoom_misbehaves_in_every_way_it_can(world: ChaosWorld) -> None:
    """The emulator's own faults, all at once for a while: 5xx, HTML error pages, 429s with
    each Retry-After form, dropped connections before and after Zoom acted, slow answers."""
    run = await begin(world, seed=111)
    chaos = [
        Fault(kind="latency", latency_ms=40, distribution="lognormal"),
        Fault(kind="error", status=503, probability=0.1),
        Fault(kind="error", status=500, probability=0.05),
        Fault(kind="non_json", status=502, probability=0.05),
        Fault(kind="rate_limit", retry_after="seconds", retry_after_seconds=0.5, probability=0.05),
        Fault(kind="rate_limit", retry_after="http_date", probability=0.03),
        Fault(kind="rate_limit", retry_after="none", probability=0.03),
        Fault(kind="drop", when="before", probability=0.03),
        Fault(kind="drop", when="after", probability=0.03),
    ]
    calm = [Fault(kind="latency", latency_ms=15, distribution="lognormal")]

    def storm() -> None:
        world.zoom.faults = chaos

    def calm_down() -> None:
        world.zoom.faults = calm

    await for_a_while(storm, calm_down, 6.0)
    await finish(run)
