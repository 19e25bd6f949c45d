"""Carrying out a Zoom meeting webhook: lock the event, decide, publish, store.

``MeetingSync.handle`` is what ``POST /zoom/webhook`` calls for ``meeting.updated``,
``meeting.deleted``, ``meeting.started`` and ``meeting.ended`` (after the signature, freshness
and once-only checks). Holding the event's lease, the worker's own exclusion
(``connect.meeting_links``), it reads the link, asks ``connect.meeting_changes.decide``, and
for a change publishes ``meeting.changed`` (acknowledged by the broker) and then stores the
link's change and the record of the message in one commit. Publish first: should the store
fail, Zoom's retry finds the link as it was and publishes the same ``message_id`` again, where
the other order would lose the change.

Contract:
- It never holds the event's lease longer than the wait for it plus the publish timeout (about
  3 seconds), so a worker waiting for that event is held up at most that long; the worker's
  consumer never waits on a webhook otherwise.
- ``ChangeDeferred`` when the change could not be carried out now: the worker held the event
  longer than the wait, the broker did not acknowledge in time or refused, or the lease ran
  out before the store. Nothing was stored; the caller answers non-2xx and forgets the
  delivery, so Zoom's retry acts on it.
- A publish that timed out may still be acknowledged later (the producer keeps the record):
  then the change is settled in the background (the link stored and the message recorded, as if
  on time, unless the link moved on meanwhile), so Zoom's retry publishes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import Counter
from structlog.stdlib import get_logger

from connect.meeting_changes import MESSAGE_TYPE, Decision, Ignore, Publish, decide, message_id
from connect.meeting_events import ZoomMeetingEvent
from connect.meeting_links import LeaseLost, LinkBusy, MeetingLinks
from connect.publisher import PublishFailed, PublishTimedOut
from schemas import MeetingChanged
from schemas.headers import message_headers

log = get_logger("connect.meeting_sync")

WEBHOOKS = Counter(
    "zoom_meeting_webhooks_total",
    "Zoom meeting webhooks acted on, by Zoom event and outcome: published, deferred, or why "
    "they were ignored (echo, unknown_meeting, not_connected, ...)",
    ["event", "outcome"],
)


class Publisher(Protocol):
    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> None: ...


class ChangeDeferred(Exception):
    """Not carried out now; Zoom should retry. ``reason``: ``link_busy``, ``publish_timeout``,
    ``publish_failed``, ``lease_lost``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MeetingSync:
    def __init__(self, links: MeetingLinks, publisher: Publisher, topic: str) -> None:
        self._links = links
        self._publisher = publisher
        self._topic = topic
        self._late: set[asyncio.Task[None]] = set()

    async def handle(self, event: ZoomMeetingEvent) -> Decision:
        try:
            decision = await self._handle(event)
        except ChangeDeferred as exc:
            WEBHOOKS.labels(event.kind, "deferred").inc()
            log.warning("zoom_webhook.meeting_change_deferred", event_type=event.kind,
                        meeting_id=event.meeting_id, reason=exc.reason)  # fmt: skip
            raise
        outcome = "published" if isinstance(decision, Publish) else decision.why
        WEBHOOKS.labels(event.kind, outcome).inc()
        if isinstance(decision, Publish):
            message = decision.message
            log.info("zoom_webhook.meeting_changed", event_type=event.kind,
                     meeting_id=event.meeting_id, event_id=message.event_id,
                     change=message.change.value, message_id=message.message_id)  # fmt: skip
        else:
            log.info("zoom_webhook.meeting_ignored", event_type=event.kind,
                     meeting_id=event.meeting_id, why=decision.why)  # fmt: skip
        return decision

    async def _handle(self, event: ZoomMeetingEvent) -> Decision:
        try:
            async with self._links.locked(event.meeting_id) as locked:
                if locked is None:
                    return Ignore("unknown_meeting")
                before = await locked.recorded(message_id(event))
                decision = decide(event, locked.link, published_before=before)
                if isinstance(decision, Publish):
                    try:
                        await self._publish(decision.message)
                    except PublishTimedOut as exc:
                        if exc.pending is not None:
                            self._settle_later(event, decision.message, exc.pending)
                        raise ChangeDeferred("publish_timeout") from None
                    except PublishFailed:
                        raise ChangeDeferred("publish_failed") from None
                    await locked.store(decision.store, decision.message)
                return decision
        except LinkBusy:
            raise ChangeDeferred("link_busy") from None
        except LeaseLost:
            raise ChangeDeferred("lease_lost") from None

    async def _publish(self, message: MeetingChanged) -> None:
        await self._publisher.publish(
            self._topic,
            message.event_id.encode(),
            message.to_bytes(),
            message_headers(MESSAGE_TYPE, message.schema_version),
        )

    # -- a publish acknowledged after its webhook was answered ----------------------------------

    def _settle_later(
        self, event: ZoomMeetingEvent, message: MeetingChanged, pending: asyncio.Future[Any]
    ) -> None:
        task = asyncio.create_task(self._settle(event, message, pending))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _settle(
        self, event: ZoomMeetingEvent, message: MeetingChanged, pending: asyncio.Future[Any]
    ) -> None:
        try:
            await pending
        except Exception:
            return  # never published: Zoom's retry publishes it
        try:
            recorded = False
            async with self._links.locked(event.meeting_id) as locked:
                if locked is not None:
                    before = await locked.recorded(message.message_id)
                    decision = decide(event, locked.link, published_before=before)
                    if isinstance(decision, Publish):
                        await locked.store(decision.store, message)
                    elif decision.why != "duplicate":
                        await locked.store(None, message)
                    recorded = True
            if not recorded:
                await self._links.record(message)
            log.info("zoom_webhook.meeting_change_settled", meeting_id=event.meeting_id,
                     message_id=message.message_id)  # fmt: skip
        except Exception as exc:
            log.warning("zoom_webhook.meeting_change_unsettled", meeting_id=event.meeting_id,
                        error=type(exc).__name__)  # fmt: skip

    async def aclose(self) -> None:
        """Stop settling late publishes (Zoom's retry then publishes the same id again)."""
        for task in list(self._late):
            task.cancel()
        for task in list(self._late):
            with contextlib.suppress(asyncio.CancelledError):
                await task
