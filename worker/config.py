"""Settings from environment variables, validated once at start-up.

Every problem is reported on its own line (the variable, what is wrong, an example) and the
process exits with code 2. Secret values are held as ``SecretStr`` and never echoed, not even
when they are the thing that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from token_store.crypto import KeyRing

SECRET_NAMES = frozenset(
    {"DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "ZOOM_CLIENT_SECRET", "KAFKA_SASL_PASSWORD",
     "CONNECT_TICKET_SECRET", "ZOOM_WEBHOOK_SECRET_TOKEN"}
)  # fmt: skip

EXAMPLES: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
    "DATABASE_URL": "postgresql://zoom_worker@db:5432/zoom_worker",
    "TOKEN_ENCRYPTION_KEYS": "k2:<base64 of 32 random bytes>,k1:<older key>",
    "ZOOM_CLIENT_ID": "aBcD1234efGh",
    "ZOOM_CLIENT_SECRET": "<from the Zoom app's credentials page>",
    "ZOOM_API_BASE_URL": "https://api.zoom.us/v2",
    "ZOOM_OAUTH_BASE_URL": "https://zoom.us",
    "HTTP_PORT": "8080",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "MAX_IN_FLIGHT": "64",
    "SERVE_PORT": "8000",
    "CONNECT_TICKET_SECRET": "<32+ random bytes, base64; shared with Talivo's backend>",
    "CONNECT_RETURN_URL_ALLOWLIST": "https://app.talivo.com/settings/,https://talivo.com",
    "ZOOM_WEBHOOK_SECRET_TOKEN": "<from the Zoom app's Feature page>",
    "ZOOM_REDIRECT_URI": "https://zoom.talivo.com/zoom/callback",
}

_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")

Requirement = Literal["kafka", "database", "keys", "zoom", "serve", "ticket"]
REQUIRED_BY: dict[Requirement, tuple[str, ...]] = {
    "kafka": ("KAFKA_BOOTSTRAP_SERVERS",),
    "database": ("DATABASE_URL",),
    "keys": ("TOKEN_ENCRYPTION_KEYS",),
    "zoom": ("ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"),
    "serve": (
        "CONNECT_TICKET_SECRET",
        "CONNECT_RETURN_URL_ALLOWLIST",
        "ZOOM_WEBHOOK_SECRET_TOKEN",
        "ZOOM_REDIRECT_URI",
    ),
    "ticket": ("CONNECT_TICKET_SECRET",),
}


class Settings(BaseModel):
    """The whole configuration; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str | None = Field(None, alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_group_id: str = Field("zoom-worker", alias="KAFKA_GROUP_ID", min_length=1)
    topic_event_created: str = Field("event.created", alias="TOPIC_EVENT_CREATED", min_length=1)
    topic_event_updated: str = Field("event.updated", alias="TOPIC_EVENT_UPDATED", min_length=1)
    topic_event_deleted: str = Field("event.deleted", alias="TOPIC_EVENT_DELETED", min_length=1)
    topic_meeting_linked: str = Field("meeting.linked", alias="TOPIC_MEETING_LINKED", min_length=1)
    topic_meeting_failed: str = Field("meeting.failed", alias="TOPIC_MEETING_FAILED", min_length=1)
    topic_dead_letter: str = Field("zoom-worker.dlq", alias="TOPIC_DEAD_LETTER", min_length=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str | None = Field(None, alias="KAFKA_SSL_CAFILE")
    # Brokers without InitProducerId (Tansu) need this off; real Kafka keeps it on.
    kafka_enable_idempotence: bool = Field(True, alias="KAFKA_ENABLE_IDEMPOTENCE")
    kafka_session_timeout_ms: int = Field(10_000, alias="KAFKA_SESSION_TIMEOUT_MS", ge=1000)
    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    token_encryption_keys: SecretStr | None = Field(None, alias="TOKEN_ENCRYPTION_KEYS")
    zoom_client_id: str | None = Field(None, alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr | None = Field(None, alias="ZOOM_CLIENT_SECRET")
    zoom_api_base_url: str = Field("https://api.zoom.us/v2", alias="ZOOM_API_BASE_URL")
    zoom_oauth_base_url: str = Field("https://zoom.us", alias="ZOOM_OAUTH_BASE_URL")
    http_port: int = Field(8080, alias="HTTP_PORT", ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["json", "console"] = Field("json", alias="LOG_FORMAT")
    max_in_flight: int = Field(64, alias="MAX_IN_FLIGHT", ge=1, le=10_000)
    max_in_flight_per_organizer: int = Field(8, alias="MAX_IN_FLIGHT_PER_ORGANIZER", ge=1)
    max_buffered: int = Field(1024, alias="MAX_BUFFERED_MESSAGES", ge=1, le=1_000_000)
    shutdown_grace_seconds: float = Field(25.0, alias="SHUTDOWN_GRACE_SECONDS", gt=0)
    zoom_retry_budget_seconds: float = Field(30.0, alias="ZOOM_RETRY_BUDGET_SECONDS", gt=0)
    token_refresh_margin_seconds: float = Field(300.0, alias="TOKEN_REFRESH_MARGIN_SECONDS", ge=0)
    # The connect side (``zoom-worker serve``, worker/web/).
    serve_port: int = Field(8000, alias="SERVE_PORT", ge=0, le=65535)
    connect_ticket_secret: SecretStr | None = Field(None, alias="CONNECT_TICKET_SECRET")
    connect_return_url_allowlist: str = Field("", alias="CONNECT_RETURN_URL_ALLOWLIST")
    zoom_webhook_secret_token: SecretStr | None = Field(None, alias="ZOOM_WEBHOOK_SECRET_TOKEN")
    zoom_redirect_uri: str | None = Field(None, alias="ZOOM_REDIRECT_URI")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value is not None and not all(_HOST_PORT.match(p.strip()) for p in value.split(",")):
            raise ValueError("must be a comma-separated list of host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("postgresql", "postgres") or not (
                parts.hostname or parts.query
            ):
                raise ValueError("must be a postgresql:// URL with a host")
        return value

    @field_validator("token_encryption_keys")
    @classmethod
    def _key_ring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            KeyRing.parse(value.get_secret_value())  # raises ValueError naming only key ids
        return value

    @field_validator("zoom_api_base_url", "zoom_oauth_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL")
        return value.rstrip("/")

    @field_validator("connect_ticket_secret")
    @classmethod
    def _ticket_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @field_validator("connect_return_url_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        from worker.web.return_urls import ReturnUrlAllowlist

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

    @property
    def event_topics(self) -> tuple[str, str, str]:
        return (self.topic_event_created, self.topic_event_updated, self.topic_event_deleted)

    def key_ring(self) -> KeyRing:
        assert self.token_encryption_keys is not None
        return KeyRing.parse(self.token_encryption_keys.get_secret_value())

    def dsn(self) -> str:
        assert self.database_url is not None
        return self.database_url.get_secret_value()


class ConfigError(Exception):
    """The environment is not a usable configuration; ``problems`` has one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(env: Mapping[str, str], require: Iterable[Requirement] = ()) -> Settings:
    """Build settings from ``env``; raise ``ConfigError`` listing every problem at once."""
    problems: list[str] = []
    present = {k: v for k, v in env.items() if v != ""}
    for section in require:
        for name in REQUIRED_BY[section]:
            if name not in present:
                problems.append(_line(name, "is required but not set"))
    try:
        settings = Settings.model_validate(present)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "configuration"
            problems.append(_line(name, _describe(error["msg"])))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings


def _describe(message: str) -> str:
    return message.removeprefix("Value error, ").replace("Input should be", "should be")


def _line(name: str, what: str) -> str:
    example = EXAMPLES.get(name)
    hint = f" (example: {name}={example})" if example else ""
    return f"config error: {name} {what}{hint}"
