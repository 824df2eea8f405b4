-- The website: login sessions, the server's own secrets (the cookie signing key), and the
-- searchable indexes the pages use. Times are unix seconds.

-- A login session: the cookie carries a random token, only its hash is stored here, so a
-- leaked database holds no usable session.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    peer TEXT NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);

-- Generated on first start and kept, so that restarts keep everyone logged in.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE INDEX tokens_user ON tokens(user_id, kind);
CREATE INDEX shares_channel ON shares(channel);
