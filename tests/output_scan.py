"""Per-test leak scan shared by the suites that drive OAuth: run the test with logs going to
file descriptor 2 (which capfd captures), then look for every secret the emulator issued."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
import structlog
from devservices.zoom_emulator import ZoomEmulator

from worker.runtime import logging as worker_logging


@contextmanager
def no_secret_in_output(
    zoom: ZoomEmulator, capfd: pytest.CaptureFixture[str], also: Iterable[str] = ()
) -> Iterator[None]:
    worker_logging.configure("DEBUG", "json")
    # Write to file descriptor 2 itself, which capfd captures, not to a per-test sys.stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    yield
    out, err = capfd.readouterr()
    leaked = [s for s in [*zoom.issued_secrets(), *also] if s in out or s in err]
    assert not leaked, f"{len(leaked)} secret(s) appeared in the output"
