-- Leases instead of session advisory locks (worker/leases.py): the right to act on one
-- calendar event ('event:<id>') or to make meetings with one host's token ('host:<user>'),
-- held by one guard (owner: a random id per guard) until `until`, renewed while it works and
-- deleted when it ends. A guard holds no database connection while it waits for Zoom, so a
-- replica needs a few connections, not one per message, and the guard works through a
-- transaction-mode PgBouncer. A worker that dies leaves its leases to expire (LEASE_SECONDS).
CREATE TABLE leases (
    key    text PRIMARY KEY,
    owner  text NOT NULL,
    until  timestamptz NOT NULL
);

CREATE INDEX leases_owner ON leases (owner);
