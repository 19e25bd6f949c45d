"""``CONNECT_RETURN_URL_ALLOWLIST``: where the connect flow may send a browser back to.

Entries are comma-separated origins (``https://app.talivo.com``: any path there) or URL
prefixes (``https://app.talivo.com/settings/``: that path and below). A URL is allowed when its
scheme, host and port equal an entry's and its path is the entry's path or below it. Parsed
URLs are compared, never strings, so ``https://app.talivo.com.evil.io`` or
``https://app.talivo.com@evil.io`` never pass; user info, backslashes, control characters and
``..`` segments are refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

_MAX_URL = 2048


@dataclass(frozen=True)
class _Entry:
    scheme: str
    host: str
    port: int
    path: str  # "" (whole origin) or ending with "/"


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _split(url: str) -> SplitResult | None:
    if len(url) > _MAX_URL or "\\" in url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return None
    try:
        parts = urlsplit(url)
        _port(parts)  # raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return None
    return parts


@dataclass(frozen=True)
class ReturnUrlAllowlist:
    entries: tuple[_Entry, ...]

    @classmethod
    def parse(cls, spec: str) -> ReturnUrlAllowlist:
        """Raises ``ValueError`` naming the first entry that is not an http(s) URL."""
        entries = []
        for raw in (e.strip() for e in spec.split(",")):
            if not raw:
                continue
            parts = _split(raw)
            if parts is None or parts.query or parts.fragment:
                raise ValueError(f"entry {raw!r} is not an http(s) origin or URL prefix")
            path = parts.path if parts.path.endswith("/") or not parts.path else parts.path + "/"
            entries.append(_Entry(parts.scheme, (parts.hostname or "").lower(), _port(parts), path))
        return cls(tuple(entries))

    def allows(self, url: str) -> bool:
        parts = _split(url)
        if parts is None:
            return False
        host, port = (parts.hostname or "").lower(), _port(parts)
        path = parts.path or "/"
        for entry in self.entries:
            if (entry.scheme, entry.host, entry.port) != (parts.scheme, host, port):
                continue
            if (
                entry.path in ("", "/")
                or path == entry.path.rstrip("/")
                or path.startswith(entry.path)
            ):
                return True
        return False
