"""Connect tickets are standard HS256 JWTs: what is accepted, what is refused, and the README's
minting snippets (Python with PyJWT, Node with jsonwebtoken) read back by the app's own code."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from connect.errors import (
    TicketBadSignature,
    TicketError,
    TicketExpired,
    TicketMalformed,
    TicketWrongPurpose,
)
from connect.tickets import MAX_TTL_SECONDS, Purpose, make_ticket, read_ticket

SECRET = b"ticket-test-secret-" + b"0123456789abcdef" * 3  # 67 bytes: HS512 would not warn
URL = "https://app.talivo.com/settings/zoom"
NOW = 1_900_000_000
README = Path(__file__).resolve().parents[2] / "README.md"
PURPOSES: tuple[Purpose, ...] = ("connect", "disconnect")


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "u-42",
        "aud": "connect",
        "return_url": URL,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "n0nce-n0nce-n0nce-01",
    }
    for name, value in changes.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    return claims


def _mint(claims: dict[str, Any], *, key: bytes = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


NONE = {"alg": "none", "typ": "JWT"}  # an unsigned JWT
RS256 = {"alg": "RS256", "typ": "JWT"}  # a public-key algorithm, with our secret as "key"


def test_a_ticket_is_a_standard_hs256_jwt_with_the_documented_claims() -> None:
    ticket = make_ticket(SECRET, "u-42", URL, now=NOW, ttl_seconds=600, purpose="disconnect")
    assert jwt.get_unverified_header(ticket) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        ticket,
        SECRET,
        algorithms=["HS256"],
        audience="disconnect",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert set(claims) == {"sub", "aud", "return_url", "iat", "exp", "jti"}
    assert (claims["sub"], claims["aud"], claims["return_url"]) == ("u-42", "disconnect", URL)
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 600)
    read = read_ticket(SECRET, ticket, now=NOW + 1, purpose="disconnect")
    assert (read.user_id, read.return_url, read.nonce) == ("u-42", URL, claims["jti"])
    assert (read.issued_at, read.expires_at, read.purpose) == (NOW, NOW + 600, "disconnect")


def test_a_ticket_minted_by_anyone_with_the_claims_is_accepted() -> None:
    read = read_ticket(SECRET, _mint(_claims()), now=NOW, purpose="connect")
    assert (read.user_id, read.nonce, read.expires_at) == (
        "u-42",
        "n0nce-n0nce-n0nce-01",
        NOW + 300,
    )


@pytest.mark.parametrize(
    ("ticket", "error"),
    [
        pytest.param(_mint(_claims(), key=b"another-secret-0123456789abcdefgh"), TicketBadSignature,
                     id="other_secret"),
        pytest.param(_mint(_claims(), algorithm="HS512"), TicketBadSignature, id="hs512"),
        pytest.param(_mint(_claims(), algorithm="HS384"), TicketBadSignature, id="hs384"),
        pytest.param(f"{_b64(NONE)}.{_b64(_claims())}.", TicketBadSignature, id="alg_none"),
        pytest.param(f"{_b64(RS256)}.{_b64(_claims())}.c2ln", TicketBadSignature, id="alg_rs256"),
        pytest.param("not-a-ticket", TicketMalformed, id="garbage"),
        pytest.param("a.b.c", TicketMalformed, id="three_bad_parts"),
        pytest.param("v1." + "x" * 5000, TicketMalformed, id="too_long"),
    ],
)  # fmt: skip
def test_tickets_not_signed_with_hs256_and_our_secret_are_refused(
    ticket: str, error: type[TicketError]
) -> None:
    with pytest.raises(error):
        read_ticket(SECRET, ticket, now=NOW, purpose="connect")


def test_a_changed_payload_breaks_the_signature() -> None:
    header, _, signature = _mint(_claims()).split(".")
    forged = f"{header}.{_b64(_claims(sub='u-admin'))}.{signature}"
    with pytest.raises(TicketBadSignature):
        read_ticket(SECRET, forged, now=NOW, purpose="connect")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        *[pytest.param({claim: None}, TicketMalformed, id=f"no_{claim}")
          for claim in ("sub", "aud", "return_url", "iat", "exp", "jti")],
        pytest.param({"aud": "disconnect"}, TicketWrongPurpose, id="other_purpose"),
        pytest.param({"aud": ["connect", "disconnect"]}, TicketWrongPurpose, id="aud_list"),
        pytest.param({"aud": "zoom"}, TicketWrongPurpose, id="unknown_purpose"),
        pytest.param({"exp": NOW}, TicketExpired, id="expired"),
        pytest.param({"exp": NOW + MAX_TTL_SECONDS + 1}, TicketMalformed, id="over_an_hour"),
        pytest.param({"iat": NOW - 3000, "exp": NOW + 1000}, TicketMalformed,
                     id="over_an_hour_since_issue"),
        pytest.param({"iat": NOW + 61, "exp": NOW + 300}, TicketMalformed, id="issued_in_future"),
        pytest.param({"exp": NOW + 300.5}, TicketMalformed, id="exp_not_an_integer"),
        pytest.param({"iat": True}, TicketMalformed, id="iat_a_boolean"),
        pytest.param({"sub": ""}, TicketMalformed, id="empty_sub"),
        pytest.param({"sub": 42}, TicketMalformed, id="sub_not_a_string"),
        pytest.param({"sub": "u\n1"}, TicketMalformed, id="sub_unprintable"),
        pytest.param({"jti": "short"}, TicketMalformed, id="jti_too_short"),
        pytest.param({"jti": "n0nce-n0nce-n0nce-01\n"}, TicketMalformed, id="jti_newline"),
        pytest.param({"return_url": 7}, TicketMalformed, id="return_url_not_a_string"),
    ],
)  # fmt: skip
def test_claims_are_required_and_checked(changes: dict[str, Any], error: type[TicketError]) -> None:
    with pytest.raises(error):
        read_ticket(SECRET, _mint(_claims(**changes)), now=NOW, purpose="connect")


def test_clocks_may_disagree_by_a_minute() -> None:
    ticket = _mint(_claims(iat=NOW + 60, exp=NOW + 360))
    assert read_ticket(SECRET, ticket, now=NOW, purpose="connect").issued_at == NOW + 60
    assert read_ticket(SECRET, ticket, now=NOW + 359, purpose="connect")
    with pytest.raises(TicketExpired):
        read_ticket(SECRET, ticket, now=NOW + 360, purpose="connect")


def test_make_ticket_refuses_long_lifetimes_and_short_secrets() -> None:
    with pytest.raises(ValueError, match="ttl"):
        make_ticket(SECRET, "u", URL, now=NOW, ttl_seconds=MAX_TTL_SECONDS + 1)
    with pytest.raises(ValueError, match="32 bytes"):
        make_ticket(b"short", "u", URL, now=NOW)


# -- the README's snippets ------------------------------------------------------------------------


def _snippet(language: str) -> str:
    section = README.read_text("utf-8").split("#### Connect tickets", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} block under 'Connect tickets'"
    return str(blocks[0])


def _read_back(ticket: str, purpose: Purpose) -> None:
    read = read_ticket(SECRET, ticket, now=time.time(), purpose=purpose)
    assert (read.user_id, read.return_url, read.purpose) == ("u-readme", URL, purpose)
    assert read.expires_at - read.issued_at == 120


def test_the_readme_python_snippet_mints_tickets_we_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_TICKET_SECRET", SECRET.decode())
    namespace: dict[str, Any] = {}
    exec(compile(_snippet("python"), "README.md", "exec"), namespace)  # noqa: S102
    for purpose in PURPOSES:
        _read_back(namespace["zoom_ticket"]("u-readme", URL, purpose, 120), purpose)


def _node_with_jsonwebtoken() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    probe = subprocess.run([node, "-e", "require.resolve('jsonwebtoken')"], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    return node if probe.returncode == 0 else None


_NODE = _node_with_jsonwebtoken()


@pytest.mark.skipif(_NODE is None, reason="node cannot load jsonwebtoken (set NODE_PATH)")
def test_the_readme_node_snippet_mints_tickets_we_accept() -> None:
    assert _NODE is not None
    call = "\nconsole.log(zoomTicket(process.env.USER_ID, process.env.RETURN_URL, " \
           "process.env.PURPOSE, 120));\n"  # fmt: skip
    for purpose in PURPOSES:
        env = {**os.environ, "CONNECT_TICKET_SECRET": SECRET.decode(), "USER_ID": "u-readme",
               "RETURN_URL": URL, "PURPOSE": purpose}  # fmt: skip
        done = subprocess.run([_NODE, "-e", _snippet("js") + call], env=env, capture_output=True,
                              text=True, timeout=30, check=True)  # fmt: skip
        _read_back(done.stdout.strip(), purpose)
