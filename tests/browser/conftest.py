"""Fixtures: the connect flow in a real headless Chromium (Debian's ``chromium``, driven by
Playwright), with the emulator as Zoom and ``zoom-worker serve`` over real sockets.

Three sites, as in production, so cookies cross sites the way they do for a recruiter:

- ``https://connect.talivo.test:<port>``: ``connect.server.serve`` (what ``zoom-worker serve``
  runs) with the settings a deployment gives it, behind a TLS-terminating proxy as behind an
  ingress: ``ZOOM_REDIRECT_URI`` is https, so the state cookie must be ``Secure``;
- ``http://127.0.0.1:<port>``: the Zoom emulator (consent page, token endpoint);
- ``https://app.talivo.test:<port>``: a stand-in for Talivo's settings page (the return URL),
  behind the same kind of proxy.

Chromium resolves both ``.test`` names to 127.0.0.1 (``--host-resolver-rules``) and accepts the
proxies' self-signed certificate. The emulator, the database and the ticket helper
(``Served.ticket``) are those of ``tests/web``. Without Chromium the tests skip, except under
``CI=true`` where that is a failure. Screenshots of the pages a recruiter sees go to
``test-logs/browser/`` (kept on success too).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from devservices.zoom_emulator import ZoomEmulator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from connect.config import ConnectSettings
from connect.server import serve
from tests.conftest import KEPT_LOGS
from tests.web import conftest as web
from tests.web.conftest import TICKET_SECRET, WEBHOOK_SECRET, Served
from token_store.crypto import generate_key
from worker.runtime.config import load_settings
from worker.runtime.health import serving

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CONNECT_HOST = "connect.talivo.test"
TALIVO_HOST = "app.talivo.test"
SCREENSHOTS = KEPT_LOGS / "browser"

# The fixtures of tests/web this module builds on (the emulator, the database pool, the key
# ring, the connect app whose ``ticket`` helper mints tickets) and its per-test leak scan.
zoom, pool, keys, served, app = web.zoom, web.pool, web.keys, web.served, web.app
no_secret_in_output = web.no_secret_in_output

# Debian's real binary first (/usr/bin/chromium is a shell wrapper around it).
_CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    """``CHROMIUM_PATH`` when set, else Debian's ``chromium``; ``None`` when there is none."""
    configured = os.environ.get("CHROMIUM_PATH")
    for candidate in (configured,) if configured else _CHROMIUM_CANDIDATES:
        found = candidate if os.access(candidate, os.X_OK) else shutil.which(candidate)
        if found:
            return found
    return None


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs the browser tests: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


# -- zoom-worker serve behind TLS -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tls_context(*hosts: str) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``hosts``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # load_cert_chain reads files only; a private temporary directory holds them briefly.
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "key.pem").write_bytes(key_pem)
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


@contextlib.asynccontextmanager
async def _tls_proxy(port: int, upstream: int, context: ssl.SSLContext) -> AsyncIterator[None]:
    """Terminates TLS on ``port`` and passes the bytes to ``127.0.0.1:upstream``."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        except (ConnectionError, ssl.SSLError):
            client_w.close()
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    return _tls_context(CONNECT_HOST, TALIVO_HOST)


@dataclass
class TalivoSite:
    """A stand-in for Talivo's settings page at the return URL: says what the query says
    about Zoom and, when a test hands it a disconnect ticket, offers "Disconnect Zoom" (a form
    posting the ticket to our ``/zoom/disconnect``, as Talivo's page would)."""

    base_url: str  # https://app.talivo.test:<port>
    connect_base_url: str
    disconnect_ticket: str | None = None

    @property
    def return_url(self) -> str:
        return f"{self.base_url}/settings/integrations?tab=zoom"

    async def settings_page(self, request: Request) -> Response:
        query = request.query_params
        if query.get("zoom") == "connected":
            status = "Zoom connected"
        elif query.get("zoom") == "error":
            status = f"Zoom was not connected: {query.get('reason', '?')}"
        else:
            status = "Zoom: nothing changed"
        form = ""
        if self.disconnect_ticket is not None:
            form = (
                f'<form method="post" action="{escape(self.connect_base_url)}/zoom/disconnect">'
                f'<input type="hidden" name="ticket" value="{escape(self.disconnect_ticket)}">'
                "<button type=submit>Disconnect Zoom</button></form>"
            )
        return HTMLResponse(
            "<!doctype html><html><head><meta charset=utf-8><title>Talivo settings</title>"
            "</head><body style='font-family: sans-serif; margin: 4em'><h1>Integrations</h1>"
            f"<p id=zoom-status>{escape(status)}</p>{form}</body></html>"
        )


@dataclass(frozen=True)
class ConnectSite:
    base_url: str  # https://connect.talivo.test:<port>, as the browser reaches it
    talivo: TalivoSite


@pytest.fixture(scope="module")
async def connect_site(
    zoom: ZoomEmulator, database_url: str, tls: ssl.SSLContext
) -> AsyncIterator[ConnectSite]:
    """``zoom-worker serve`` (``connect.server.serve``) configured as a deployment is, on
    127.0.0.1, behind a TLS proxy at ``https://connect.talivo.test:<port>``; and Talivo's page."""
    serve_port, connect_port, talivo_port, talivo_tls_port = (_free_port() for _ in range(4))
    base_url = f"https://{CONNECT_HOST}:{connect_port}"
    talivo = TalivoSite(f"https://{TALIVO_HOST}:{talivo_tls_port}", base_url)
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEYS": f"k1:{generate_key()}",
            "ZOOM_CLIENT_ID": "emu-client",
            "ZOOM_CLIENT_SECRET": "emu-secret",
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "SERVE_PORT": str(serve_port),
            "CONNECT_TICKET_SECRET": TICKET_SECRET.decode(),
            "CONNECT_RETURN_URL_ALLOWLIST": f"{talivo.base_url}/settings/",
            "ZOOM_WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
            "ZOOM_REDIRECT_URI": f"{base_url}/zoom/callback",
        },
        ["database", "keys", "zoom", "serve"],
        ConnectSettings,
    )
    talivo_app = Starlette(routes=[Route("/settings/integrations", talivo.settings_page)])
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if task.done():
                    task.result()
                    raise RuntimeError("zoom-worker serve stopped at start")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://127.0.0.1:{serve_port}/readyz")).is_success:
                        break
                await asyncio.sleep(0.05)
        async with (
            serving(talivo_app, talivo_port, host="127.0.0.1"),
            _tls_proxy(connect_port, serve_port, tls),
            _tls_proxy(talivo_tls_port, talivo_port, tls),
        ):
            yield ConnectSite(base_url, talivo)
    finally:
        stop.set()
        await task
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # serve() took them; give them back
            loop.remove_signal_handler(sig)


@pytest.fixture
def ticket(app: Served, connect_site: ConnectSite) -> Callable[..., str]:
    """Mints connect and disconnect tickets the way tests/web does (``Served.ticket``), back
    to Talivo's page unless told otherwise."""

    def mint(user_id: str, **options: Any) -> str:
        options.setdefault("return_url", connect_site.talivo.return_url)
        return app.ticket(user_id, **options)

    return mint


# -- Chromium -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the module (autouse: without it, skip before starting
    anything else)."""
    path = find_chromium()
    if path is None:
        _unavailable(
            "no Chromium found (install Debian's `chromium`: `make` does as root; "
            "or set CHROMIUM_PATH)"
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the Python package `playwright` is not installed (the dev extra has it)")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rules = f"MAP {CONNECT_HOST} 127.0.0.1, MAP {TALIVO_HOST} 127.0.0.1"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, args=[f"--host-resolver-rules={rules}"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Recruiter:
    """One browser profile (context), its tab, and ``shot(name)`` saving a screenshot of it."""

    context: BrowserContext
    page: Page
    shot: Callable[[str], Awaitable[Path]]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]


@pytest.fixture
async def recruiter(
    chromium: Browser, connect_site: ConnectSite, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[], Awaitable[Recruiter]]]:
    """Opens fresh browser profiles (each with its own cookies); closed after the test."""
    contexts: list[BrowserContext] = []
    test = _slug(request.node.name)
    connect_site.talivo.disconnect_ticket = None

    async def open_profile() -> Recruiter:
        context = await chromium.new_context(
            ignore_https_errors=True, viewport={"width": 900, "height": 600}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = await context.new_page()
        profile = len(contexts)

        async def shot(name: str) -> Path:
            path = SCREENSHOTS / f"{test}-{profile}-{_slug(name)}.png"
            await page.screenshot(path=str(path), full_page=True)
            return path

        return Recruiter(context, page, shot)

    yield open_profile
    for context in contexts:
        await context.close()
