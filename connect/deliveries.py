"""Zoom webhook deliveries already acted on, in Postgres (``migrations/sql/0007``).

A signed webhook can be captured and sent again while its timestamp is still fresh; every
replica shares this log, so a delivery changes something once whichever replica sees it.

- ``claim``: records a delivery; ``True`` for the first claim, ``False`` for any later one (a
  replay, or a duplicate racing the first). Rows whose freshness window has passed are purged
  in the same transaction: a replay after that is refused by the timestamp check instead.
- ``release``: forgets a claim whose action failed, so that Zoom's retry of the same delivery
  is acted on (a duplicate that arrived meanwhile was acknowledged without effect; the failed
  first answer is what makes Zoom retry).

``now`` is always passed in (the app's clock), never read here. Only a digest of the signed
message is stored, never a body or a signature.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from connect.webhook import MAX_SKEW_SECONDS, WebhookEvent

_WINDOW = timedelta(seconds=MAX_SKEW_SECONDS)


def expires_at(event: WebhookEvent) -> datetime:
    """When a replay of ``event`` stops passing the timestamp check."""
    return datetime.fromtimestamp(event.signed_at, UTC) + _WINDOW


class DeliveryLog:
    def __init__(self, pool: AsyncConnectionPool):
        self._pool = pool

    async def claim(self, event: WebhookEvent, now: datetime) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM zoom_webhook_deliveries WHERE expires_at < %s", (now,))
            cursor = await conn.execute(
                "INSERT INTO zoom_webhook_deliveries (delivery_sha256, event, expires_at)"
                " VALUES (%s, %s, %s) ON CONFLICT (delivery_sha256) DO NOTHING",
                (event.delivery_id, event.event[:64].replace("\x00", ""), expires_at(event)),
            )
            return cursor.rowcount == 1

    async def release(self, event: WebhookEvent) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM zoom_webhook_deliveries WHERE delivery_sha256 = %s",
                (event.delivery_id,),
            )
