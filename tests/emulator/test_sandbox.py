"""``zoom-dev sandbox`` serves the emulator standalone and prints how to reach it."""

from __future__ import annotations

import subprocess
import sys

import httpx


def test_sandbox_prints_env_seeds_users_and_applies_faults() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devservices",
            "sandbox",
            "--user",
            "ana@example.com:business",
            "--fault",
            "kind=error,status=503,count=1,endpoint=GET /v2/users/me",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "console"},
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = process.stdout.readline()
            assert line, f"sandbox exited early: {lines}"
            lines.append(line.strip())
        env = dict(
            line.removeprefix("export ").split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        assert env["ZOOM_CLIENT_ID"] == "emu-client"
        base = env["ZOOM_OAUTH_BASE_URL"]
        assert env["ZOOM_API_BASE_URL"] == base + "/v2"
        seeded = next(line for line in lines if "ana@example.com" in line)
        assert "plan=business" in seeded
        user_id = seeded.partition("zoom_user_id=")[2].split()[0]
        tokens = httpx.post(f"{base}/_emulator/grants", json={"user_id": user_id}).json()
        me = f"{env['ZOOM_API_BASE_URL']}/users/me"
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert httpx.get(me, headers=auth).status_code == 503
        assert httpx.get(me, headers=auth).json()["email"] == "ana@example.com"
    finally:
        process.terminate()
        process.wait(timeout=10)
