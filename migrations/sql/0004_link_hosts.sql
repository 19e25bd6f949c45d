-- A link belongs to its host: the Talivo user whose Zoom token made the meeting. The worker
-- touches an existing meeting (update, cancel, crash recovery) only with that user's token;
-- the event's organizer is used only to create. A revision naming another organizer is a
-- handover: the new organizer's meeting is made first, the old one is remembered in
-- replaced_* until it has been cancelled with its own host's token (worker/handlers/handover.py).
--
-- Links stored before this migration get host_user_id NULL (unknown): the worker reads NULL as
-- "the organizer named by the message at hand", which is what it assumed before. Such a link
-- is never seen as a handover; it gets its host on its next update, create or cancel.
ALTER TABLE event_links
    -- whose token made zoom_meeting_id (in state 'creating': whose token is making one)
    ADD COLUMN host_user_id          text,
    -- a handover under way: the earlier host's meeting, not yet cancelled, and that host
    ADD COLUMN replaced_meeting_id   bigint,
    ADD COLUMN replaced_host_user_id text;
