-- One schedule of Zoom calls per (account, category), shared by every replica
-- (worker/runtime/shared_limits.py): next_slot is when the next call may go. A call takes the
-- later of next_slot and "now less the burst", and moves next_slot on by one interval, so all
-- replicas together never exceed the account's per-second ceiling. A 429 pushes it out.
CREATE TABLE zoom_rate_limits (
    account_id  text NOT NULL,
    category    text NOT NULL,
    next_slot   timestamptz NOT NULL,
    PRIMARY KEY (account_id, category)
);
