"""Bad configuration: one line per problem, exit code 2, never a secret value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from token_store.crypto import generate_key
from worker.runtime.config import ConfigError, load_settings

SECRET = "s3cr3t-value-that-must-not-leak"
GOOD = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "DATABASE_URL": f"postgresql://worker:{SECRET}@db:5432/zoom",
    "TOKEN_ENCRYPTION_KEYS": f"k1:{generate_key()}",
    "ZOOM_CLIENT_ID": "client",
    "ZOOM_CLIENT_SECRET": SECRET,
}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith("TOPIC_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "variable", "complaint"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS", "is required"),
        ({"DATABASE_URL": f"mysql://root:{SECRET}@db/x"}, "DATABASE_URL", "postgresql://"),
        ({"ZOOM_API_BASE_URL": "ftp://zoom"}, "ZOOM_API_BASE_URL", "http(s)://"),
        ({"TOKEN_ENCRYPTION_KEYS": f"k1:{SECRET}"}, "TOKEN_ENCRYPTION_KEYS", "base64"),
        ({"TOKEN_ENCRYPTION_KEYS": "k1"}, "TOKEN_ENCRYPTION_KEYS", "kid:base64key"),
        ({"HTTP_PORT": "eighty"}, "HTTP_PORT", "integer"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT", "json"),
    ],
    ids=["missing", "malformed-db-url", "malformed-api-url", "key-not-base64",
         "key-ring-shape", "port-not-a-number", "unknown-log-format"],
)  # fmt: skip
def test_a_bad_setting_is_one_clear_line_and_exit_2(
    change: dict[str, str], variable: str, complaint: str
) -> None:
    done = run_cli({**GOOD, **change}, "run")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"config error: {variable} ") and complaint in lines[0]
    assert "example:" in lines[0]
    assert SECRET not in done.stderr + done.stdout


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HTTP_PORT": "-1"}, ["kafka", "database", "keys", "zoom"])
    named = [line.split()[2] for line in caught.value.problems]
    assert set(named) == {
        "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "ZOOM_CLIENT_ID",
        "ZOOM_CLIENT_SECRET", "HTTP_PORT",
    }  # fmt: skip


def test_a_command_asks_only_for_what_it_needs() -> None:
    done = run_cli({}, "migrate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "config error: DATABASE_URL is required but not set "
        "(example: DATABASE_URL=postgresql://zoom_worker@db:5432/zoom_worker)"
    ]


def test_defaults_match_the_contract() -> None:
    settings = load_settings(GOOD, ["kafka", "database", "keys", "zoom"])
    assert settings.kafka_group_id == "zoom-worker"
    assert settings.event_topics == ("event.created", "event.updated", "event.deleted")
    assert (settings.topic_meeting_linked, settings.topic_meeting_failed) == (
        "meeting.linked",
        "meeting.failed",
    )
    assert settings.topic_dead_letter == "zoom-worker.dlq"
    assert settings.zoom_api_base_url == "https://api.zoom.us/v2"
    assert settings.zoom_oauth_base_url == "https://zoom.us"
    assert SECRET not in repr(settings)
