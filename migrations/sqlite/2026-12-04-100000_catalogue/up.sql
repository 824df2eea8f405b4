-- The channel catalogue: traffic per channel in 5-minute buckets (unix seconds at the
-- bucket's start), summed over every node, kept a little over a week; and requests for
-- access, answered by the publisher asked.
CREATE TABLE channel_traffic (
    channel TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    messages BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    deliveries BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, bucket)
);
CREATE INDEX channel_traffic_bucket ON channel_traffic(bucket);

CREATE TABLE access_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    to_user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    share_id BIGINT REFERENCES shares(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    answered_at BIGINT
);
-- At most one open request per requester, publisher and channel.
CREATE UNIQUE INDEX access_requests_open ON access_requests(from_user_id, to_user_id, channel) WHERE state = 'open';
CREATE INDEX access_requests_to ON access_requests(to_user_id, state);
