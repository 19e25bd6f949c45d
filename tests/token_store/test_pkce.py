"""The one PKCE S256 helper (used by connect and by the demo)."""

from __future__ import annotations

import string

from token_store import pkce


def test_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pair_is_fresh_and_well_formed() -> None:
    allowed = set(string.ascii_letters + string.digits + "-._~")
    verifier, challenge = pkce.new_pair()
    assert 43 <= len(verifier) <= 128 and set(verifier) <= allowed
    assert challenge == pkce.s256(verifier) and "=" not in challenge
    assert pkce.new_pair()[0] != verifier
