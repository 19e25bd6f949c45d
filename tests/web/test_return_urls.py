"""The return-URL allow list against dot segments in every spelling browsers and servers accept.

Three readers of a path are modelled here, and an allowed URL must stay under its prefix for
each: a browser (WHATWG URL: ``\\`` is ``/``, ``%2e`` is a dot in a dot segment), a server that
percent-decodes until nothing changes before normalising, and one that also drops ``;``
parameters (``..;/``). Node's ``URL``, the browsers' algorithm itself, checks a large corpus
when ``node`` is on the PATH.
"""

from __future__ import annotations

import json
import posixpath
import random
import shutil
import subprocess
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connect.return_urls import ReturnUrlAllowlist

ORIGIN = "https://app.talivo.com"
PREFIX = "/settings/"
ALLOW = ReturnUrlAllowlist.parse(f"{ORIGIN}{PREFIX}, http://localhost:3000")

# Every way of writing "." that decodes (once or more) to it, in either case.
DOTS = [".", "%2e", "%2E", "%252e", "%252E", "%25%32%65", "%25%32%45", "%%32%65", "%2525%32e"]
SLASHES = ["/", "%2f", "%2F", "%252f", "\\", "%5c", "%5C", "%255c"]
PARAMS = ["", ";", ";x=1", "%3b", "%3B", "%253b"]
# The autouse log scan of tests/web is function-scoped; it holds no state between examples.
QUICK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
SAFE = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~", min_size=1,
               max_size=12)  # fmt: skip


# -- three readers of a path -----------------------------------------------------------------


def _browser_path(path: str) -> str:
    """The path a browser requests for ``path`` (WHATWG URL path state, special schemes)."""
    out: list[str] = []
    segments = path.replace("\\", "/").split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        lowered = segment.lower()
        if lowered in ("..", ".%2e", "%2e.", "%2e%2e"):
            if out:
                out.pop()
            if last:
                out.append("")
        elif lowered in (".", "%2e"):
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _server_path(path: str, *, drop_params: bool) -> str:
    """The path a lenient server serves: decoded until stable, ``\\`` as ``/``, normalised."""
    for _ in range(10):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    path = path.replace("\\", "/")
    if drop_params:
        path = "/".join(segment.split(";")[0] for segment in path.split("/"))
    return posixpath.normpath(path)


def _under_prefix(path: str) -> bool:
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


def _stays_under_prefix(url: str) -> bool:
    path = urlsplit(url).path
    return all(
        _under_prefix(p)
        for p in (
            _browser_path(path),
            _server_path(path, drop_params=False),
            _server_path(path, drop_params=True),
        )
    )


# -- examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/settings/%2e%2e/admin",
        "/settings/%2E%2E/admin",
        "/settings/.%2e/admin",
        "/settings/%2e./admin",
        "/settings/%252e%252e/admin",
        "/settings/%25252e%25252e/admin",
        "/settings/%%32%65%%32%65/admin",
        "/settings/..;/admin",
        "/settings/%2e%2e;jsessionid=1/admin",
        "/settings/..%3b/admin",
        "/settings%2f..%2fadmin",
        "/settings/..%5cadmin",
        "/settings/%5c..%5cadmin",
        "/settings/zoom/%2e",
        "/settings/...",
        "/settings/..%00/admin",
        "/settings/%u002e%u002e/admin",
        "/settings/%C0%AE%C0%AE/admin",  # an overlong UTF-8 dot
        "/settings/%EF%BC%8E%EF%BC%8E/admin",  # full-width dots
        "/settings/%20../admin",
        "/settings/%2525252e%2525252e/admin",  # more rounds than we decode
    ],
)
def test_dot_segments_are_refused_however_they_are_spelled(path: str) -> None:
    assert not ALLOW.allows(f"{ORIGIN}{path}")


@pytest.mark.parametrize(
    "url",
    [
        f"{ORIGIN}/settings/integrations?tab=zoom",
        f"{ORIGIN}/settings/.well-known/x",
        f"{ORIGIN}/settings/a.b/c..d/%41pp",
        f"{ORIGIN}/settings/zoom?next=/../admin#/../x",
        f"{ORIGIN}/settings",
    ],
)
def test_ordinary_paths_with_dots_or_escapes_pass(url: str) -> None:
    assert ALLOW.allows(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://app%2etalivo.com/settings/",
        "https://app.talivo.com%40evil.io/settings/",
        "https://app.tálivo.com/settings/",
        "https://app.talivo.com/settings/caf\u00e9",
    ],
)
def test_escapes_in_the_host_and_non_ascii_are_refused(url: str) -> None:
    assert not ALLOW.allows(url)


def test_allow_list_entries_with_escapes_or_dot_segments_are_refused() -> None:
    for spec in ("https://app.talivo.com/set%74ings/", "https://app.talivo.com/a/../b/"):
        with pytest.raises(ValueError, match="not an http"):
            ReturnUrlAllowlist.parse(spec)


# -- properties -------------------------------------------------------------------------------


@st.composite
def _dot_segment(draw: st.DrawFn) -> str:
    dots = "".join(draw(st.lists(st.sampled_from(DOTS), min_size=1, max_size=3)))
    return dots + draw(st.sampled_from(PARAMS))


@QUICK
@given(
    before=st.lists(SAFE, max_size=3),
    dots=_dot_segment(),
    after=st.lists(SAFE, max_size=3),
    separators=st.lists(st.sampled_from(SLASHES), min_size=2, max_size=2),
)
@example(before=[], dots="%2e%2e", after=["admin"], separators=["/", "/"])
@example(before=["zoom"], dots="..;", after=["admin"], separators=["%2f", "\\"])
def test_a_dot_segment_in_any_encoding_is_refused(
    before: list[str], dots: str, after: list[str], separators: list[str]
) -> None:
    head = "/".join(before)
    path = PREFIX + head + (separators[0] if head else "") + dots + separators[1] + "/".join(after)
    assert not ALLOW.allows(f"{ORIGIN}{path}")


_LETTER = st.sampled_from("abcXYZ09-_~")
_ESCAPED_LETTER = _LETTER.map(lambda c: f"%{ord(c):02X}")
_SEGMENT = (
    st.lists(st.one_of(_LETTER, _ESCAPED_LETTER, st.just(".")), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda s: set(unquote(s)) != {"."})
)


@QUICK
@given(
    segments=st.lists(_SEGMENT, max_size=4), query=st.sampled_from(["", "?tab=zoom", "?a=..%2f"])
)
def test_ordinary_paths_below_the_prefix_pass(segments: list[str], query: str) -> None:
    assert ALLOW.allows(f"{ORIGIN}{PREFIX}{'/'.join(segments)}{query}")


_PIECES = [*DOTS, *SLASHES, *PARAMS[1:], "..", "a", "admin", "settings", "%", "%25", "2e", "%00",
           "%20", "%41", "%ff", "%C0%AE", "%u002e", "?", "#", "@"]  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
@example("%2e%2e/admin")
@example("..%252f..%252fadmin")
def test_whatever_is_allowed_stays_under_the_prefix_for_every_reader(tail: str) -> None:
    url = f"{ORIGIN}{PREFIX}{tail}"
    if ALLOW.allows(url):
        assert _stays_under_prefix(url), url


def test_the_readers_do_walk_out_of_the_prefix_on_what_is_refused() -> None:
    # The oracle has teeth: each reader escapes the prefix on a URL the list refuses.
    assert _browser_path("/settings/%2E%2e/admin") == "/admin"
    assert _server_path("/settings/%252e%252e%255cadmin", drop_params=False) == "/admin"
    assert _server_path("/settings/..;/admin", drop_params=True) == "/admin"


# -- the browsers' own algorithm ----------------------------------------------------------------

_NODE = shutil.which("node")
_RESOLVE = "const urls = JSON.parse(require('fs').readFileSync(0, 'utf8'));" \
           "console.log(JSON.stringify(urls.map(u => { try { const p = new URL(u);" \
           " return [p.origin, p.pathname]; } catch { return null; } })));"  # fmt: skip


def _corpus(size: int) -> list[str]:
    rng = random.Random(16)  # fixed: the same corpus on every run
    return [
        f"{ORIGIN}{PREFIX}" + "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 8)))
        for _ in range(size)
    ]


@pytest.mark.skipif(_NODE is None, reason="node is not on the PATH")
def test_nodes_whatwg_url_keeps_every_allowed_url_under_the_prefix() -> None:
    assert _NODE is not None
    corpus = [*_corpus(4000), f"{ORIGIN}/settings/%2e%2e/admin", f"{ORIGIN}/settings/.%2E\\admin"]
    done = subprocess.run([_NODE, "-e", _RESOLVE], input=json.dumps(corpus), capture_output=True,
                          text=True, check=True, timeout=60)  # fmt: skip
    resolved = dict(zip(corpus, json.loads(done.stdout), strict=True))
    allowed = [u for u in corpus if ALLOW.allows(u)]
    assert len(allowed) > 100  # the corpus does reach the allowed side
    for url in allowed:
        assert resolved[url] is not None and resolved[url][0] == ORIGIN, url
        assert _under_prefix(resolved[url][1]), (url, resolved[url][1])
    escaped = [u for u in corpus if resolved[u] and not _under_prefix(resolved[u][1])]
    assert f"{ORIGIN}/settings/%2e%2e/admin" in escaped and len(escaped) > 20
