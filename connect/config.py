"""The connect side's settings (``zoom-worker serve``, ``zoom-worker connect-ticket``).

The shared part (database, keys, Zoom client, logging) is ``ServiceSettings``; the Kafka
settings are the worker's own (``Settings``: ``KAFKA_*``, the same names and checks), used by
``serve`` to publish ``meeting.changed`` on ``TOPIC_MEETING_CHANGED`` (optional: without
``KAFKA_BOOTSTRAP_SERVERS`` Zoom's meeting webhooks are acknowledged and ignored); this adds
what only the connect pages and the webhook need. Validated the same way: one line per problem,
exit code 2, secrets never echoed.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from connect.return_urls import ReturnUrlAllowlist
from worker.runtime.config import EXAMPLES, Settings

SECRET_NAMES = frozenset(
    {"DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "ZOOM_CLIENT_SECRET", "CONNECT_TICKET_SECRET",
     "ZOOM_WEBHOOK_SECRET_TOKEN"}
)  # fmt: skip


class ConnectSettings(Settings):
    EXAMPLES: ClassVar[dict[str, str]] = {
        **EXAMPLES,
        "SERVE_PORT": "8000",
        "SERVE_METRICS_PORT": "8081",
        "CONNECT_TICKET_SECRET": "<32+ random bytes, base64; shared with Talivo's backend>",
        "CONNECT_RETURN_URL_ALLOWLIST": "https://app.talivo.com/settings/,https://talivo.com",
        "ZOOM_WEBHOOK_SECRET_TOKEN": "<from the Zoom app's Feature page>",
        "ZOOM_REDIRECT_URI": "https://zoom.talivo.com/zoom/callback",
    }
    SECTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        **Settings.SECTIONS,
        "serve": (
            "CONNECT_TICKET_SECRET",
            "CONNECT_RETURN_URL_ALLOWLIST",
            "ZOOM_WEBHOOK_SECRET_TOKEN",
            "ZOOM_REDIRECT_URI",
        ),
        "ticket": ("CONNECT_TICKET_SECRET",),
    }

    serve_port: int = Field(8000, alias="SERVE_PORT", ge=0, le=65535)
    # /metrics (and /healthz, /readyz) on a port of its own, not SERVE_PORT's public face;
    # unset: no such listener.
    serve_metrics_port: int | None = Field(None, alias="SERVE_METRICS_PORT", ge=0, le=65535)
    connect_ticket_secret: SecretStr | None = Field(None, alias="CONNECT_TICKET_SECRET")
    connect_return_url_allowlist: str = Field("", alias="CONNECT_RETURN_URL_ALLOWLIST")
    zoom_webhook_secret_token: SecretStr | None = Field(None, alias="ZOOM_WEBHOOK_SECRET_TOKEN")
    zoom_redirect_uri: str | None = Field(None, alias="ZOOM_REDIRECT_URI")
    # Where serve publishes what Zoom's meeting webhooks report (connect/meeting_sync.py).
    topic_meeting_changed: str = Field(
        "meeting.changed", alias="TOPIC_MEETING_CHANGED", min_length=1
    )

    @field_validator("connect_ticket_secret")
    @classmethod
    def _ticket_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @field_validator("connect_return_url_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        ReturnUrlAllowlist.parse(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("zoom_redirect_uri")
    @classmethod
    def _redirect_uri(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
                raise ValueError("must be an http(s):// URL without a fragment")
        return value
