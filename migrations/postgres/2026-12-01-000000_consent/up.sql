-- Consent for every source (public offers are taken up per user, users block users) and the
-- sharer's control of onward travel. Times are unix seconds.

-- Whether the grantee may pass on, through its own redistribute shares, what it receives
-- through this share. Existing shares did not say, so they say no.
ALTER TABLE shares ADD COLUMN onward BOOLEAN NOT NULL DEFAULT FALSE;

-- A user who took up a public offer (a share to everyone).
CREATE TABLE share_follows (
    share_id BIGINT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (share_id, user_id)
);
CREATE INDEX share_follows_user ON share_follows(user_id);

-- blocker blocks blocked: nothing of blocked's reaches blocker, by any path.
CREATE TABLE user_blocks (
    blocker_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);

-- The ACL version each running server has applied to its live sessions, so that the CLI,
-- which changes the database beside `serve`, can wait until its change is live.
CREATE TABLE acl_applied (
    node TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TRIGGER share_follows_acl AFTER INSERT OR DELETE ON share_follows FOR EACH ROW EXECUTE FUNCTION acl_bump();
CREATE TRIGGER user_blocks_acl AFTER INSERT OR DELETE ON user_blocks FOR EACH ROW EXECUTE FUNCTION acl_bump();

-- Names and addresses are unique without regard to case: `DAVE` is `dave`.
CREATE UNIQUE INDEX users_name_nocase ON users(lower(name));
CREATE UNIQUE INDEX users_email_nocase ON users(lower(email));
CREATE UNIQUE INDEX groups_name_nocase ON groups(lower(name));

-- When each API token was last used, so that its owner can tell a forgotten one from one in use.
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
