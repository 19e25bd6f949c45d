"""``zoom-worker topics ensure``: the worker's six topics, created where missing, checked where
they exist.

The names are the worker's own settings (``TOPIC_*``). The three event topics must have one
partition count: they are co-partitioned by event id, and the range assignor gives one consumer
the same partition of each (the worker refuses to start otherwise). The result and dead-letter
topics may have any count. ``ensure`` never changes a topic that exists:

- a missing topic is created with the event topics' count where some exist, else
  ``--partitions`` (default 12; the partition count is the ceiling on replicas), and
  ``--replication-factor`` (default 3, or the number of brokers when fewer);
- event topics that exist with different counts, or with a count other than an explicit
  ``--partitions``, are a problem: it is named on stderr, nothing is created, exit 1;
- run twice, the second run creates nothing and exits 0 (idempotent; a topic created by
  someone else meanwhile is taken as it is, and the counts are checked again at the end).

``--dry-run`` says what it would create and creates nothing. Exit codes: 0 the six exist (or
would) and the event topics are co-partitioned; 1 a problem, or the broker refused; 2 bad
configuration (worker/cli.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.cli import command
from worker.runtime.config import Settings

DEFAULT_PARTITIONS = 12
MAX_DEFAULT_REPLICATION = 3
_METADATA_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class TopicStep:
    name: str
    partitions: int
    exists: bool  # True: found with ``partitions``; False: to be created with them


@dataclass(frozen=True)
class Plan:
    steps: tuple[TopicStep, ...]
    problems: tuple[str, ...]

    @property
    def to_create(self) -> tuple[TopicStep, ...]:
        return tuple(step for step in self.steps if not step.exists)


def plan(
    event_topics: Sequence[str],
    other_topics: Sequence[str],
    existing: Mapping[str, int],
    requested: int | None = None,
) -> Plan:
    """What ``ensure`` does, from the topics that exist (name -> partition count); no I/O."""
    present = {t: existing[t] for t in event_topics if t in existing}
    problems: list[str] = []
    counts = set(present.values())
    if len(counts) > 1:
        found = ", ".join(f"{t} has {n}" for t, n in present.items())
        problems.append(
            f"event topics are not co-partitioned ({found}): they must have the same partition "
            "count, or one event's messages reach different consumers. Kafka can only add "
            "partitions, which moves events between partitions: stop the workers, let the "
            "topics drain, then raise the smaller ones (kafka-topics.sh --alter --topic T "
            f"--partitions {max(counts)})."
        )
    elif counts and requested is not None and requested not in counts:
        (count,) = counts
        problems.append(
            f"--partitions {requested}, but the event topics that exist have {count} "
            f"({', '.join(present)}): topics ensure never changes a topic, and new event "
            f"topics must match them. Leave --partitions out or pass {count}."
        )
    count = next(iter(counts)) if len(counts) == 1 else (requested or DEFAULT_PARTITIONS)
    steps: list[TopicStep] = []
    for name in dict.fromkeys([*event_topics, *other_topics]):  # unique, in order
        if name in existing:
            steps.append(TopicStep(name, existing[name], exists=True))
        else:
            steps.append(TopicStep(name, count, exists=False))
    return Plan(tuple(steps), tuple(problems))


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--partitions",
        type=positive_int,
        default=None,
        help=f"partitions of the topics to create (default {DEFAULT_PARTITIONS}, or the event "
        "topics' count where some exist)",
    )
    parser.add_argument(
        "--replication-factor",
        type=positive_int,
        default=None,
        help=f"replicas of each created topic (default {MAX_DEFAULT_REPLICATION}, or the number "
        "of brokers when fewer)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be created, create nothing"
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@command(
    "topics ensure",
    "create the worker's six topics where missing; check the event topics' co-partitioning",
    "kafka",
    arguments=_arguments,
)
def ensure(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from worker.runtime import kafka

    async def go() -> int:
        # The worker's own connection and security options (TLS, SASL), for the admin client.
        admin = AIOKafkaAdminClient(**kafka._common(settings))
        try:
            await admin.start()
            return await ensure_topics(
                admin,
                event_topics=settings.event_topics,
                other_topics=(
                    settings.topic_meeting_linked,
                    settings.topic_meeting_failed,
                    settings.topic_dead_letter,
                ),
                partitions=args.partitions,
                replication_factor=args.replication_factor,
                dry_run=args.dry_run,
            )
        except KafkaError as exc:
            print(f"topics ensure: the broker failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            await admin.close()

    return asyncio.run(go())


async def ensure_topics(
    admin: Any,
    *,
    event_topics: Sequence[str],
    other_topics: Sequence[str],
    partitions: int | None = None,
    replication_factor: int | None = None,
    dry_run: bool = False,
) -> int:
    """Carry out ``plan`` with a started ``AIOKafkaAdminClient``; returns the exit code."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    out, err = sys.stdout, sys.stderr
    the_plan = plan(event_topics, other_topics, await _partition_counts(admin), partitions)
    if the_plan.problems:
        for problem in the_plan.problems:
            print(f"topics ensure: {problem}", file=err)
        return 1
    replicas = replication_factor or min(MAX_DEFAULT_REPLICATION, await _broker_count(admin))
    failed: set[str] = set()
    if the_plan.to_create and not dry_run:
        new = [NewTopic(s.name, s.partitions, replicas) for s in the_plan.to_create]
        response = await admin.create_topics(new)
        for topic, code, *message in response.topic_errors:
            error = for_code(code) if code else None
            if error is not None and error is not TopicAlreadyExistsError:
                detail = f"{error.__name__} {message[0] if message and message[0] else ''}"
                print(f"topics ensure: could not create {topic}: {detail.rstrip()}", file=err)
                failed.add(topic)
    for step in the_plan.steps:
        if step.exists:
            said = f"exists, {step.partitions} partitions"
        elif step.name in failed:
            continue  # said on stderr
        else:
            verb = "would create" if dry_run else "created"
            said = f"{verb}, {step.partitions} partitions, replication factor {replicas}"
        print(f"{step.name}: {said}", file=out)
    if failed:
        return 1
    if dry_run:
        return 0
    # Check what the broker now has: someone may have created a topic meanwhile.
    final = await _settled_counts(admin, [step.name for step in the_plan.steps])
    missing = [step.name for step in the_plan.steps if step.name not in final]
    after = plan(event_topics, other_topics, final)
    if missing or after.problems:
        for problem in after.problems:
            print(f"topics ensure: {problem}", file=err)
        if missing:
            print(f"topics ensure: not visible on the broker: {', '.join(missing)}", file=err)
        return 1
    counts = {final[t] for t in event_topics}
    print(f"event topics co-partitioned: {counts.pop()} partitions each", file=out)
    return 0


async def _partition_counts(admin: Any) -> dict[str, int]:
    """Every topic the broker knows, with its partition count. All topics, not the six by name:
    a metadata request naming a missing topic may auto-create it (with the broker's default
    count), which would defeat the check."""
    found: dict[str, int] = {}
    for topic in await admin.describe_topics():
        if not topic.get("error_code") and topic.get("partitions"):
            found[topic["topic"]] = len(topic["partitions"])
    return found


async def _broker_count(admin: Any) -> int:
    cluster = await admin.describe_cluster()
    return max(1, len(cluster.get("brokers") or ()))


async def _settled_counts(admin: Any, names: Sequence[str]) -> dict[str, int]:
    """Partition counts once every name is visible (new topics take a moment), or as they are
    after ``_METADATA_WAIT_SECONDS``."""
    deadline = time.monotonic() + _METADATA_WAIT_SECONDS
    while True:
        counts = await _partition_counts(admin)
        if all(name in counts for name in names) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)
