"""``zoom-worker dlq replay``: re-drive parked messages.

Only onto the three configured event topics: a parked record naming any other source topic is
refused (logged as ``dlq_replay_refused``, counted in the summary line), never published.
"""

from __future__ import annotations

import argparse
import asyncio

from worker.cli import command
from worker.runtime import kafka
from worker.runtime.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason",
        action="append",
        help="replay only records parked for this reason (repeatable); default: all",
    )
    parser.add_argument("--max", type=int, default=None, help="stop after this many records")


@command("dlq replay", "re-publish parked records to their source (event) topics", "kafka",
         arguments=_arguments)  # fmt: skip
def replay(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runtime.replay import replay as run_replay

    async def go() -> int:
        consumer = kafka.consumer(settings, group_id=f"{settings.kafka_group_id}-dlq-replay")
        producer = kafka.producer(settings)
        await consumer.start()
        await producer.start()
        try:
            report = await run_replay(
                consumer,
                producer,
                settings.topic_dead_letter,
                source_topics=settings.event_topics,
                reasons=frozenset(args.reason) if args.reason else None,
                limit=args.max,
            )
        finally:
            await producer.stop()
            await consumer.stop()
        print(
            f"replayed {report.replayed} record(s), skipped {report.skipped}, refused "
            f"{report.refused} (source topic not one of {', '.join(settings.event_topics)})"
        )
        return 0

    return asyncio.run(go())
