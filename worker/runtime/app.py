"""Wiring: every long-lived resource opened in one ``AsyncExitStack``, closed in reverse.

Start-up order: database pool, HTTP client, producer, dependency monitor, health server, then
the consumer engine (running the processor through the poison guard);
shutdown (SIGTERM/SIGINT) stops the engine first (finish in-flight, commit, leave the group) and
closes the rest after it, so no result is published on a closed producer.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from structlog.stdlib import get_logger

from worker.engine.consumer import Engine, EngineSettings
from worker.pipeline.admission import Admission
from worker.pipeline.crashpoints import CrashPoints
from worker.pipeline.links import PostgresLinkStore
from worker.pipeline.pending import RetryPolicy, ScheduledRetry
from worker.pipeline.poison import PoisonGuard
from worker.pipeline.processor import Processor, Topics
from worker.pipeline.retries import PostgresRetryQueue, RetryRunner, RunnerSettings
from worker.runtime import kafka
from worker.runtime.config import Settings
from worker.runtime.dependencies import DependencyMonitor, broker_probe, database_probe
from worker.runtime.health import health_app, serving
from worker.runtime.http import http_client
from worker.runtime.publisher import KafkaPublisher
from worker.runtime.resources import open_pool, stop_on_signals, token_store
from worker.zoom import ZoomMeetings
from worker.zoom.breaker import BreakerConfig, CircuitBreaker

log = get_logger("worker.runtime.app")


def main(settings: Settings) -> int:
    return asyncio.run(run(settings))


def topics_of(settings: Settings) -> Topics:
    return Topics(
        created=settings.topic_event_created,
        updated=settings.topic_event_updated,
        deleted=settings.topic_event_deleted,
        linked=settings.topic_meeting_linked,
        failed=settings.topic_meeting_failed,
        dead_letter=settings.topic_dead_letter,
    )


def pool_size(max_in_flight: int) -> int:
    """Database connections the worker may need at once, so that none ever waits for one.

    Each admitted message (at most ``MAX_IN_FLIGHT``) holds one connection for its event's guard
    from start to end and, one at a time, at most one more: to read its organizer's token, or to
    refresh it under the row lock, across Zoom's OAuth call (``token_store/store.py``; callers
    refreshing one organizer share one refresh). Eight more serve the dependency probe,
    ``/readyz`` and headroom. With fewer, a burst of refreshes (many organizers' tokens expiring
    together, after a deploy or an outage) queues for connections held across slow OAuth calls
    and messages fail with ``PoolTimeout``; tests/worker/test_outages.py checks this bound.
    """
    return 2 * max_in_flight + 8


async def run(
    settings: Settings, stop: asyncio.Event | None = None, *, crash: CrashPoints | None = None
) -> int:
    """Run the worker until ``stop`` is set (or SIGTERM/SIGINT); 0 after a clean shutdown.

    ``crash`` arms the crash-recovery hook: only the dev tooling passes one
    (``devservices.crashing_worker``); ``zoom-worker run`` never does.
    """
    stop = stop_on_signals(stop)
    async with AsyncExitStack() as stack:
        pool = await open_pool(
            stack,
            settings,
            pool_size(settings.max_in_flight),
            wait_seconds=settings.database_pool_timeout_seconds,
        )
        http = await stack.enter_async_context(http_client(settings.max_in_flight + 16))
        tokens = token_store(settings, pool, http)
        meetings = ZoomMeetings(
            http,
            api_base_url=settings.zoom_api_base_url,
            tokens=tokens,
            retry_budget_seconds=settings.zoom_retry_budget_seconds,
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
        publisher = KafkaPublisher(producer)
        processor = Processor(
            topics=topics,
            links=PostgresLinkStore(pool),
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
            run_retry,
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
            handler,
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
        await stack.enter_async_context(serving(health_app(checks), settings.http_port))
        log.info("worker starting", group=settings.kafka_group_id, topics=settings.event_topics)
        # Scheduled retries run beside the consumer and stop with it, before the producer closes.
        retrying = asyncio.create_task(retries.run(stop), name="retry-runner")
        try:
            await engine.run(stop)
        finally:
            stop.set()
            await retrying
        log.info("worker stopped")
    return 0
