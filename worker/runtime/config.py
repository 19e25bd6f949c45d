"""Settings from environment variables, validated once at start-up.

Every problem is reported on its own line (the variable, what is wrong, an example) and the
process exits with code 2. Secret values are held as ``SecretStr`` and never echoed, not even
when they are the thing that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import ClassVar, Literal, TypeVar, overload
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from token_store.crypto import KeyRing

SECRET_NAMES = frozenset(
    {"DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "ZOOM_CLIENT_SECRET", "KAFKA_SASL_PASSWORD"}
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
}

_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")

# A command names the sections it needs; each section is the variables it cannot do without.
Requirement = str


class ServiceSettings(BaseModel):
    """What both processes (``run`` and ``serve``) read: database, keys, Zoom, logging.

    Field aliases are the environment variable names. ``SECTIONS`` maps each requirement a
    command may name to the variables it makes mandatory.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    EXAMPLES: ClassVar[dict[str, str]] = EXAMPLES
    SECTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "database": ("DATABASE_URL",),
        "keys": ("TOKEN_ENCRYPTION_KEYS",),
        "zoom": ("ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"),
    }

    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    token_encryption_keys: SecretStr | None = Field(None, alias="TOKEN_ENCRYPTION_KEYS")
    zoom_client_id: str | None = Field(None, alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr | None = Field(None, alias="ZOOM_CLIENT_SECRET")
    zoom_api_base_url: str = Field("https://api.zoom.us/v2", alias="ZOOM_API_BASE_URL")
    zoom_oauth_base_url: str = Field("https://zoom.us", alias="ZOOM_OAUTH_BASE_URL")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["json", "console"] = Field("json", alias="LOG_FORMAT")
    token_refresh_margin_seconds: float = Field(300.0, alias="TOKEN_REFRESH_MARGIN_SECONDS", ge=0)

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

    def key_ring(self) -> KeyRing:
        assert self.token_encryption_keys is not None
        return KeyRing.parse(self.token_encryption_keys.get_secret_value())

    def dsn(self) -> str:
        assert self.database_url is not None
        return self.database_url.get_secret_value()


class Settings(ServiceSettings):
    """The worker's configuration (``run``, ``migrate``, ``dlq``, ``tokens``)."""

    SECTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        **ServiceSettings.SECTIONS,
        "kafka": ("KAFKA_BOOTSTRAP_SERVERS",),
    }

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
    http_port: int = Field(8080, alias="HTTP_PORT", ge=0, le=65535)
    max_in_flight: int = Field(64, alias="MAX_IN_FLIGHT", ge=1, le=10_000)
    max_in_flight_per_organizer: int = Field(8, alias="MAX_IN_FLIGHT_PER_ORGANIZER", ge=1)
    max_buffered: int = Field(1024, alias="MAX_BUFFERED_MESSAGES", ge=1, le=1_000_000)
    shutdown_grace_seconds: float = Field(25.0, alias="SHUTDOWN_GRACE_SECONDS", gt=0)
    zoom_retry_budget_seconds: float = Field(30.0, alias="ZOOM_RETRY_BUDGET_SECONDS", gt=0)
    database_pool_timeout_seconds: float = Field(30.0, alias="DATABASE_POOL_TIMEOUT_SECONDS", gt=0)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value is not None and not all(_HOST_PORT.match(p.strip()) for p in value.split(",")):
            raise ValueError("must be a comma-separated list of host:port")
        return value

    @property
    def event_topics(self) -> tuple[str, str, str]:
        return (self.topic_event_created, self.topic_event_updated, self.topic_event_deleted)


class ConfigError(Exception):
    """The environment is not a usable configuration; ``problems`` has one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


S = TypeVar("S", bound=ServiceSettings)


@overload
def load_settings(env: Mapping[str, str], require: Iterable[Requirement] = ()) -> Settings: ...
@overload
def load_settings(env: Mapping[str, str], require: Iterable[Requirement], model: type[S]) -> S: ...
def load_settings(
    env: Mapping[str, str],
    require: Iterable[Requirement] = (),
    model: type[ServiceSettings] = Settings,
) -> ServiceSettings:
    """Build ``model`` from ``env``; raise ``ConfigError`` listing every problem at once."""
    problems: list[str] = []
    present = {k: v for k, v in env.items() if v != ""}
    for section in require:
        for name in model.SECTIONS[section]:
            if name not in present:
                problems.append(_line(name, "is required but not set", model.EXAMPLES))
    try:
        settings = model.model_validate(present)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "configuration"
            problems.append(_line(name, _describe(error["msg"]), model.EXAMPLES))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings


def _describe(message: str) -> str:
    return message.removeprefix("Value error, ").replace("Input should be", "should be")


def _line(name: str, what: str, examples: Mapping[str, str]) -> str:
    example = examples.get(name)
    hint = f" (example: {name}={example})" if example else ""
    return f"config error: {name} {what}{hint}"
