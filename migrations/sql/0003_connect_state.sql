-- The connect side's short-lived, single-use state (worker/web/state.py). Rows are useless
-- after expires_at and are purged by the app; nothing here outlives an hour.

-- Nonces of connect/disconnect tickets already presented: a ticket works once.
CREATE TABLE connect_ticket_nonces (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL          -- the ticket's own expiry; kept until then
);
CREATE INDEX connect_ticket_nonces_expires_at ON connect_ticket_nonces (expires_at);

-- One row per redirect to Zoom's authorize page. Keyed by SHA-256 of the state, so the
-- table alone does not let anyone finish a flow. used_at is set by the callback (single use);
-- the row stays until expiry so a replayed state still finds its return URL.
CREATE TABLE oauth_states (
    state_sha256  text PRIMARY KEY,
    user_id       text NOT NULL,             -- the Talivo user of the ticket
    return_url    text NOT NULL,             -- from the ticket, checked against the allow list
    ticket_nonce  text NOT NULL REFERENCES connect_ticket_nonces (nonce) ON DELETE CASCADE,
    code_verifier text NOT NULL,             -- PKCE; lives at most the state's lifetime
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);
