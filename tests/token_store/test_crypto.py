"""The key ring: AES-256-GCM bound to user and column; failures name the key id only."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from token_store import DecryptError, KeyRing
from token_store.crypto import generate_key

K1, K2 = generate_key(), generate_key()
RING = KeyRing.parse(f"k2:{K2},k1:{K1}")


@given(st.text(min_size=0, max_size=300), st.text(min_size=1, max_size=40))
@settings(max_examples=50, deadline=None)
def test_round_trip_any_text(plaintext: str, user_id: str) -> None:
    blob = RING.encrypt(plaintext, user_id=user_id, column="access_token")
    assert len(plaintext) < 8 or plaintext.encode() not in blob
    assert RING.decrypt(blob, kid="k2", user_id=user_id, column="access_token") == plaintext


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old = KeyRing.parse(f"k1:{K1}")
    blob = old.encrypt("tok", user_id="u", column="refresh_token")
    assert RING.active_kid == "k2"
    assert RING.decrypt(blob, kid="k1", user_id="u", column="refresh_token") == "tok"


def test_each_value_gets_a_fresh_nonce() -> None:
    a = RING.encrypt("same", user_id="u", column="access_token")
    b = RING.encrypt("same", user_id="u", column="access_token")
    assert a != b and a[:12] != b[:12]


@pytest.mark.parametrize(
    ("user_id", "column"),
    [("other-user", "access_token"), ("u", "refresh_token")],
    ids=["copied-to-another-row", "copied-to-another-column"],
)
def test_a_moved_ciphertext_does_not_decrypt(user_id: str, column: str) -> None:
    blob = RING.encrypt("secret-value", user_id="u", column="access_token")
    with pytest.raises(DecryptError, match="k2") as caught:
        RING.decrypt(blob, kid="k2", user_id=user_id, column=column)
    assert "secret-value" not in str(caught.value)


def test_a_tampered_ciphertext_does_not_decrypt() -> None:
    blob = bytearray(RING.encrypt("secret-value", user_id="u", column="access_token"))
    blob[-1] ^= 0x01
    with pytest.raises(DecryptError, match="tampered"):
        RING.decrypt(bytes(blob), kid="k2", user_id="u", column="access_token")


def test_an_unknown_key_id_is_named_and_no_key_is_shown() -> None:
    blob = RING.encrypt("v", user_id="u", column="access_token")
    with pytest.raises(DecryptError, match="'k9' is not in TOKEN_ENCRYPTION_KEYS") as caught:
        RING.decrypt(blob, kid="k9", user_id="u", column="access_token")
    assert K1 not in str(caught.value) and K2 not in str(caught.value)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "k1",
        f"k1:{base64.b64encode(b'short').decode()}",
        "k1:not base64!!",
        f"k1:{K1},k1:{K2}",
        f"bad kid:{K1}",
    ],
    ids=["empty", "no-key", "short-key", "not-base64", "duplicate-kid", "bad-kid"],
)
def test_bad_specs_are_refused_without_echoing_keys(spec: str) -> None:
    with pytest.raises(ValueError) as caught:
        KeyRing.parse(spec)
    assert K1 not in str(caught.value) and K2 not in str(caught.value)
