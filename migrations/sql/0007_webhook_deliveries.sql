-- Zoom webhook deliveries already acted on (connect/deliveries.py): a signed delivery is acted
-- on once. A capture replayed while its timestamp is still fresh (5 minutes either way, see
-- connect/webhook.py) finds its row here and is acknowledged without effect.
--
-- Keyed by SHA-256 of the signed message ("v0:{x-zm-request-timestamp}:{raw body}"): equal for
-- a replay, different for any delivery Zoom signs anew. A row is useless once its timestamp is
-- past the freshness window (expires_at) and is purged by the app; nothing here outlives it.
CREATE TABLE zoom_webhook_deliveries (
    delivery_sha256 text PRIMARY KEY,
    event           text NOT NULL,           -- the event type, for whoever reads the table
    expires_at      timestamptz NOT NULL     -- signed timestamp + the freshness window
);
CREATE INDEX zoom_webhook_deliveries_expires_at ON zoom_webhook_deliveries (expires_at);
