"""``make audit``: pip-audit over every pin of constraints.txt, failing on a known vulnerability.

The real target runs against a local stand-in for osv.dev's query API (``--osv-url``), so the
test needs no network: every pinned package is asked about, a reported vulnerability fails the
target and is named, a clean answer passes, and an unreachable database fails it too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[2]
PINS = [line for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line]
ADVISORY = "GHSA-test-0000-0000"


@dataclass
class FakeOsv:
    vulnerable: set[str] = field(default_factory=set)  # canonical package names
    asked: list[tuple[str, str]] = field(default_factory=list)

    def answer(self, query: dict[str, Any]) -> dict[str, Any]:
        name, version = query["package"]["name"], query["version"]
        self.asked.append((name, version))
        if name not in self.vulnerable:
            return {}
        affected = {"package": {"name": name, "ecosystem": "PyPI"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                                 {"fixed": "999"}]}]}  # fmt: skip
        return {"vulns": [{"id": ADVISORY, "summary": "test advisory", "affected": [affected]}]}


@pytest.fixture
def osv() -> Iterator[tuple[FakeOsv, str]]:
    fake = FakeOsv()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.dumps(
                fake.answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def make_audit(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    flags = f"--osv-url {url} --cache-dir {tmp_path / 'cache'}"
    return subprocess.run(
        [make, "-s", "-o", ".venv/.installed", "audit", "AUDIT_SERVICE=osv",
         f"AUDIT_FLAGS={flags}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_clean_audit_asks_about_every_pin_and_passes(
    osv: tuple[FakeOsv, str], tmp_path: Path
) -> None:
    fake, url = osv
    done = make_audit(url, tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(fake.asked) == len(PINS)
    assert ("httpx", next(p.split("==")[1] for p in PINS if p.startswith("httpx=="))) in fake.asked


def test_a_known_vulnerability_fails_the_audit_and_is_named(
    osv: tuple[FakeOsv, str], tmp_path: Path
) -> None:
    fake, url = osv
    fake.vulnerable = {"httpx"}
    done = make_audit(url, tmp_path)

    assert done.returncode != 0
    assert "httpx" in done.stdout and ADVISORY in done.stdout


def test_an_unreachable_database_fails_the_audit(tmp_path: Path) -> None:
    done = make_audit("http://127.0.0.1:9/v1/query", tmp_path)  # the discard port: refused

    assert done.returncode != 0
