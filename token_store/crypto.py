"""AES-256-GCM for tokens at rest, under a key ring read from ``TOKEN_ENCRYPTION_KEYS``.

The ring is ``kid:base64key,kid:base64key,...``: the first key encrypts, every key decrypts.
Each value gets a fresh 96-bit nonce, and the Talivo user id plus the column name are bound in
as associated data, so a ciphertext copied to another row or column does not decrypt.
Errors name the key id, never a key or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_NONCE_BYTES = 12


class DecryptError(Exception):
    """A stored token could not be decrypted (wrong key, tampered or moved ciphertext)."""


@dataclass(frozen=True)
class KeyRing:
    active_kid: str
    _keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for index, entry in enumerate(p.strip() for p in spec.split(",")):
            kid, sep, encoded = entry.partition(":")
            if not sep or not _KID.match(kid):
                raise ValueError(f"entry {index + 1} must look like kid:base64key")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"key {kid!r} is not valid base64") from None
            if len(key) != 32:
                raise ValueError(f"key {kid!r} must decode to 32 bytes (AES-256)")
            if kid in keys:
                raise ValueError(f"key id {kid!r} appears twice")
            keys[kid] = key
            order.append(kid)
        if not order:
            raise ValueError("must hold at least one key")
        return cls(order[0], keys)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def encrypt(self, plaintext: str, *, user_id: str, column: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[self.active_kid]).encrypt(
            nonce, plaintext.encode(), _associated(user_id, column)
        )
        return nonce + sealed

    def decrypt(self, blob: bytes, *, kid: str, user_id: str, column: str) -> str:
        key = self._keys.get(kid)
        if key is None:
            raise DecryptError(f"key id {kid!r} is not in TOKEN_ENCRYPTION_KEYS")
        try:
            plain = AESGCM(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated(user_id, column)
            )
        except (InvalidTag, ValueError):
            raise DecryptError(
                f"{column} does not decrypt under key id {kid!r} (tampered, moved or wrong key)"
            ) from None
        return plain.decode()


def _associated(user_id: str, column: str) -> bytes:
    return f"talivo-zoom-token\x00{user_id}\x00{column}".encode()


def generate_key() -> str:
    """A fresh base64 AES-256 key, for ``TOKEN_ENCRYPTION_KEYS``."""
    return base64.b64encode(os.urandom(32)).decode()
