"""``CONNECT_RETURN_URL_ALLOWLIST``: where the connect flow may send a browser back to.

Entries are comma-separated origins (``https://app.talivo.com``: any path there) or URL
prefixes (``https://app.talivo.com/settings/``: that path and below). A URL is allowed when its
scheme, host and port equal an entry's and its path, as sent, is the entry's path or below it.
Parsed URLs are compared, never strings, so ``https://app.talivo.com.evil.io`` or
``https://app.talivo.com@evil.io`` never pass.

A path only stays below a prefix if nobody along the way can walk it back up, so anything a
browser or a server might read as a dot segment is refused, however it is spelled. The path is
percent-decoded again and again until nothing changes (``%252e`` -> ``%2e`` -> ``.``; at most
``_MAX_DECODES`` rounds), and the URL is refused when:

- the raw URL has a backslash, a space or control character, or anything outside ASCII;
- the host part has user info or any ``%`` (browsers decode hosts; we compare them as written);
- decoding needs more rounds, meets bytes that are not UTF-8, or leaves a ``%`` that starts no
  escape (``%u002e``);
- the decoded path has a backslash (browsers read it as ``/``), a ``;`` (``..;/`` is ``../`` to
  some servers), whitespace, control characters or anything outside ASCII (``%EF%BC%8E``, a
  full-width dot, is a ``.`` to a server that normalises Unicode);
- any segment of the decoded path, split at ``/`` (``%2f`` included), consists of dots only
  (``.``, ``..``, ``%2e%2E``, ``.%2e``, ``%252e%252e``, ``...``).

Allow-list entries are held to the same rules and may not contain ``%`` in their path, so a
URL whose raw path starts with an entry's path decodes to a path that starts with it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

_MAX_URL = 2048
# "%25252e" needs three rounds to become "."; a fourth finds nothing left to decode.
_MAX_DECODES = 4


@dataclass(frozen=True)
class _Entry:
    scheme: str
    host: str
    port: int
    path: str  # "" (whole origin) or ending with "/"


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _plain(text: str) -> bool:
    """Printable ASCII without space or backslash."""
    return all(0x21 <= ord(c) < 0x7F and c != "\\" for c in text)


def _decoded(path: str) -> str | None:
    """``path`` percent-decoded until it stops changing; ``None`` when that takes more than
    ``_MAX_DECODES`` rounds or meets bytes that are not UTF-8."""
    for _ in range(_MAX_DECODES):
        try:
            once = unquote(path, errors="strict")
        except UnicodeDecodeError:
            return None
        if once == path:
            return path
        path = once
    return None


def _safe_path(path: str) -> bool:
    decoded = _decoded(path)
    if decoded is None or not _plain(decoded) or "%" in decoded or ";" in decoded:
        return False
    return not any(segment and set(segment) == {"."} for segment in decoded.split("/"))


def _split(url: str) -> SplitResult | None:
    if len(url) > _MAX_URL or not _plain(url):
        return None
    try:
        parts = urlsplit(url)
        _port(parts)  # raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "%" in parts.netloc:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if not _safe_path(parts.path):
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
            if parts is None or parts.query or parts.fragment or "%" in parts.path:
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
