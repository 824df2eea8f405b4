//! Every limit in one place: the defaults of the configurable ones (`Config` starts from
//! these) and the fixed bounds, each with what happens when it is hit. Limits of the layers
//! below `config` (frames in `wire`, the mail queue) are defined there and re-exported here,
//! so that this list is complete.

// ---- Configurable: the defaults (see `deploy/hpfriends.example.toml`) ----

/// Payload bytes a publish may carry (`max_payload`, 3.1.0's `MAXBUF`): a larger publish
/// frame is answered with a protocol error and the connection closes.
pub use crate::wire::limits::DEFAULT_MAX_PAYLOAD;

/// The largest `max_payload` accepted at start: 64 MiB, beyond which one frame would be a
/// memory problem of its own.
pub const MAX_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Connections open at once (`max_connections`): the next gets `Too many connections to
/// this broker` and is closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

/// Connections from one IP address (`max_connections_per_ip`): the next gets `Too many
/// connections from your address` and is closed.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;

/// Subscriptions one connection may hold (`max_subscriptions`): the next subscribe is
/// refused and the connection closes.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1_000;

/// Subscriptions one key may hold over all its connections (`max_subscriptions_per_key`):
/// the next subscribe is refused and that connection closes.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_KEY: usize = 10_000;

/// Bytes queued for one subscriber (`outbox_bytes`): then the slow-consumer policy applies
/// (backpressure pauses its publishers; disconnect and drop-oldest as named), counted.
pub const DEFAULT_OUTBOX_BYTES: usize = 16 * 1024 * 1024;

/// Milliseconds an outbox may stay full under backpressure (`stall_timeout_ms`): then its
/// subscriber is cut as a slow consumer and the paused publishers go on.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 5_000;

/// Seconds to authenticate (`auth_timeout_secs`, also bounds a TLS handshake): then
/// `Authentication timeout` and a close.
pub const DEFAULT_AUTH_TIMEOUT_SECS: u64 = 10;

/// Seconds to finish a started frame (`frame_timeout_secs`): then `Frame timeout` and a close.
pub const DEFAULT_FRAME_TIMEOUT_SECS: u64 = 30;

/// Seconds one write to a client may block (`write_timeout_secs`): then the connection drops.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 60;

/// Failed hpfeeds auths per minute, per address and per ident, answered at once
/// (`auth_free_failures`): later ones are answered after a delay (up to [`MAX_AUTH_DELAY`]).
pub const DEFAULT_AUTH_FREE_FAILURES: u32 = 5;

/// Website logins per account and address per 15 minutes (`login_attempts_per_account`):
/// then `429` with the wait.
pub const DEFAULT_LOGIN_ATTEMPTS_PER_ACCOUNT: u32 = 10;

/// Website logins per address per 15 minutes over all accounts
/// (`login_attempts_per_address`): then `429` with the wait.
pub const DEFAULT_LOGIN_ATTEMPTS_PER_ADDRESS: u32 = 100;

/// Password-reset requests per account from one address per hour
/// (`reset_requests_per_account`): then `429` for that address only.
pub const DEFAULT_RESET_REQUESTS_PER_ACCOUNT: u32 = 3;

/// Mail-sending requests per address per 15 minutes (`mail_requests_per_address`): then `429`.
pub const DEFAULT_MAIL_REQUESTS_PER_ADDRESS: u32 = 10;

/// Mails to one address per hour (`mails_per_recipient`): later ones are left out, logged
/// and counted.
pub const DEFAULT_MAILS_PER_RECIPIENT: u32 = 10;

/// Mails one user's actions cause per hour (`mails_per_sender`): later ones are left out,
/// logged and counted.
pub const DEFAULT_MAILS_PER_SENDER: u32 = 30;

/// Database connections (`db_pool_size`): requests wait for a free one, then fail with 503.
pub const DEFAULT_DB_POOL_SIZE: u32 = 8;

/// The largest `db_pool_size` accepted at start.
pub const MAX_DB_POOL_SIZE: u32 = 256;

/// Channels with their own series in the per-channel metrics (`metrics_top_channels`): the
/// rest are summed as `other`.
pub const DEFAULT_METRICS_TOP_CHANNELS: usize = 20;

/// Seconds between a cluster node's pings to NATS (`nats_ping_interval_secs`): three
/// unanswered in a row and the link counts as lost (logged, `nats_connected` 0), then it is
/// reconnected.
pub const DEFAULT_NATS_PING_INTERVAL_SECS: u64 = 5;

/// Seconds the cluster's JetStream stream keeps what crosses nodes (`nats_retention_secs`):
/// the longest NATS outage, failover or partition that loses nothing between nodes.
pub const DEFAULT_NATS_RETENTION_SECS: u64 = 120;
/// The longest `nats_retention_secs` accepted (a day: the stream is a buffer, not an archive).
pub const MAX_NATS_RETENTION_SECS: u64 = 86_400;
/// Bytes the cluster's JetStream stream may hold (`nats_stream_max_bytes`); past them the
/// oldest go first.
pub const DEFAULT_NATS_STREAM_MAX_BYTES: u64 = 1 << 30;

/// Seconds a PostgreSQL-backed server goes without reading the graph change log (it reads
/// it on notice and at least every second) before it fails closed (`graph_stale_after_secs`).
pub const DEFAULT_GRAPH_STALE_AFTER_SECS: u64 = 5;

// ---- Fixed bounds ----

/// Channels tracked one by one for the metrics since start: traffic on channels past this
/// many is counted under `other`, so invented channel names cannot grow memory or a scrape.
pub const MAX_TRACKED_CHANNELS: usize = 10_000;

/// The longest a throttled auth failure waits for its answer.
pub const MAX_AUTH_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// Password hashes (argon2id, 19 MiB each) computed at once, at most: one per core up to
/// this many. A login, sign-up or reset past them queues for [`PASSWORD_HASH_WAIT`], then
/// is answered `503` with `Retry-After`; memory for hashing never exceeds this many blocks.
pub const MAX_PASSWORD_HASHES_AT_ONCE: usize = 4;

/// How long a password check waits for a free hashing slot before the answer is `503`.
pub const PASSWORD_HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Keys whose usage counters wait for a failing database: past it the oldest are dropped
/// (counted in `usage_lost`).
pub const MAX_PENDING_USAGE_KEYS: usize = 100_000;

/// Key-log entries waiting for the writer: past it entries are dropped (counted).
pub const KEY_LOG_QUEUE: usize = 4096;

/// Key-log entries recorded per key per minute: past it they are summarised, not stored.
pub const KEY_LOG_PER_MINUTE: u32 = 20;

/// How long a page or API call waits for one database call: then `503` (the database
/// stopped answering without closing the connection).
pub const DB_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads of the whole sharing graph (a user's reach) that run at once; more wait
/// [`HEAVY_READ_WAIT`] for a slot, then get `503`, so they cannot take the pool from other
/// pages.
pub const HEAVY_READS: usize = 2;

/// How long a heavy read waits for a slot.
pub const HEAVY_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bytes of a form or JSON body the website reads: a larger one is answered 413.
pub const FORM_LIMIT: usize = 64 * 1024;

/// Bytes queued for one browser's live view: past it the view's oldest messages are dropped.
pub const LIVE_OUTBOX: usize = 4 * 1024 * 1024;

/// Payload bytes of one message shown in the live view: the rest is cut, and said so.
pub const LIVE_SHOWN: usize = 64 * 1024;

/// Channels one live view follows at most (one stream for all of them): asking for more
/// is answered 400.
pub const MAX_LIVE_CHANNELS: usize = 20;

/// Live views one user may hold open: the next is answered 429.
pub const MAX_LIVE_VIEWS: usize = 8;

/// Offers one user may have waiting for an answer at once: the next is refused until some
/// are answered or withdrawn (no flooding others' Shared-with-me pages or mailboxes).
pub const MAX_OPEN_OFFERS: usize = 200;

/// Group invitations one user may have waiting for an answer at once: the next is refused.
pub const MAX_OPEN_INVITATIONS: usize = 200;

/// Groups one user may own: the next is refused.
pub const MAX_GROUPS_OWNED: usize = 100;

/// Bytes of an authkey's secret: a longer one is refused (it is hashed for every connection
/// of the key, and stored, sealed, in every backup).
pub const MAX_SECRET_LEN: usize = 256;

/// Characters of a group's description: a longer one is refused with a field error.
pub const MAX_GROUP_DESCRIPTION: usize = 500;

/// Characters of an authkey's comment: a longer one is refused with a field error.
pub const MAX_KEY_COMMENT: usize = 200;

/// Entries per page of any list that can grow (keys, shares, groups, offers, logs).
pub const PER_PAGE: usize = 50;

/// Arrows the sharing-graph page draws at most: past it the page sums up the shares by
/// channel, each a link to its own picture. The picture stays readable with 200 shares among
/// 120 people (the browser story's screenshot); a hub's 600 arrows are a tangle.
pub const GRAPH_DRAW_MAX: usize = 250;

/// Publishers named per channel in the catalogue (the count says how many in all; the
/// channel's page lists them, a page at a time): at 100,000 users a channel has thousands.
pub const CATALOGUE_NAMES: usize = 10;

/// Keys a rate limiter remembers before it sweeps the ones whose bucket is full again.
pub const LIMITER_SWEEP_AT: usize = 100_000;

/// Mails waiting to be sent: past it a mail is dropped (counted, logged).
pub use crate::mail::QUEUE as MAIL_QUEUE;

/// The largest payload `hpfriends sub` accepts from a broker.
pub use crate::client::CLIENT_MAX_PAYLOAD;

/// Milliseconds a website change waits for the other live nodes of a cluster
/// (`cluster_apply_wait_ms`): then the page answers, the log says which version was late.
pub const DEFAULT_CLUSTER_APPLY_WAIT_MS: u64 = 5_000;

/// Longest `node_id`: it rides on every relayed message.
pub const MAX_NODE_ID: usize = 64;

/// Subjects of a cluster's traffic are `<nats_prefix>.<channel>`; this prefix by default.
pub const DEFAULT_NATS_PREFIX: &str = "hpfeeds";

/// Width of one bucket of channel traffic (seconds): the catalogue's finest resolution
/// (the last hour is drawn as 12 of them).
pub const TRAFFIC_BUCKET_SECS: i64 = 300;

/// Channel traffic older than this (seconds) is deleted when newer traffic is written: the
/// catalogue draws a week at most.
pub const TRAFFIC_KEEP_SECS: i64 = 8 * 24 * 3600;

/// Open requests for access one user may have at a time; past it a new request is refused
/// until some are answered or withdrawn.
pub const MAX_OPEN_ACCESS_REQUESTS: usize = 50;

/// Longest note a requester may add to a request for access (characters).
pub const MAX_ACCESS_REQUEST_NOTE: usize = 500;

/// Longest affiliation on a profile (characters): a form asking for more is refused.
pub const MAX_AFFILIATION: usize = 100;

/// Longest description on a profile (characters): a form asking for more is refused.
pub const MAX_ABOUT: usize = 1000;

/// A key that published in the last week and nothing for this long (seconds) is flagged on
/// its owner's dashboard and Authkeys page as gone quiet.
pub const QUIET_AFTER_SECS: i64 = 3600;
