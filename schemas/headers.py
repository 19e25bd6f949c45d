"""Kafka header names on the messages we publish (producers of calendar events may set them too).

Headers are informative: readers decide by topic and ``schema_version`` in the value, so a
record without headers is still valid.
"""

from __future__ import annotations

from typing import Final

MESSAGE_TYPE: Final = "message-type"
"""The topic's message name, such as ``meeting.linked``, as UTF-8."""

SCHEMA_VERSION: Final = "schema-version"
"""The value's ``schema_version`` as decimal UTF-8 text, such as ``1``."""

CONTENT_TYPE: Final = "content-type"
"""Always ``application/json``."""


def message_headers(message_type: str, schema_version: int = 1) -> list[tuple[str, bytes]]:
    """The headers to put on a record carrying a ``message_type`` value."""
    return [
        (MESSAGE_TYPE, message_type.encode()),
        (SCHEMA_VERSION, str(schema_version).encode()),
        (CONTENT_TYPE, b"application/json"),
    ]
