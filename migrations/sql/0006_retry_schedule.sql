-- Retries the worker does by itself (worker/pipeline/retries.py): at most one per calendar
-- event, the latest revision that failed in a way waiting may cure (Zoom unavailable or rate
-- limited, the host's daily limit). A newer revision replaces or clears the row in the same
-- statement that stores its outcome, so an older revision is never retried after a newer one.
--
-- The source record is kept as consumed (its offset has been committed): a retry runs the
-- record again, under the event's guard, from whichever replica claims it. A claim is a lease
-- (claimed_until): a replica that dies holding one frees it when the lease runs out.
CREATE TABLE retry_schedule (
    event_id          text PRIMARY KEY,
    message_id        text NOT NULL,
    revision          bigint NOT NULL,
    attempt           integer NOT NULL,         -- failures of this message so far (1 = first)
    reason            text NOT NULL,            -- the meeting.failed reason of the last failure
    first_failed_at   timestamptz NOT NULL,     -- the horizon counts from here
    due_at            timestamptz NOT NULL,
    notice_topic      text NOT NULL,
    notice            bytea NOT NULL,           -- the meeting.failed the calendar was told
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    source_key        bytea,
    source_value      bytea,
    header_names      text[] NOT NULL,
    header_values     bytea[] NOT NULL,
    source_timestamp_ms bigint NOT NULL,
    claimed_by        text,
    claimed_until     timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX retry_schedule_due ON retry_schedule (due_at);
