"""Settings from environment variables, validated once at start-up.

Every problem is reported on its own line (the variable, what is wrong, an example) and the
process exits with code 2. Secret values are held as ``SecretStr`` and never echoed, not even
when they are the thing that is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from typing import ClassVar, Literal, TypeVar, overload
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

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
    "KAFKA_SSL_CAFILE": "/etc/kafka-tls/ca.crt",
    "KAFKA_SSL_CERTFILE": "/etc/kafka-tls/tls.crt",
    "KAFKA_SSL_KEYFILE": "/etc/kafka-tls/tls.key",
    "MAX_IN_FLIGHT": "64",
}

_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")

# A command names the sections it needs; each section is the variables it cannot do without.
Requirement = str
T = TypeVar("T")


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
    database_prepared_statements: bool = Field(True, alias="DATABASE_PREPARED_STATEMENTS")
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
    def _zoom_url(cls, value: str) -> str:
        # Tokens and client secrets travel on these: https (TLS 1.3, worker/runtime/http.py),
        # plain http only to this host (the emulator, a local proxy).
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL: https://, or http:// to a loopback host")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must be https:// (http:// only to localhost, 127.0.0.0/8 or ::1)")
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
        None, alias="KAFKA_SASL_MECHANISM", validate_default=True
    )
    kafka_sasl_username: str | None = Field(
        None, alias="KAFKA_SASL_USERNAME", validate_default=True
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, alias="KAFKA_SASL_PASSWORD", validate_default=True
    )
    # TLS to the brokers (SSL, SASL_SSL): the CA bundle that signed them (default: the system's)
    # and a client certificate with its key, for brokers that require one.
    kafka_ssl_cafile: str | None = Field(None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(None, alias="KAFKA_SSL_KEYFILE")
    # Brokers without InitProducerId (Tansu) need this off; real Kafka keeps it on.
    kafka_enable_idempotence: bool = Field(True, alias="KAFKA_ENABLE_IDEMPOTENCE")
    kafka_session_timeout_ms: int = Field(10_000, alias="KAFKA_SESSION_TIMEOUT_MS", ge=1000)
    http_port: int = Field(8080, alias="HTTP_PORT", ge=0, le=65535)
    # /healthz fails when the consume loop has work and made no progress for this long.
    liveness_stall_seconds: float = Field(300.0, alias="LIVENESS_STALL_SECONDS", gt=0)
    max_in_flight: int = Field(64, alias="MAX_IN_FLIGHT", ge=1, le=10_000)
    max_in_flight_per_organizer: int = Field(8, alias="MAX_IN_FLIGHT_PER_ORGANIZER", ge=1)
    max_buffered: int = Field(1024, alias="MAX_BUFFERED_MESSAGES", ge=1, le=1_000_000)
    shutdown_grace_seconds: float = Field(25.0, alias="SHUTDOWN_GRACE_SECONDS", gt=0)
    zoom_retry_budget_seconds: float = Field(30.0, alias="ZOOM_RETRY_BUDGET_SECONDS", gt=0)
    database_pool_timeout_seconds: float = Field(30.0, alias="DATABASE_POOL_TIMEOUT_SECONDS", gt=0)
    database_pool_size: int = Field(16, alias="DATABASE_POOL_SIZE", ge=6, le=1000)
    # How this replica's connections show in pg_stat_activity.
    database_application_name: str = Field(
        "zoom-worker", alias="DATABASE_APPLICATION_NAME", min_length=1, max_length=63
    )
    # Zoom's per-account ceilings (calls a second; Pro's by default) and who keeps to them:
    # every replica together (a schedule in Postgres) or each process alone.
    zoom_medium_per_second: float = Field(20.0, alias="ZOOM_MEDIUM_PER_SECOND", gt=0)
    zoom_light_per_second: float = Field(30.0, alias="ZOOM_LIGHT_PER_SECOND", gt=0)
    zoom_rate_limit_scope: Literal["shared", "process"] = Field(
        "shared", alias="ZOOM_RATE_LIMIT_SCOPE"
    )
    # Shared scope: how often each replica loads the hosts at Zoom's daily limit that the
    # others found (worker/runtime/shared_daily.py).
    zoom_daily_limit_refresh_seconds: float = Field(
        5.0, alias="ZOOM_DAILY_LIMIT_REFRESH_SECONDS", gt=0
    )
    lease_seconds: float = Field(30.0, alias="LEASE_SECONDS", ge=1)
    # Retries the worker does by itself (worker/pipeline/pending.py, retries.py).
    retry_delays_seconds: tuple[float, ...] = Field(
        (10.0, 60.0, 300.0, 900.0, 1800.0), alias="RETRY_DELAYS_SECONDS", min_length=1
    )
    retry_horizon_seconds: float = Field(86_400.0, alias="RETRY_HORIZON_SECONDS", gt=0)
    retry_rate_per_second: float = Field(10.0, alias="RETRY_RATE_PER_SECOND", gt=0)
    retry_poll_seconds: float = Field(1.0, alias="RETRY_POLL_SECONDS", gt=0)
    retry_lease_seconds: float = Field(60.0, alias="RETRY_LEASE_SECONDS", gt=0)
    # The circuit breaker on Zoom (worker/zoom/breaker.py).
    breaker_failure_ratio: float = Field(0.5, alias="BREAKER_FAILURE_RATIO", gt=0, le=1)
    breaker_min_calls: int = Field(10, alias="BREAKER_MIN_CALLS", ge=1)
    breaker_window_seconds: float = Field(10.0, alias="BREAKER_WINDOW_SECONDS", gt=0)
    breaker_probe_interval_seconds: float = Field(5.0, alias="BREAKER_PROBE_INTERVAL_SECONDS", gt=0)

    @field_validator("retry_delays_seconds", mode="before")
    @classmethod
    def _delays(cls, value: object) -> object:
        # "10,60,300": a comma-separated list, as an environment variable holds it.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("retry_delays_seconds")
    @classmethod
    def _positive_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) <= 0:
            raise ValueError("every delay must be positive")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value is not None and not all(_HOST_PORT.match(p.strip()) for p in value.split(",")):
            raise ValueError("must be a comma-separated list of host:port")
        return value

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_mechanism(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol")
        if protocol is not None and protocol.startswith("SASL_") and value is None:
            raise ValueError(f"is required when KAFKA_SECURITY_PROTOCOL is {protocol}")
        if protocol is not None and not protocol.startswith("SASL_") and value is not None:
            raise ValueError(f"is set but KAFKA_SECURITY_PROTOCOL {protocol} uses no SASL")
        return value

    @field_validator("kafka_sasl_username", "kafka_sasl_password")
    @classmethod
    def _sasl_credential(cls, value: T, info: ValidationInfo) -> T:
        if value is None and info.data.get("kafka_sasl_mechanism") is not None:
            raise ValueError("is required when KAFKA_SASL_MECHANISM is set")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _ssl_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Set with a protocol that uses no TLS, a file would be ignored: plaintext, silently.
        if value is None:
            return value
        protocol = info.data.get("kafka_security_protocol")
        if protocol is not None and not protocol.endswith("SSL"):
            raise ValueError(f"is set but KAFKA_SECURITY_PROTOCOL {protocol} uses no TLS")
        if not os.path.isfile(value):
            raise ValueError("names no file")
        if info.field_name == "kafka_ssl_keyfile" and info.data.get("kafka_ssl_certfile") is None:
            raise ValueError("is set without KAFKA_SSL_CERTFILE")
        return value

    @property
    def event_topics(self) -> tuple[str, str, str]:
        return (self.topic_event_created, self.topic_event_updated, self.topic_event_deleted)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: the only hosts Zoom may be reached at over http."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
            field = model.model_fields.get(name)  # a default checked: named by field, not alias
            name = field.alias if field is not None and field.alias else name
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
