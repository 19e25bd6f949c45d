"""`make demo` is a promise to newcomers: it runs the story end to end and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_tells_its_whole_story() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOPIC_"))}
    done = subprocess.run(
        [sys.executable, "-m", "devservices", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo passed" in done.stdout
    assert done.stdout.count("\nok ") == 17
    assert "...Zoom is back: linked by itself" in done.stdout
    # The last scene: a host changes the meeting in Zoom itself and the calendar hears of it.
    assert "updated_on_zoom" in done.stdout and "deleted_on_zoom" in done.stdout


def test_the_demo_runs_on_a_real_zoom_with_a_person_signing_in() -> None:
    """The real-Zoom path, with the emulator standing in for zoom.us and this test for the
    person who opens the authorize URL and pastes where Zoom sent their browser."""
    import httpx
    from devservices.zoom_emulator import ZoomEmulator

    with ZoomEmulator(client_id="real-client", client_secret="real-secret") as zoom:
        zoom.add_user("ana@zoom.example")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOPIC_"))}
        env |= {
            "ZOOM_CLIENT_ID": "real-client",
            "ZOOM_CLIENT_SECRET": "real-secret",
            "ZOOM_API_BASE_URL": zoom.api_base_url,
            "ZOOM_OAUTH_BASE_URL": zoom.oauth_base_url,
            "ZOOM_REDIRECT_URI": "https://talivo.example/zoom/callback",
        }
        demo = subprocess.Popen(
            [sys.executable, "-m", "devservices", "demo"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert demo.stdout is not None and demo.stdin is not None
        seen: list[str] = []
        for line in demo.stdout:
            seen.append(line)
            if "/oauth/authorize?" in line:
                browser = httpx.get(f"{line.strip()}&login=ana@zoom.example")
                assert browser.status_code == 302
                demo.stdin.write(browser.headers["location"] + "\n")
                demo.stdin.flush()
                break
        out = "".join(seen) + demo.communicate(timeout=120)[0]
    assert demo.returncode == 0, out
    assert "skipped: needs a second Zoom account" in out
    assert "skipped: needs the emulator" in out
    assert "Zoom meetings of Ana's still on Zoom: 0" in out
