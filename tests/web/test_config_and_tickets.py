"""The allow list, the ticket format, serve's settings and the connect-ticket command (the
ticket format in detail: test_tickets.py; return URLs: test_return_urls.py)."""

from __future__ import annotations

import time

import pytest

from connect.config import ConnectSettings
from connect.errors import TicketBadSignature, TicketMalformed
from connect.return_urls import ReturnUrlAllowlist
from connect.tickets import make_ticket, read_ticket
from worker.cli import main
from worker.runtime.config import ConfigError, load_settings

SECRET = "s" * 32
ALLOW = ReturnUrlAllowlist.parse("https://app.talivo.com/settings/, http://localhost:3000")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.talivo.com/settings/", True),
        ("https://app.talivo.com/settings/zoom?tab=1", True),
        ("https://APP.talivo.com:443/settings", True),
        ("http://localhost:3000/anything", True),
        ("https://app.talivo.com/settingsevil", False),
        ("https://app.talivo.com/other", False),
        ("http://app.talivo.com/settings/", False),
        ("https://app.talivo.com.evil.io/settings/", False),
        ("https://app.talivo.com@evil.io/settings/", False),
        ("https://evil.io\\@app.talivo.com/settings/", False),
        ("https://app.talivo.com/settings/../admin", False),
        ("https://app.talivo.com:8443/settings/", False),
        ("javascript:alert(1)//app.talivo.com/settings/", False),
        ("//app.talivo.com/settings/", False),
        ("https://app.talivo.com/settings/\n", False),
    ],
)
def test_return_url_allow_list(url: str, allowed: bool) -> None:
    assert ALLOW.allows(url) is allowed


def test_allow_list_entries_must_be_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        ReturnUrlAllowlist.parse("app.talivo.com")


def test_ticket_round_trip_and_signature_covers_the_payload() -> None:
    now = time.time()
    ticket = make_ticket(SECRET.encode(), "u-1", "https://app.talivo.com/settings/", now=now)
    read = read_ticket(SECRET.encode(), ticket, now=now, purpose="connect")
    assert (read.user_id, read.purpose, read.expires_at) == ("u-1", "connect", int(now) + 300)
    with pytest.raises(TicketBadSignature):
        read_ticket(b"t" * 32, ticket, now=now, purpose="connect")
    with pytest.raises(TicketMalformed):
        read_ticket(SECRET.encode(), "v1." + ticket.split(".", 1)[1], now=now, purpose="connect")


def test_serve_settings_are_required_and_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONNECT_TICKET_SECRET": "too-short"}, ["serve"], ConnectSettings)
    text = "\n".join(caught.value.problems)
    assert "CONNECT_TICKET_SECRET" in text and "too-short" not in text
    with pytest.raises(ConfigError) as missing:
        load_settings({}, ["serve"], ConnectSettings)
    names = "\n".join(missing.value.problems)
    for name in ("CONNECT_RETURN_URL_ALLOWLIST", "ZOOM_WEBHOOK_SECRET_TOKEN", "ZOOM_REDIRECT_URI"):
        assert name in names
    ok = load_settings(
        {
            "CONNECT_TICKET_SECRET": SECRET,
            "CONNECT_RETURN_URL_ALLOWLIST": "https://app.talivo.com/settings/",
            "ZOOM_WEBHOOK_SECRET_TOKEN": "w",
            "ZOOM_REDIRECT_URI": "https://zoom.talivo.com/zoom/callback",
        },
        ["serve"],
        ConnectSettings,
    )
    assert ok.serve_port == 8000


def test_connect_ticket_command_prints_a_ticket_the_app_accepts(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONNECT_TICKET_SECRET", SECRET)
    argv = ["connect-ticket", "--user", "u-2", "--return-url", "https://app.talivo.com/settings/",
            "--ttl", "60", "--purpose", "disconnect"]  # fmt: skip
    assert main(argv) == 0
    ticket = capfd.readouterr().out.strip()
    read = read_ticket(SECRET.encode(), ticket, now=time.time(), purpose="disconnect")
    assert read.user_id == "u-2" and read.expires_at <= time.time() + 60
