"""``zoom-worker tokens ...`` as an operator runs it: real process, env config, no token shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from devservices.zoom_emulator import ZoomEmulator

from token_store.crypto import generate_key

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(zoom: ZoomEmulator, database_url: str, key_spec: str):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def run(*args: str, stdin: str = "", keys: str = key_spec) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEYS": keys,
            "ZOOM_CLIENT_ID": CLIENT_ID,
            "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "LOG_LEVEL": "DEBUG",
        }
        done = subprocess.run(
            [sys.executable, "-m", "worker", "tokens", *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        seen.append(done.stdout + done.stderr)
        return done

    yield run
    output = "".join(seen)
    assert all(secret not in output for secret in zoom.issued_secrets())
    assert CLIENT_SECRET not in output


def test_connect_status_rotate_disconnect(run, zoom: ZoomEmulator, key_spec: str) -> None:  # type: ignore[no-untyped-def]
    user = zoom.add_user("cli@example.com")
    code = zoom.authorize(user.id, redirect_uri=REDIRECT_URI)

    connected = run("connect", "u-cli", "--redirect-uri", REDIRECT_URI, stdin=f"{code}\n")
    assert connected.returncode == 0, connected.stderr
    assert f"zoom_user_id: {user.id}" in connected.stdout

    status = run("status", "u-cli", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["zoom_account_id"] == user.account_id and shown["key_id"] == "k1"
    assert not any("token" in name and name != "access_expires_at" for name in shown)

    new_keys = f"k2:{generate_key()},{key_spec}"
    rotated = run("rotate-key", "--batch-size", "10", keys=new_keys)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 1 connection(s) under key id k2" in rotated.stdout
    assert "key_id: k2" in run("status", "u-cli", keys=new_keys).stdout

    gone = run("disconnect", "u-cli", keys=new_keys)
    assert gone.returncode == 0, gone.stderr
    assert zoom.calls("POST /oauth/revoke") >= 1
    after = run("status", "u-cli")
    assert after.returncode == 1 and "not connected" in after.stdout


def test_errors_are_reported_by_reason_without_secrets(run, zoom: ZoomEmulator) -> None:  # type: ignore[no-untyped-def]
    user = zoom.add_user("cli-bad@example.com")
    code = zoom.authorize(user.id, redirect_uri=REDIRECT_URI)
    wrong_uri = run("connect", "u-cli-bad", "--redirect-uri", "http://elsewhere/cb", stdin=code)
    assert wrong_uri.returncode == 1
    assert "error (zoom_unavailable)" in wrong_uri.stderr
    assert run("disconnect", "u-cli-bad").returncode == 1
    missing = run("status")
    assert missing.returncode == 2  # argparse: the user id is required
