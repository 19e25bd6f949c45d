"""Wiring: every long-lived resource opened in one ``AsyncExitStack``, closed in reverse.

Start-up order: database pool, HTTP client, producer, health server, then the consumer engine;
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
from worker.pipeline.processor import Processor, Topics
from worker.runtime import kafka
from worker.runtime.config import Settings
from worker.runtime.health import health_app, serving
from worker.runtime.http import http_client
from worker.runtime.publisher import KafkaPublisher
from worker.runtime.resources import database_ready, open_pool, stop_on_signals, token_store
from worker.zoom import ZoomMeetings

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


async def run(settings: Settings, stop: asyncio.Event | None = None) -> int:
    stop = stop_on_signals(stop)
    async with AsyncExitStack() as stack:
        # One connection per admitted message (its event's guard) and a few for the rest.
        pool = await open_pool(stack, settings, settings.max_in_flight + 8)
        http = await stack.enter_async_context(http_client(settings.max_in_flight + 16))
        tokens = token_store(settings, pool, http)
        meetings = ZoomMeetings(
            http,
            api_base_url=settings.zoom_api_base_url,
            tokens=tokens,
            retry_budget_seconds=settings.zoom_retry_budget_seconds,
        )
        producer = kafka.producer(settings)
        await producer.start()
        stack.push_async_callback(producer.stop)
        processor = Processor(
            topics=topics_of(settings),
            links=PostgresLinkStore(pool),
            meetings=meetings,
            publisher=KafkaPublisher(producer),
            crash=CrashPoints.from_env(),
            admission=Admission(settings.max_in_flight, settings.max_in_flight_per_organizer),
        )
        engine = Engine(
            kafka.consumer(settings),
            processor,
            EngineSettings(
                topics=settings.event_topics,
                # Taken but waiting for admission costs only memory: buffer more than we run,
                # so one organizer's backlog cannot starve the others.
                max_buffered=max(settings.max_buffered, settings.max_in_flight),
                shutdown_grace_seconds=settings.shutdown_grace_seconds,
            ),
        )

        async def broker_ready() -> bool:
            partitions = await asyncio.wait_for(
                producer.partitions_for(settings.topic_meeting_linked), 2
            )
            return bool(partitions)

        async def consumer_running() -> bool:
            return engine.running

        checks = {
            "database": lambda: database_ready(pool),
            "broker": broker_ready,
            "consumer": consumer_running,
        }
        await stack.enter_async_context(serving(health_app(checks), settings.http_port))
        log.info("worker starting", group=settings.kafka_group_id, topics=settings.event_topics)
        await engine.run(stop)
        log.info("worker stopped")
    return 0
