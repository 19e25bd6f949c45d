"""The emulator's meeting event notifications (``meeting.updated``, ``meeting.deleted``,
``meeting.started``, ``meeting.ended``), shaped as Zoom's Meetings webhook events.

Sent for every change, whoever makes it: an API call (the worker's own PATCH and DELETE come
back as webhooks, as on Zoom) and the control API's host operations (a host editing, deleting,
starting or ending a meeting in Zoom's own apps). Only for hosts who have the app installed (a
grant not revoked), only to a subscribed endpoint (``WebhookSender``), and only when a field
actually changed (an update that changes nothing notifies nothing).

- ``meeting.updated``: ``object`` = the meeting ``id`` and the changed fields' new values,
  ``old_object`` = their earlier values; ``operator``/``operator_id`` who made it.
- ``meeting.deleted``: ``object`` = the meeting (id, uuid, host_id, topic, type, start_time,
  duration, timezone), ``operator``/``operator_id``.
- ``meeting.started`` / ``meeting.ended``: ``object`` = the meeting, with the actual
  ``start_time`` (and ``end_time``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devservices.zoom_emulator.meetings import iso, update
from devservices.zoom_emulator.models import MeetingRecord, UserRecord
from devservices.zoom_emulator.state import World, zoom_error

_FIELDS = ("topic", "type", "start_time", "duration", "timezone", "agenda")


def snapshot(record: MeetingRecord) -> dict[str, Any]:
    """The fields whose change ``meeting.updated`` reports, as Zoom writes them."""
    return {
        "topic": record.topic,
        "type": record.type,
        "start_time": iso(record.start_time) if record.start_time is not None else None,
        "duration": record.duration,
        "timezone": record.timezone,
        "agenda": record.agenda,
    }


def meeting_object(record: MeetingRecord) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "uuid": record.uuid,
        "id": record.id,
        "host_id": record.host_id,
        "topic": record.topic,
        "type": record.type,
        "duration": record.duration,
        "timezone": record.timezone,
    }
    if record.start_time is not None:
        answer["start_time"] = iso(record.start_time)
    return answer


def updated(
    world: World, record: MeetingRecord, before: dict[str, Any], operator: UserRecord
) -> bool:
    """Notify the change from ``before`` (a ``snapshot``) to ``record`` now, if any."""
    after = snapshot(record)
    changed = [name for name in _FIELDS if after[name] != before[name]]
    if not changed:
        return False
    payload = _operated(world, record, operator) | {
        "object": {"id": record.id} | {name: after[name] for name in changed},
        "old_object": {"id": record.id} | {name: before[name] for name in changed},
    }
    return _send(world, "meeting.updated", record, payload)


def deleted(world: World, record: MeetingRecord, operator: UserRecord) -> bool:
    payload = _operated(world, record, operator) | {"object": meeting_object(record)}
    return _send(world, "meeting.deleted", record, payload)


def started(world: World, record: MeetingRecord, at: datetime) -> bool:
    meeting = meeting_object(record) | {"start_time": iso(at)}
    return _send(world, "meeting.started", record, {"account_id": _account(world, record),
                                                    "object": meeting})  # fmt: skip


def ended(world: World, record: MeetingRecord, started_at: datetime, at: datetime) -> bool:
    meeting = meeting_object(record) | {"start_time": iso(started_at), "end_time": iso(at)}
    return _send(world, "meeting.ended", record, {"account_id": _account(world, record),
                                                  "object": meeting})  # fmt: skip


# -- what a host does in Zoom's own apps (the control API) ----------------------------------------


def host_edit(world: World, meeting_id: int, body: dict[str, Any]) -> bool:
    """The host changes the meeting in Zoom (same fields as ``PATCH /v2/meetings/{id}``)."""
    with world.lock:
        record = _live(world, meeting_id)
        before = snapshot(record)
        update(record, body)
        return updated(world, record, before, world.users[record.host_id])


def host_delete(world: World, meeting_id: int) -> bool:
    with world.lock:
        record = _live(world, meeting_id)
        record.deleted = True
        return deleted(world, record, world.users[record.host_id])


def host_start(world: World, meeting_id: int) -> bool:
    with world.lock:
        record = _live(world, meeting_id)
        record.started_at = world.now()
        return started(world, record, record.started_at)


def host_end(world: World, meeting_id: int) -> bool:
    with world.lock:
        record = _live(world, meeting_id)
        began = record.started_at or world.now()
        record.started_at = None
        return ended(world, record, began, world.now())


def _live(world: World, meeting_id: int) -> MeetingRecord:
    record = world.meetings.get(meeting_id)
    if record is None or record.deleted:
        raise zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
    return record


def _account(world: World, record: MeetingRecord) -> str:
    host = world.users.get(record.host_id)
    return host.account_id if host is not None else ""


def _operated(world: World, record: MeetingRecord, operator: UserRecord) -> dict[str, Any]:
    return {
        "account_id": _account(world, record),
        "operator": operator.email,
        "operator_id": operator.id,
        "operation": "single",
    }


def _send(world: World, event: str, record: MeetingRecord, payload: dict[str, Any]) -> bool:
    if not world.installed(record.host_id):
        return False
    payload["time_stamp"] = event_ts = world.next_event_ts()
    return world.webhooks.send(event, payload, event_ts)
