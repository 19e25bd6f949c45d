"""The services one benchmark shares: broker, Postgres, the Zoom emulator and connected users.

Users are spread over several Zoom accounts because Zoom limits requests per *account* (Pro:
20 creates/s) and the worker paces itself per account below that; the emulator's per-host daily
limit (100 creates/updates) is raised so that a run is limited by the worker, not by the quota.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from devservices import create_database, kafka_service, postgres_service
from devservices.kafka import create_topics
from devservices.zoom_emulator import ZoomEmulator
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import migrations
from token_store import KeyRing, TokenStore, ZoomOAuth
from token_store.crypto import generate_key
from worker.runtime.http import http_client

CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
REDIRECT_URI = "http://localhost/zoom/callback"
PARTITIONS = 12
RESULT_TOPICS = ("meeting.linked", "meeting.failed", "dlq")


@dataclass
class Stack:
    bootstrap: str
    idempotence: bool
    dsn: str
    zoom: ZoomEmulator
    keys: str
    broker: str = ""  # which broker (devservices.kafka Source): figures differ between them
    organizers: list[str] = field(default_factory=list)  # our user ids, round-robin over accounts
    zoom_user_of: dict[str, str] = field(default_factory=dict)
    account_of: dict[str, str] = field(default_factory=dict)

    def topics(self, prefix: str) -> dict[str, str]:
        return {
            "TOPIC_EVENT_CREATED": f"{prefix}.event.created",
            "TOPIC_EVENT_UPDATED": f"{prefix}.event.updated",
            "TOPIC_EVENT_DELETED": f"{prefix}.event.deleted",
            "TOPIC_MEETING_LINKED": f"{prefix}.meeting.linked",
            "TOPIC_MEETING_FAILED": f"{prefix}.meeting.failed",
            "TOPIC_DEAD_LETTER": f"{prefix}.dlq",
        }

    def env(self, prefix: str, port: int, **extra: str) -> dict[str, str]:
        """The worker's environment for a run whose topics start with ``prefix``."""
        return {
            **self.topics(prefix),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_GROUP_ID": f"{prefix}.group",
            "KAFKA_ENABLE_IDEMPOTENCE": str(self.idempotence).lower(),
            "DATABASE_URL": self.dsn,
            "TOKEN_ENCRYPTION_KEYS": self.keys,
            "ZOOM_CLIENT_ID": CLIENT_ID,
            "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
            "ZOOM_API_BASE_URL": self.zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": self.zoom.oauth_base_url,
            "HTTP_PORT": str(port),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "SHUTDOWN_GRACE_SECONDS": "10",
            **extra,
        }

    async def create_topics(self, prefix: str) -> None:
        await create_topics(self.bootstrap, list(self.topics(prefix).values()), PARTITIONS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def stack() -> Iterator[Stack]:
    with ExitStack() as stack:
        kafka = stack.enter_context(kafka_service())
        postgres = stack.enter_context(postgres_service())
        zoom = stack.enter_context(ZoomEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
        zoom.daily_limit = 10**9
        dsn = create_database(postgres.url, f"zoom_bench_{secrets.token_hex(3)}")
        migrations.apply(dsn)
        yield Stack(kafka.bootstrap_servers, kafka.supports_idempotence, dsn, zoom,
                    f"bench:{generate_key()}", broker=kafka.source)  # fmt: skip


async def connect_users(stack: Stack, prefix: str, users: int, accounts: int) -> list[str]:
    """Connect ``users`` organizers through the OAuth code flow, spread over ``accounts``."""
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(stack.dsn, open=False)
    await pool.open()
    async with http_client() as http:
        oauth = ZoomOAuth(
            http, stack.zoom.oauth_base_url, stack.zoom.api_base_url, CLIENT_ID, CLIENT_SECRET
        )
        store = TokenStore(pool, KeyRing.parse(stack.keys), oauth)
        ours: list[str] = []

        async def connect(i: int) -> None:
            user_id, account = f"{prefix}-u{i}", f"{prefix}-acct{i % accounts}"
            zoom_user = stack.zoom.add_user(f"{user_id}@zoom.example", "pro", account)
            verifier = secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            code = stack.zoom.authorize(
                zoom_user.id, REDIRECT_URI, code_challenge=challenge.rstrip(b"=").decode()
            )
            await store.connect(user_id, code, verifier, REDIRECT_URI)
            stack.zoom_user_of[user_id] = zoom_user.id
            stack.account_of[user_id] = account
            ours.append(user_id)

        for start in range(0, users, 20):
            await asyncio.gather(*(connect(i) for i in range(start, min(users, start + 20))))
    await pool.close()
    return sorted(ours, key=lambda u: int(u.rsplit("-u", 1)[1]))
