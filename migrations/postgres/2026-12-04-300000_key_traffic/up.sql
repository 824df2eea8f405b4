-- Each key's traffic in 5-minute buckets (unix seconds at the bucket's start), summed over
-- every node and kept a little over a week: the feed health on the dashboard and the
-- Authkeys page. slow_cuts counts the times a session of the key was cut as a slow
-- subscriber.
CREATE TABLE key_traffic (
    authkey_id BIGINT NOT NULL REFERENCES authkeys(id) ON DELETE CASCADE,
    bucket BIGINT NOT NULL,
    published BIGINT NOT NULL DEFAULT 0,
    published_bytes BIGINT NOT NULL DEFAULT 0,
    received BIGINT NOT NULL DEFAULT 0,
    received_bytes BIGINT NOT NULL DEFAULT 0,
    slow_cuts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (authkey_id, bucket)
);
CREATE INDEX key_traffic_bucket ON key_traffic(bucket);
