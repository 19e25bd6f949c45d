"""salvage_ids finds what ids it can trust in a message that failed to parse."""

from __future__ import annotations

import pytest

from schemas import SalvagedIds, salvage_ids

FULL = (
    b'{"schema_version":1,"message_id":"msg-1","event_id":"evt-1","revision":7,'
    b'"organizer":{"user_id":"usr-1","email":"not an email"},"start":"tomorrow"}'
)


def test_ids_from_a_message_that_breaks_other_rules() -> None:
    assert salvage_ids(FULL) == SalvagedIds("msg-1", "evt-1", 7, "usr-1")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(FULL[:95], SalvagedIds("msg-1", "evt-1", 7, None), id="truncated"),
        pytest.param(
            b'{"event_id":"caf\\u00e9","revision":3,', SalvagedIds(None, "caf\u00e9", 3, None),
            id="truncated-with-escape",
        ),
        pytest.param(b'{"event_id":"e","revision":3.5', SalvagedIds(None, "e", None, None),
                     id="truncated-float-revision"),
    ],
)  # fmt: skip
def test_ids_from_text_that_is_not_json(data: bytes, expected: SalvagedIds) -> None:
    assert salvage_ids(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"event_id":"' + b"e" * 129 + b'"}', id="too-long"),
        pytest.param(b'{"event_id":""}', id="empty"),
        pytest.param(b'{"event_id":42,"revision":-1}', id="wrong-types"),
        pytest.param(b'{"revision":true}', id="bool-revision"),
        pytest.param(b'{"revision":9223372036854775808}', id="revision-over-bigint"),
        pytest.param(b'{"organizer":"usr-1"}', id="organizer-not-object"),
        pytest.param(b'["evt-1"]', id="array"),
        pytest.param(b"\xff\xfe\x00", id="binary"),
        pytest.param(b'{"event_id":"\xff\xfe"', id="invalid-utf8-in-id"),
        pytest.param(b'{"event_id":"evt\\u0000"}', id="nul-in-id"),
        pytest.param(b'{"message_id":"m\\n","event_id":"e\\u007f"', id="controls-in-text"),
        pytest.param(b'{"organizer":{"user_id":"\\t"}}', id="control-in-user-id"),
        pytest.param(b'{"event_id":"e\x00v"', id="raw-nul-in-truncated-text"),
        pytest.param(b"", id="empty-bytes"),
    ],
)
def test_untrustworthy_ids_are_left_out(data: bytes) -> None:
    assert salvage_ids(data) == SalvagedIds()


def test_an_id_with_a_control_character_is_dropped_alone() -> None:
    # The event is still named in its meeting.failed; its message_id is not (the worker then
    # correlates by topic/partition/offset).
    data = b'{"message_id":"msg\\u0000","event_id":"evt-1","revision":2,"title":"\\u0000"}'
    assert salvage_ids(data) == SalvagedIds(None, "evt-1", 2, None)
