"""Runs last: nothing the suite printed or logged holds a token or code Zoom issued.

Scans every test's captured stdout, stderr and log records, and the log file of every worker
process the tests started, for every access token, refresh token and code that any emulator
of this run issued.
"""

from __future__ import annotations

import os

from devservices.zoom_emulator.server import secrets_issued_in_this_process

from tests.conftest import CAPTURED, WORKER_LOGS


def test_no_issued_token_or_code_appears_in_any_output() -> None:
    issued = set(secrets_issued_in_this_process())
    texts = list(CAPTURED)
    for path in WORKER_LOGS:
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as log:
                texts.append(log.read())
    everything = "\n".join(texts)
    if not issued:
        return  # run alone: no emulator was used, nothing could leak
    assert everything, "the scan saw no output at all"
    leaked = [s for s in issued if s in everything]
    assert leaked == [], f"{len(leaked)} issued token(s) or code(s) reached the output"
