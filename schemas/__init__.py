"""The message contracts: typed models for the six topics, parsed at the edge.

Depends on nothing of ours. The JSON Schema files in ``schemas/v1`` and ``asyncapi.yaml`` describe
the same contract for other teams; ``tests/schemas`` keeps the two from drifting apart.
"""

from schemas.changes import ChangedMeeting, MeetingChange, MeetingChanged, parse_changed
from schemas.errors import ContractError
from schemas.events import (
    Attendee,
    EventCreated,
    EventDeleted,
    EventKind,
    EventUpdated,
    EventUpsert,
    Organizer,
    SourceEvent,
    parse_event,
)
from schemas.fields import SCHEMA_VERSION
from schemas.meetings import (
    FailedAction,
    LinkedAction,
    MeetingDetails,
    MeetingFailed,
    MeetingLinked,
    ReplacedMeeting,
    parse_failed,
    parse_linked,
)
from schemas.reasons import SENTENCES, FailureReason
from schemas.salvage import SalvagedIds, salvage_ids

__all__ = [
    "SCHEMA_VERSION",
    "SENTENCES",
    "Attendee",
    "ChangedMeeting",
    "ContractError",
    "EventCreated",
    "EventDeleted",
    "EventKind",
    "EventUpdated",
    "EventUpsert",
    "FailedAction",
    "FailureReason",
    "LinkedAction",
    "MeetingChange",
    "MeetingChanged",
    "MeetingDetails",
    "MeetingFailed",
    "MeetingLinked",
    "Organizer",
    "ReplacedMeeting",
    "SalvagedIds",
    "SourceEvent",
    "parse_changed",
    "parse_event",
    "parse_failed",
    "parse_linked",
    "salvage_ids",
]
