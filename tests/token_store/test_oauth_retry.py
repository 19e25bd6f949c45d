"""``ZoomOAuth``'s retries (tenacity): what is retried, how often, how long it waits, what the
last failure becomes. Zoom is an ``httpx.MockTransport`` here, the sleeps are recorded."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from token_store import OAuthRejected, TokenServiceUnavailable, ZoomOAuth

TOKEN_BODY = {"access_token": "a", "refresh_token": "r", "expires_in": 3599, "scope": "x"}


def _oauth(
    answers: list[Callable[[httpx.Request], httpx.Response]], slept: list[float], **kw: float
) -> tuple[ZoomOAuth, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1](request)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    oauth = ZoomOAuth(
        httpx.AsyncClient(transport=httpx.MockTransport(handle)),
        "http://zoom.test",
        "http://api.zoom.test/v2",
        "id",
        "secret",
        attempts=int(kw.get("attempts", 3)),
        backoff_seconds=kw.get("backoff_seconds", 0.25),
        sleep=sleep,
    )
    return oauth, seen


def _status(code: int, body: dict[str, object] | None = None) -> Callable[..., httpx.Response]:
    return lambda request: httpx.Response(code, json=body or {})


def _drop(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


async def test_retryable_answers_are_retried_with_jittered_exponential_backoff() -> None:
    slept: list[float] = []
    oauth, seen = _oauth([_status(503), _drop, _status(200, TOKEN_BODY)], slept)

    answer = await oauth.refresh("r0")

    assert answer.access_token == "a" and len(seen) == 3
    assert len(slept) == 2
    assert 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 0.75  # base * 2**n + [0, base]


async def test_jitter_spreads_the_waits() -> None:
    slept: list[float] = []
    for _ in range(20):
        oauth, _seen = _oauth([_status(429), _status(200, TOKEN_BODY)], slept)
        await oauth.refresh("r0")
    assert len(set(slept)) > 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_status(502), "POST http://zoom.test/oauth/token answered HTTP 502 after 3 attempt(s)"),
        (_drop, "POST http://zoom.test/oauth/token failed after 3 attempt(s): ConnectError"),
    ],
)
async def test_the_last_failure_becomes_token_service_unavailable(
    answer: Callable[[httpx.Request], httpx.Response], message: str
) -> None:
    slept: list[float] = []
    oauth, seen = _oauth([answer], slept)

    with pytest.raises(TokenServiceUnavailable) as caught:
        await oauth.refresh("r0")

    assert str(caught.value) == message and caught.value.retryable
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(seen) == 3 and len(slept) == 2


async def test_other_answers_are_not_retried() -> None:
    slept: list[float] = []
    oauth, seen = _oauth([_status(400, {"error": "invalid_client"})], slept)

    with pytest.raises(OAuthRejected):
        await oauth.refresh("r0")

    assert len(seen) == 1 and slept == []


async def test_one_attempt_means_no_retry() -> None:
    slept: list[float] = []
    oauth, seen = _oauth([_status(503)], slept, attempts=1)

    with pytest.raises(TokenServiceUnavailable, match="after 1 attempt"):
        await oauth.get_me("token")

    assert len(seen) == 1 and slept == []
