"""Wiring: every long-lived resource opened in one ``AsyncExitStack``, closed in reverse.

Start-up order: tracing (when ``OTEL_*`` turns it on), database pool, HTTP client, the hosts
at Zoom's daily limit (loaded, then refreshed in the background when shared), producer,
dependency monitor, health server, then the consumer engine (running the processor through the
poison guard);
shutdown (SIGTERM/SIGINT) stops the engine first (finish in-flight, commit, leave the group) and
closes the rest after it, so no result is published on a closed producer.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from contextlib import AsyncExitStack

import uvloop
from structlog.stdlib import get_logger

from worker.engine.consumer import Engine, EngineSettings
from worker.leases import Leases, LeaseSettings
from worker.pipeline.admission import Admission
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.links import PostgresLinkStore
from worker.pipeline.pending import RetryPolicy, ScheduledRetry
from worker.pipeline.poison import PoisonGuard
from worker.pipeline.processor import Processor, Topics
from worker.pipeline.retries import PostgresRetryQueue, RetryRunner, RunnerSettings
from worker.runtime import kafka
from worker.runtime.config import ConfigError, Settings
from worker.runtime.dependencies import DependencyMonitor, broker_probe, database_probe
from worker.runtime.health import Liveness, health_app, serving, stall_liveness
from worker.runtime.http import http_client
from worker.runtime.publisher import KafkaPublisher
from worker.runtime.resources import Pool, open_pool, stop_on_signals, token_store
from worker.runtime.shared_daily import SharedDailyLimits
from worker.runtime.shared_limits import SharedRateLimiter
from worker.runtime.tracing import Tracing
from worker.statement_batches import StatementBatcher
from worker.zoom import ZoomMeetings
from worker.zoom.breaker import BreakerConfig, CircuitBreaker
from worker.zoom.daily import DailyLimiter, DailyLimits
from worker.zoom.ratelimit import AccountRateLimiter, BucketConfig, Category, RateLimiter

log = get_logger("worker.runtime.app")


def main(settings: Settings) -> int:
    try:
        tracing = Tracing.from_environment()  # the OTEL_* variables
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2  # EXIT_CONFIG, as for every other setting (worker/cli.py)
    # What importing made lives as long as the process: out of the collector's sight, so
    # that a full collection scans only what messages make (its 60-80 ms pauses, the tail
    # latency of every message in flight then, become 15-20 ms; README, Benchmark). Here, not in
    # ``run``: once per process (tests run ``run`` many times in one).
    gc.collect()
    gc.freeze()
    # A message allocates thousands of objects, nearly all freed by reference counting within
    # the message, yet at the default thresholds (700, 10, 10) the collector ran a young
    # collection every 700 of them. At 2,000 it spends a third less (gc.callbacks over the
    # bench's 6,000 messages at 0 ms: 1.35 s of 13 s of CPU, then 0.87 s). Raising the older
    # generations' thresholds too saved a little more but let a 30k drain grow to 240 MB
    # (``--memory``): cyclic garbage waited that much longer for a full collection.
    gc.set_threshold(2_000, 10, 10)
    # uvloop: the event loop's own share of the CPU (a wake-up per round trip to Postgres,
    # Zoom and Kafka) is about a third of asyncio's; ~1 ms less per message (README, Benchmark).
    return uvloop.run(run(settings, tracing=tracing))


def topics_of(settings: Settings) -> Topics:
    return Topics(
        created=settings.topic_event_created,
        updated=settings.topic_event_updated,
        deleted=settings.topic_event_deleted,
        linked=settings.topic_meeting_linked,
        failed=settings.topic_meeting_failed,
        dead_letter=settings.topic_dead_letter,
    )


def rate_limiter(settings: Settings, pool: Pool) -> RateLimiter:
    """Zoom's per-account ceilings kept by every replica together, or by this process alone."""
    limits: dict[Category, BucketConfig] = {
        "Medium": BucketConfig.under(settings.zoom_medium_per_second),
        "Light": BucketConfig.under(settings.zoom_light_per_second),
    }
    if settings.zoom_rate_limit_scope == "shared":
        return SharedRateLimiter(pool, limits)
    return AccountRateLimiter(limits)


async def daily_limits(settings: Settings, pool: Pool, stack: AsyncExitStack) -> DailyLimiter:
    """Hosts at Zoom's daily limit known to every replica (a table each loads every
    ``ZOOM_DAILY_LIMIT_REFRESH_SECONDS``, refreshing until ``stack`` closes), or to this
    process alone; either way checked in memory, no round trip per Zoom call."""
    if settings.zoom_rate_limit_scope == "shared":
        shared = SharedDailyLimits(pool, refresh_seconds=settings.zoom_daily_limit_refresh_seconds)
        return await stack.enter_async_context(shared.running())
    return DailyLimits()


def refresh_slots(pool_size: int) -> int:
    """Token refreshes at once: each holds a pooled connection (its row lock) across Zoom's
    OAuth call (``token_store/store.py``); four connections always stay for everything else
    (the guards' short statements, the retry runner, the dependency probe). A burst of
    refreshes (tokens expiring together) queues in the process, never on the pool, so no
    message fails with ``PoolTimeout`` for it (tests/worker/test_outages.py).

    Nothing else holds a connection for longer than one round trip: the event guards hold
    leases, not connections (``worker/leases.py``), so ``DATABASE_POOL_SIZE`` need
    not grow with ``MAX_IN_FLIGHT``.
    """
    return max(1, pool_size - 4)


async def run(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    crash: CrashPoints | None = None,
    tracing: Tracing | None = None,
) -> int:
    """Run the worker until ``stop`` is set (or SIGTERM/SIGINT); 0 after a clean shutdown.

    ``crash`` arms the crash-recovery hook: only the dev tooling passes one
    (``devservices.crashing_worker``); ``zoom-worker run`` never does.
    ``tracing``: as the ``OTEL_*`` variables say unless given (``worker/runtime/tracing.py``).
    """
    stop = stop_on_signals(stop)
    tracing = tracing if tracing is not None else Tracing.from_environment()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(tracing.running())  # before the pool: Postgres spans
        pool = await open_pool(
            stack,
            settings,
            settings.database_pool_size,
            wait_seconds=settings.database_pool_timeout_seconds,
            application_name=settings.database_application_name,
        )
        http = await stack.enter_async_context(http_client(settings.max_in_flight + 16))
        tracing.instrument_http(http)
        tokens = token_store(
            settings,
            pool,
            http,
            max_concurrent_refreshes=refresh_slots(settings.database_pool_size),
            batches=StatementBatcher(pool),
        )
        meetings = ZoomMeetings(
            http.transport,
            api_base_url=settings.zoom_api_base_url,
            tokens=tokens,
            retry_budget_seconds=settings.zoom_retry_budget_seconds,
            limiter=rate_limiter(settings, pool),
            # Its refresher stops when the stack closes: after the engine, before the pool.
            daily_limits=await daily_limits(settings, pool, stack),
            breaker=CircuitBreaker(
                "zoom_api",
                BreakerConfig(
                    failure_ratio=settings.breaker_failure_ratio,
                    min_calls=settings.breaker_min_calls,
                    window_seconds=settings.breaker_window_seconds,
                    probe_interval_seconds=settings.breaker_probe_interval_seconds,
                ),
            ),
        )
        producer = kafka.producer(settings)
        await producer.start()
        stack.push_async_callback(producer.stop)
        topics = topics_of(settings)
        monitor = DependencyMonitor(
            {
                "database": database_probe(pool),
                "broker": broker_probe(
                    producer, (topics.linked, topics.failed, topics.dead_letter)
                ),
            }
        )
        await stack.enter_async_context(monitor.running())
        publisher = KafkaPublisher(producer, tracer=tracing.tracer)
        links = PostgresLinkStore(pool, LeaseSettings(seconds=settings.lease_seconds))
        processor = Processor(
            topics=topics,
            links=links,
            meetings=meetings,
            publisher=publisher,
            crash=crash,
            admission=Admission(settings.max_in_flight, settings.max_in_flight_per_organizer),
            retry_policy=RetryPolicy(
                delays_seconds=settings.retry_delays_seconds,
                horizon_seconds=settings.retry_horizon_seconds,
            ),
        )
        # An unexpected error on one message is retried, then the message parked; a dependency
        # outage is waited out (worker/pipeline/poison.py).
        handler = PoisonGuard(processor, topics=topics, publisher=publisher, dependencies=monitor)

        async def run_retry(scheduled: ScheduledRetry) -> bool:
            return await handler.shield(scheduled.record, lambda: processor.retry(scheduled))

        retries = RetryRunner(
            PostgresRetryQueue(pool, lease_seconds=settings.retry_lease_seconds),
            tracing.retries(run_retry, group=settings.kafka_group_id),
            meetings.breaker,
            settings=RunnerSettings(
                poll_seconds=settings.retry_poll_seconds,
                rate_per_second=settings.retry_rate_per_second,
                grace_seconds=settings.shutdown_grace_seconds,
            ),
            ready=monitor.ready,
        )
        engine = Engine(
            kafka.consumer(settings),
            tracing.records(handler, group=settings.kafka_group_id),
            EngineSettings(
                topics=settings.event_topics,
                # Taken but waiting for admission costs only memory: buffer more than we run,
                # so one organizer's backlog cannot starve the others.
                max_buffered=max(settings.max_buffered, settings.max_in_flight),
                shutdown_grace_seconds=settings.shutdown_grace_seconds,
            ),
        )

        async def consumer_running() -> bool:
            return engine.running

        checks = {
            "database": lambda: monitor.check("database"),
            "broker": lambda: monitor.check("broker"),
            "consumer": consumer_running,
        }

        def liveness() -> Liveness:
            # Stuck with work: restart; waiting out a known outage: no (worker/runtime/health.py).
            status = engine.status()
            return stall_liveness(
                progress_age_seconds=status.progress_age_seconds,
                has_work=status.has_work,
                stall_seconds=settings.liveness_stall_seconds,
                dependencies_down=monitor.down,
                detail={"in_flight": status.in_flight, "committed_lag": status.committed_lag},
            )

        await stack.enter_async_context(serving(health_app(checks, liveness), settings.http_port))
        log.info("worker starting", group=settings.kafka_group_id, topics=settings.event_topics)
        # Scheduled retries run beside the consumer and stop with it, before the producer closes.
        retrying = asyncio.create_task(retries.run(stop), name="retry-runner")
        sweeping = asyncio.create_task(
            Leases(pool, LeaseSettings(seconds=settings.lease_seconds)).sweeping(stop),
            name="lease-sweeper",
        )
        try:
            await engine.run(stop)
        finally:
            stop.set()
            await retrying
            await sweeping
            await links.settle()  # the last messages' leases, before the pool closes
        log.info("worker stopped")
    return 0
