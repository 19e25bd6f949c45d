"""Fault injection: latency, errors, 429 bursts, drops (before and after), non-JSON bodies."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest
from devservices.zoom_emulator import EmulatedUser, Fault, ZoomEmulator, parse_fault

from tests.emulator.conftest import bearer
from tests.emulator.test_meetings import SCHEDULED

# A dropped connection reads as a closed stream or a reset, depending on timing.
NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError)

ME = "GET /v2/users/me"
CREATE = "POST /v2/users/{userId}/meetings"


@pytest.fixture
def api(zoom: ZoomEmulator, ana: EmulatedUser) -> httpx.Client:
    access, _ = zoom.grant_tokens(ana.id)
    return httpx.Client(base_url=zoom.api_base_url, headers=bearer(access), timeout=5)


def test_error_burst_then_normal(zoom: ZoomEmulator, api: httpx.Client) -> None:
    zoom.faults = [Fault(kind="error", status=502, count=2, endpoint=ME)]
    statuses = [api.get("/users/me").status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert zoom.calls(ME) == 3
    assert zoom.faults.fired() == [2]


def test_fault_targets_only_its_endpoint(zoom: ZoomEmulator, api: httpx.Client) -> None:
    zoom.faults = [Fault(kind="error", status=500, endpoint=CREATE)]
    assert api.get("/users/me").status_code == 200
    assert api.post("/users/me/meetings", json=SCHEDULED).status_code == 500


def test_non_json_error_body(zoom: ZoomEmulator, api: httpx.Client) -> None:
    zoom.faults = [Fault(kind="non_json", status=503, count=1)]
    answer = api.get("/users/me")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        answer.json()


@pytest.mark.parametrize("form", ["seconds", "http_date", "iso", "none"])
def test_rate_limit_burst_with_retry_after_forms(
    zoom: ZoomEmulator, api: httpx.Client, form: str
) -> None:
    zoom.faults = [Fault(kind="rate_limit", count=1, retry_after=form, retry_after_seconds=3)]
    answer = api.get("/users/me")
    assert answer.status_code == 429
    assert answer.headers["X-RateLimit-Type"] == "QPS"
    value = answer.headers.get("Retry-After")
    now = datetime.now(UTC)
    if form == "none":
        assert value is None
    elif form == "seconds":
        assert value == "3"
    elif form == "http_date":
        assert value is not None and value.endswith("GMT")
        assert 2 <= (parsedate_to_datetime(value) - now).total_seconds() <= 4.5
    else:
        assert value is not None and value.endswith("Z")
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        assert 2 <= (at - now).total_seconds() <= 4.5
    assert api.get("/users/me").status_code == 200


def test_drop_before_does_not_apply_the_request(
    zoom: ZoomEmulator, api: httpx.Client, ana: EmulatedUser
) -> None:
    zoom.faults = [Fault(kind="drop", endpoint=CREATE, count=1)]
    with pytest.raises(NO_ANSWER):
        api.post("/users/me/meetings", json=SCHEDULED)
    assert zoom.meetings(ana.id) == []


def test_drop_after_applies_the_request_and_loses_the_answer(
    zoom: ZoomEmulator, api: httpx.Client, ana: EmulatedUser
) -> None:
    zoom.faults = [Fault(kind="drop", when="after", endpoint=CREATE, count=1)]
    with pytest.raises(NO_ANSWER):
        api.post("/users/me/meetings", json=SCHEDULED)
    assert len(zoom.meetings(ana.id)) == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault(kind="latency", latency_ms=150), id="fixed"),
        pytest.param(
            Fault(kind="latency", distribution="uniform", latency_ms=150, latency_max_ms=200),
            id="uniform",
        ),
    ],
)
def test_latency(zoom: ZoomEmulator, api: httpx.Client, fault: Fault) -> None:
    zoom.faults = [fault]
    started = time.monotonic()
    assert api.get("/users/me").status_code == 200
    assert 0.15 <= time.monotonic() - started < 1.0


def test_lognormal_latency_is_seeded_and_positive() -> None:
    fault = Fault(kind="latency", distribution="lognormal", latency_ms=50, sigma=0.5)
    delays = [fault.delay_seconds(random.Random(1)) for _ in range(3)]
    assert len(set(delays)) == 1 and delays[0] > 0


def test_probability_makes_an_error_rate(zoom: ZoomEmulator, api: httpx.Client) -> None:
    zoom.faults = [Fault(kind="error", status=500, probability=0.5)]
    statuses = [api.get("/users/me").status_code for _ in range(40)]
    assert 5 < statuses.count(500) < 35


def test_faults_over_the_admin_api_and_cli_syntax(zoom: ZoomEmulator, api: httpx.Client) -> None:
    admin = httpx.Client(base_url=zoom.base_url)
    rule = parse_fault(f"kind=error,status=503,count=1,endpoint={ME}")
    assert admin.post("/_emulator/faults", content=rule.model_dump_json()).status_code == 200
    assert api.get("/users/me").status_code == 503
    listed = admin.get("/_emulator/faults").json()
    assert listed[0]["fired"] == 1
    admin.delete("/_emulator/faults")
    assert api.get("/users/me").status_code == 200
    assert admin.post("/_emulator/faults", json={"kind": "nonsense"}).status_code == 400
