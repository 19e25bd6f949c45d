-- Hosts at Zoom's daily limit, known to every replica (worker/runtime/shared_daily.py): a host's
-- creates and updates are held back until `until` (Zoom's reset: 00:00 UTC or its Retry-After).
-- The replica Zoom refused writes the row (the later `until` wins); every replica loads the
-- rows still running every ZOOM_DAILY_LIMIT_REFRESH_SECONDS into memory and checks there, so a
-- Zoom call costs no round trip for it. Rows long past are deleted by the same refresher.
CREATE TABLE zoom_daily_limits (
    user_id  text PRIMARY KEY,
    until    timestamptz NOT NULL
);
