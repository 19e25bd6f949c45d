-- meeting.changed messages zoom-worker serve published from Zoom's meeting webhooks
-- (connect/meeting_links.py, connect/meeting_changes.py): one row per Zoom event acted on.
--
-- Zoom retries a delivery it got no 2xx for (within 3 seconds) 5, 25 and 85 minutes later,
-- each retry signed anew: zoom_webhook_deliveries (0007) cannot tell a retry from a new event,
-- but its message_id (a UUIDv5 of Zoom's event name, meeting id and event_ts, which a retry
-- repeats) can: a retry of an event published here publishes nothing. And a field a newer
-- host change already set is not set back by an older one arriving late (fields, occurred_at).
-- Written in the same transaction as the link's change, under the event's lease (0010). Rows
-- older than a day are purged by the app: Zoom's last retry comes well before that.
CREATE TABLE zoom_meeting_changes (
    message_id      text PRIMARY KEY,
    zoom_meeting_id bigint NOT NULL,
    event_id        text NOT NULL,
    change          text NOT NULL,          -- updated_on_zoom, deleted_on_zoom, started, ended
    occurred_at     timestamptz NOT NULL,   -- Zoom's event_ts
    fields          text[] NOT NULL DEFAULT '{}',  -- updated_on_zoom: the fields it stored
    published_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX zoom_meeting_changes_published_at ON zoom_meeting_changes (published_at);
-- The host changes applied to a meeting, for the fields they set.
CREATE INDEX zoom_meeting_changes_meeting ON zoom_meeting_changes (zoom_meeting_id, occurred_at);
