-- A user who cleared an ended share (declined, revoked or left) from their lists. Only the
-- lists change: an ended share carries nothing, and the sharer's and grantee's records stay.
CREATE TABLE share_dismissals (
    share_id BIGINT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, share_id)
);
