-- One row per calendar event the worker has seen: the Zoom meeting linked to it (if any), the
-- revisions seen and applied, and the last published result so a redelivery re-publishes it.
-- Only meeting metadata is kept (title, time, join URL, meeting id), as the help article promises.
CREATE TABLE event_links (
    event_id            text PRIMARY KEY,
    organizer_user_id   text NOT NULL,
    state               text NOT NULL CHECK (state IN ('none', 'creating', 'linked', 'cancelled', 'deleted')),
    seen_revision       bigint NOT NULL,
    zoom_meeting_id     bigint,
    zoom_host_id        text,
    join_url            text,
    title               text,
    start_time          timestamptz,
    duration_minutes    integer,
    timezone            text,
    agenda_digest       text,
    creating_since      timestamptz,
    last_message_id     text,
    last_result_topic   text,
    last_result         bytea,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
