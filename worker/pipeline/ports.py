"""The edges the worker's core talks through, as small Protocols tests can swap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeAlias

from worker.zoom.models import Meeting, MeetingPatch, MeetingSpec, MeetingSummary


class Meetings(Protocol):
    """Zoom's Meetings API as one Talivo user sees it: ``user_id`` is whose token is used.

    For a meeting that exists that is its host (the link's stored host), never anyone else; a
    create uses the event's organizer, who becomes the host. ``worker.handlers.base`` is the
    only caller and takes a ``HostedMeeting`` for every call about an existing meeting.

    Every method may block on the account's rate limit and on retries within the client's time
    budget; it raises ``worker.zoom.errors.ZoomError`` subclasses or token-store errors.
    """

    async def create_meeting(self, user_id: str, spec: MeetingSpec) -> Meeting: ...

    async def update_meeting(self, user_id: str, meeting_id: int, patch: MeetingPatch) -> None: ...

    async def delete_meeting(self, user_id: str, meeting_id: int) -> None: ...

    async def list_scheduled_meetings(self, user_id: str) -> Sequence[MeetingSummary]: ...


Headers: TypeAlias = tuple[tuple[str, bytes], ...]
"""Kafka record headers in order, as (name, value) pairs; a name may repeat (dead letters)."""


class Publisher(Protocol):
    """Sends result and dead-letter records; returns once the broker has acknowledged.

    ``headers`` has no default: every record we publish carries the headers ``asyncapi.yaml``
    promises for its message (``results.result_headers``, ``schemas.dead_letter``).
    """

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
