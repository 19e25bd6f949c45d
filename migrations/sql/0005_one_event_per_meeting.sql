-- A Zoom meeting belongs to at most one event: two links never name the same meeting.
--
-- Zoom cannot tell two events booked alike apart (same host, title and start), and crash
-- recovery once adopted such a twin's meeting, after which the two events overwrote (and
-- cancelled) each other's meeting. The worker now keeps recovery away from meetings other links
-- name (worker/handlers/base.py); this index makes sure no save can ever link one twice: the
-- worker reads the refusal as "this meeting is not ours" (worker/pipeline/links.py).
--
-- Links stored before this migration may already share a meeting. Which event keeps it is not
-- something SQL can decide, so the migration stops and names them; list them with
--   SELECT zoom_meeting_id, array_agg(event_id) FROM event_links
--   WHERE zoom_meeting_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1;
-- then, for each event that should not keep the meeting, delete its row and send its latest
-- revision again: it gets a meeting of its own.
DO $$
DECLARE
    shared text;
BEGIN
    SELECT string_agg(zoom_meeting_id::text, ', ') INTO shared
    FROM (SELECT zoom_meeting_id FROM event_links WHERE zoom_meeting_id IS NOT NULL
          GROUP BY zoom_meeting_id HAVING count(*) > 1 ORDER BY zoom_meeting_id LIMIT 20) AS twice;
    IF shared IS NOT NULL THEN
        RAISE EXCEPTION 'event_links: Zoom meetings linked to more than one event: %', shared
            USING HINT = 'see migrations/sql/0005_one_event_per_meeting.sql for how to resolve';
    END IF;
END
$$;

CREATE UNIQUE INDEX event_links_zoom_meeting_id ON event_links (zoom_meeting_id)
    WHERE zoom_meeting_id IS NOT NULL;

-- Recovery also skips the earlier meeting of a handover under way (replaced_meeting_id).
CREATE INDEX event_links_replaced_meeting_id ON event_links (replaced_meeting_id)
    WHERE replaced_meeting_id IS NOT NULL;
