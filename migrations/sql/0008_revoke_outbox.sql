-- The revoke outbox: revokes Zoom is owed for grants we dropped (token_store/revokes.py).
--
-- A disconnect (or a reconnect to another Zoom user) deletes the connection and writes its row
-- here in the same transaction, so no crash can lose the revoke; the row is tried at once and,
-- while Zoom fails, again with growing delays by `zoom-worker serve` (connect/revoker.py) until
-- Zoom confirms the revoke or says it no longer knows the token. A grant exchanged at connect
-- but never stored is revoked at once and lands here only when that fails.
--
-- Replicas share the rows: a pass claims due rows with FOR UPDATE SKIP LOCKED and pushes
-- next_attempt_at past the claim lease before calling Zoom, so no two revoke one row at once,
-- and a claim whose process died is due again when its lease runs out.
CREATE TABLE zoom_revoke_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL,          -- the Talivo user whose grant it was
    zoom_user_id     text,                   -- NULL when refused before Zoom said who it is
    reason           text NOT NULL,          -- disconnect | replaced | unstored | refused
    refresh_token    bytea NOT NULL,         -- sealed like zoom_tokens: nonce || ciphertext || tag
    key_id           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,   -- failed attempts so far
    last_error       text,                   -- the last failure's class name, never a message
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL    -- due from then (a claim moves it past its lease)
);

CREATE INDEX zoom_revoke_outbox_next_attempt_at ON zoom_revoke_outbox (next_attempt_at);
-- rotate-key looks for rows not under the active key.
CREATE INDEX zoom_revoke_outbox_key_id ON zoom_revoke_outbox (key_id);
