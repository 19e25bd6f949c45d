-- One Zoom connection per Talivo user: who they are on Zoom, what they granted, and the
-- AES-256-GCM sealed token pair (see token_store/crypto.py). Nothing else about the user.
CREATE TABLE zoom_tokens (
    user_id          text PRIMARY KEY,              -- the Talivo user
    zoom_user_id     text NOT NULL,
    zoom_account_id  text NOT NULL,                 -- Zoom rate limits are per account
    scopes           text[] NOT NULL DEFAULT '{}',
    access_token     bytea NOT NULL,                -- nonce || ciphertext || tag
    refresh_token    bytea NOT NULL,
    access_expires_at timestamptz NOT NULL,
    key_id           text NOT NULL,                 -- seals both token columns
    connected_at     timestamptz NOT NULL DEFAULT now(),
    refreshed_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- app_deauthorized webhooks name the Zoom user, not ours.
CREATE INDEX zoom_tokens_zoom_user_id ON zoom_tokens (zoom_user_id);
-- rotate-key looks for rows not under the active key.
CREATE INDEX zoom_tokens_key_id ON zoom_tokens (key_id);
