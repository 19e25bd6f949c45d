"""TLS 1.3 to Zoom: every connection to the Meetings API and to OAuth refuses older TLS.

Against HTTPS servers on loopback with certificates from a private CA (trustme), trusted the
way an operator trusts one: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``. A server speaking at most
TLS 1.2 is refused during the handshake, before any request (and so any token) is sent; a
stock httpx client, which still accepts TLS 1.2, reaches the same server, so the refusal is
the version and nothing else. Plain http to Zoom is a configuration error, except to loopback.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.security.tls_server import TlsServer, server_context
from token_store import ZoomGrant, ZoomOAuth
from token_store.crypto import generate_key
from token_store.errors import TokenServiceUnavailable
from worker.runtime.config import ConfigError, load_settings
from worker.runtime.http import http_client, zoom_tls_context
from worker.zoom import ZoomMeetings, ZoomUnavailable

MEETING = {"id": 81234567890, "join_url": "https://zoom.test/j/81234567890", "topic": "Interview"}
TOKENS = {"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3599}


def answer(method: str, path: str) -> tuple[int, dict[str, Any]]:
    if (method, path) == ("POST", "/oauth/token"):
        return 200, TOKENS
    if method == "GET" and path.startswith("/v2/meetings/"):
        return 200, MEETING
    return 404, {"code": 404, "message": "not here"}


class Grants:
    """The worker's token edge, reduced to one fixed grant: these tests are about the wire."""

    grant = ZoomGrant("ana", "zoom-ana", "acct-1", "access-ana", datetime.now(UTC) + timedelta(1))

    async def get_access_token(self, user_id: str) -> ZoomGrant:
        return self.grant

    async def refresh_after_rejection(self, user_id: str, rejected: ZoomGrant) -> ZoomGrant:
        return self.grant


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The private CA trusted through ``SSL_CERT_FILE``, as an operator would."""
    bundle = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return bundle


@pytest.fixture
async def tls12_only(ca: trustme.CA) -> AsyncIterator[TlsServer]:
    async with TlsServer(server_context(ca, maximum=ssl.TLSVersion.TLSv1_2), answer) as server:
        yield server


@pytest.fixture
async def zoom_like(ca: trustme.CA) -> AsyncIterator[TlsServer]:
    """TLS 1.2 and 1.3, as Zoom's servers offer."""
    async with TlsServer(server_context(ca), answer) as server:
        yield server


def meetings(http: httpx.AsyncClient, server: TlsServer) -> ZoomMeetings:
    return ZoomMeetings(
        http, api_base_url=f"{server.base_url}/v2", tokens=Grants(), retry_budget_seconds=0.3,
        backoff_base_seconds=0.01, backoff_cap_seconds=0.05,
    )  # fmt: skip


def oauth(http: httpx.AsyncClient, server: TlsServer) -> ZoomOAuth:
    return ZoomOAuth(
        http, server.base_url, f"{server.base_url}/v2", "client", "client-secret",
        attempts=2, backoff_seconds=0.01,
    )  # fmt: skip


@pytest.mark.usefixtures("trusted")
async def test_the_meetings_api_refuses_a_tls12_server_before_sending_a_request(
    tls12_only: TlsServer,
) -> None:
    async with http_client(4) as http:
        with pytest.raises(ZoomUnavailable):
            await meetings(http, tls12_only).get_meeting("ana", MEETING["id"])

    assert tls12_only.connections >= 1 and len(tls12_only.refused) == tls12_only.connections
    assert tls12_only.requests == []
    # The same server, the same trust, a client that still accepts TLS 1.2: it gets through.
    async with httpx.AsyncClient() as stock:
        reached = await stock.get(f"{tls12_only.base_url}/v2/meetings/1")
    assert reached.status_code == 200 and tls12_only.versions == ["TLSv1.2"]


@pytest.mark.usefixtures("trusted")
async def test_oauth_refuses_a_tls12_server_before_sending_the_refresh_token(
    tls12_only: TlsServer,
) -> None:
    async with http_client(4) as http:
        with pytest.raises(TokenServiceUnavailable):
            await oauth(http, tls12_only).refresh("refresh-token-that-must-stay-home")

    assert tls12_only.connections == 2 and len(tls12_only.refused) == 2  # both attempts
    assert tls12_only.requests == []


@pytest.mark.usefixtures("trusted")
async def test_a_tls13_server_serves_the_meetings_api_and_oauth(zoom_like: TlsServer) -> None:
    async with http_client(4) as http:
        meeting = await meetings(http, zoom_like).get_meeting("ana", MEETING["id"])
        answered = await oauth(http, zoom_like).refresh("refresh-token")

    assert meeting.id == MEETING["id"] and answered.access_token == "new-access"
    assert zoom_like.requests == [("GET", f"/v2/meetings/{MEETING['id']}"),
                                  ("POST", "/oauth/token")]  # fmt: skip
    assert set(zoom_like.versions) == {"TLSv1.3"} and zoom_like.refused == []


@pytest.fixture
def hashed_ca_dir(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The private CA trusted through ``SSL_CERT_DIR`` (a ``c_rehash``-style directory)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to name the CA file by its subject hash")
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    subject_hash = subprocess.run(
        [openssl, "x509", "-subject_hash", "-noout", "-in", str(pem)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pem, certs / f"{subject_hash}.0")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    return certs


@pytest.mark.usefixtures("hashed_ca_dir")
async def test_a_private_ca_is_trusted_through_ssl_cert_dir(zoom_like: TlsServer) -> None:
    async with http_client(4) as http:
        meeting = await meetings(http, zoom_like).get_meeting("ana", MEETING["id"])

    assert meeting.id == MEETING["id"] and zoom_like.versions == ["TLSv1.3"]


async def test_an_untrusted_certificate_is_refused(
    zoom_like: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with http_client(4) as http:
        with pytest.raises(ZoomUnavailable):
            await meetings(http, zoom_like).get_meeting("ana", MEETING["id"])

    assert zoom_like.connections >= 1 and zoom_like.requests == []


def test_the_context_verifies_and_floors_at_tls13(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = zoom_tls_context()

    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# -- http:// to Zoom is a configuration error, except to loopback ---------------------------

SECRET = "s3cr3t-value-that-must-not-leak"
WORKER_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "DATABASE_URL": f"postgresql://worker:{SECRET}@db:5432/zoom",
    "TOKEN_ENCRYPTION_KEYS": f"k1:{generate_key()}",
    "ZOOM_CLIENT_ID": "client",
    "ZOOM_CLIENT_SECRET": SECRET,
}
SERVE_ENV = {
    **WORKER_ENV,
    "CONNECT_TICKET_SECRET": "t" * 40,
    "CONNECT_RETURN_URL_ALLOWLIST": "https://app.talivo.test/settings/",
    "ZOOM_WEBHOOK_SECRET_TOKEN": SECRET,
    "ZOOM_REDIRECT_URI": "https://zoom.talivo.test/zoom/callback",
}
ZOOM_WORKER = Path(sys.executable).with_name("zoom-worker")


@pytest.fixture
def clean_env() -> Iterator[dict[str, str]]:
    yield {k: v for k, v in os.environ.items()
           if not k.startswith(("ZOOM_", "KAFKA_", "TOPIC_", "CONNECT_", "DATABASE_"))}  # fmt: skip


@pytest.mark.parametrize(
    ("command", "env", "variable", "url"),
    [
        ("run", WORKER_ENV, "ZOOM_API_BASE_URL", "http://api.zoom.us/v2"),
        ("run", WORKER_ENV, "ZOOM_OAUTH_BASE_URL", "http://zoom.us"),
        ("serve", SERVE_ENV, "ZOOM_OAUTH_BASE_URL", "http://10.0.0.7:8080"),
        ("tokens status", WORKER_ENV, "ZOOM_API_BASE_URL", "http://127.0.0.1.nip.io/v2"),
    ],
    ids=["run-api", "run-oauth", "serve-oauth", "tokens-api-lookalike"],
)
def test_an_http_zoom_url_off_loopback_is_one_config_line_and_exit_2(
    clean_env: dict[str, str], command: str, env: dict[str, str], variable: str, url: str
) -> None:
    args = [*command.split(), *(["ana"] if command == "tokens status" else [])]
    done = subprocess.run(
        [str(ZOOM_WORKER), *args], env={**clean_env, **env, variable: url},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"config error: {variable} must be https://")
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.4.5.6/v2", "http://[::1]:9000", "http://localhost:1",
     "http://LOCALHOST", "https://api.zoom.us/v2", "https://10.0.0.7"],
)  # fmt: skip
def test_http_is_accepted_only_to_loopback(url: str) -> None:
    settings = load_settings({**WORKER_ENV, "ZOOM_API_BASE_URL": url, "ZOOM_OAUTH_BASE_URL": url})
    assert settings.zoom_api_base_url == settings.zoom_oauth_base_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.7", "http://128.0.0.1", "http://localhost.evil.test", "http://[::2]",
     "http://0.0.0.0:8080", "http://[::ffff:8.8.8.8]"],
)  # fmt: skip
def test_http_is_refused_off_loopback(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**WORKER_ENV, "ZOOM_API_BASE_URL": url})
    (line,) = caught.value.problems
    assert line.startswith("config error: ZOOM_API_BASE_URL must be https://")
