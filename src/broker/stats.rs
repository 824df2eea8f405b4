//! Broker counters: every refusal, drop and disconnect is counted, never silent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::wire::Channel;

/// Monotonic counters plus the open-connection gauge, updated lock-free from every session.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted by the listener.
    pub connections_accepted: AtomicU64,
    /// Connections refused by a connection limit.
    pub connections_refused: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Successful authentications.
    pub auth_ok: AtomicU64,
    /// Failed authentications (unknown ident or wrong hash).
    pub auth_failed: AtomicU64,
    /// Failed authentications answered late by the throttle (repeated failures).
    pub auth_throttled: AtomicU64,
    /// Publishes accepted from clients.
    pub publishes: AtomicU64,
    /// Publish payload bytes accepted.
    pub publish_bytes: AtomicU64,
    /// Frames queued to subscribers.
    pub deliveries: AtomicU64,
    /// Frames not delivered because a subscriber's outbox was full.
    pub dropped_slow: AtomicU64,
    /// Subscribers disconnected for not keeping up.
    pub slow_disconnects: AtomicU64,
    /// Publishes that waited for a full subscriber outbox (backpressure) before the
    /// publisher's next frame was read.
    pub backpressure_waits: AtomicU64,
    /// Connections closed for a protocol error (malformed, oversize, unexpected frame).
    pub protocol_errors: AtomicU64,
    /// Publishes and subscribes refused by the ACL or an ident mismatch.
    pub acl_refusals: AtomicU64,
    /// Subscriptions cut because the key lost the right while connected.
    pub access_lost: AtomicU64,
    /// Usage-counter writes that failed (their counters are kept for the next write).
    pub usage_write_failures: AtomicU64,
    /// Keys' usage counters dropped because too many were waiting for a failing database.
    pub usage_lost: AtomicU64,
    /// Key-log entries dropped because the writer fell behind.
    pub key_log_dropped: AtomicU64,
    /// When (Unix ms) the social graph last read the change log successfully: how far
    /// behind this node's ACLs may be (0: not yet).
    pub graph_feed_read_at_ms: AtomicU64,
    /// Failing closed: the change log has not been read for longer than
    /// `graph_stale_after_secs`, so only each user's own data is delivered.
    pub graph_stale: AtomicBool,
    /// Deliveries between users not made while failing closed.
    pub dropped_stale_graph: AtomicU64,
    /// TLS handshakes that failed or timed out (wrong certificate, plain TCP, slowloris).
    pub tls_failures: AtomicU64,
    /// Connections closed because a frame was started and not finished in time.
    pub frame_timeouts: AtomicU64,
    /// Frames read from clients, by opcode slot; of publishes only the refused ones (the
    /// accepted ones are `publishes`, not counted a second time on the publish path).
    pub frames_in: [AtomicU64; OPCODE_SLOTS],
    /// What the connections' writers count, on cache lines of its own.
    pub written: Written,
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Connections refused, by [`ConnRefused`] slot.
    pub refused_by: [AtomicU64; 3],
    /// Failed authentications, by [`AuthFailure`] slot.
    pub auth_failed_by: [AtomicU64; 4],
    /// ACL changes applied to live sessions.
    pub acl_changes: AtomicU64,
    /// Keys whose ACL those changes touched.
    pub acl_keys_changed: AtomicU64,
    /// Time the broker took to apply each ACL change to its live sessions.
    pub acl_apply_latency: LatencyHistogram,
    /// Per-channel traffic.
    pub channels: ChannelTally,
}

/// Opcodes counted apart in the frame counters (error … unsubscribe); an unknown opcode
/// is counted in the last slot.
pub const OPCODE_SLOTS: usize = 7;

/// The label of each opcode slot, in order.
pub const OPCODE_NAMES: [&str; OPCODE_SLOTS] = [
    "error",
    "info",
    "auth",
    "publish",
    "subscribe",
    "unsubscribe",
    "unknown",
];

/// Why a connection was refused before its session began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRefused {
    /// The broker's connection limit was reached.
    TooManyConnections,
    /// The per-address connection limit was reached.
    TooManyFromAddress,
    /// The TLS handshake failed or timed out.
    TlsHandshake,
}

impl ConnRefused {
    /// Every reason, in slot order.
    pub const ALL: [ConnRefused; 3] = [
        Self::TooManyConnections,
        Self::TooManyFromAddress,
        Self::TlsHandshake,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooManyConnections => "connection_limit",
            Self::TooManyFromAddress => "address_limit",
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// Why an authentication failed (the client is told the same for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No key has the ident.
    UnknownIdent,
    /// The key exists and the hash is wrong.
    WrongSecret,
    /// No auth frame within the auth timeout.
    Timeout,
    /// The first frame was not an auth.
    FirstNotAuth,
}

impl AuthFailure {
    /// Every reason, in slot order.
    pub const ALL: [AuthFailure; 4] = [
        Self::UnknownIdent,
        Self::WrongSecret,
        Self::Timeout,
        Self::FirstNotAuth,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownIdent => "unknown_ident",
            Self::WrongSecret => "wrong_secret",
            Self::Timeout => "timeout",
            Self::FirstNotAuth => "first_not_auth",
        }
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// A lock-free histogram over [`LATENCY_BUCKETS`]: one relaxed add per observation into
/// its bucket (non-cumulative; the exporter sums), plus count and sum.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Sum in seconds, count, and per-bucket `(upper bound, count)` pairs, not cumulative:
    /// the exporter (`prometheus-client`) sums them; the last bound is `f64::MAX`, which
    /// it writes as `+Inf`.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Relaxed);
            total += n;
            out.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX), n));
        }
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        (sum, total, out)
    }
}

/// The writers' counters, aligned to their own cache lines: the writer threads update them
/// per batch while the readers update the publish counters, and sharing a line would make
/// every core wait on the others.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Written {
    /// Frames written to clients, by opcode slot (refusals written by the listener before
    /// a session began included).
    pub frames: [AtomicU64; OPCODE_SLOTS],
    /// Bytes written to clients.
    pub bytes: AtomicU64,
    /// Time from queueing the oldest frame of a batch for a subscriber to the batch's
    /// write completing, for one batch in `outbox::LATENCY_SAMPLE`.
    pub latency: LatencyHistogram,
}

/// Channels tracked one by one in [`ChannelTally`]; traffic on channels past this many
/// (since start) is counted under `other`, so a client inventing channel names cannot
/// grow the broker's memory or a scrape.
pub use crate::config::limits::MAX_TRACKED_CHANNELS;

/// Messages and bytes published, and deliveries, on one channel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Publishes accepted.
    pub published: u64,
    /// Their payload bytes (whole frames).
    pub bytes: u64,
    /// Frames queued to subscribers.
    pub delivered: u64,
}

impl ChannelCounts {
    fn add(&mut self, o: &ChannelCounts) {
        self.published += o.published;
        self.bytes += o.bytes;
        self.delivered += o.delivered;
    }
}

/// Per-channel traffic, bounded: sessions add what they counted locally once per read, not
/// once per frame, so the lock is not on the per-frame path.
#[derive(Debug, Default)]
pub struct ChannelTally {
    inner: parking_lot::Mutex<(rustc_hash::FxHashMap<Channel, ChannelCounts>, ChannelCounts)>,
}

impl ChannelTally {
    /// Adds one session's counts for `channel`.
    pub fn add(&self, channel: &Channel, counts: &ChannelCounts) {
        let mut g = self.inner.lock();
        let (map, other) = &mut *g;
        if let Some(c) = map.get_mut(channel) {
            c.add(counts);
        } else if map.len() < MAX_TRACKED_CHANNELS {
            map.insert(channel.clone(), *counts);
        } else {
            other.add(counts);
        }
    }

    /// What each tracked channel gained since `seen` (which is brought up to date): what
    /// the catalogue's traffic buckets add. Channels counted under `other` are not in it.
    pub fn since(
        &self,
        seen: &mut rustc_hash::FxHashMap<Channel, ChannelCounts>,
    ) -> Vec<(Channel, ChannelCounts)> {
        let g = self.inner.lock();
        let mut out = Vec::new();
        for (c, now) in g.0.iter() {
            let before = seen.get(c).copied().unwrap_or_default();
            if *now != before {
                out.push((
                    c.clone(),
                    ChannelCounts {
                        published: now.published.saturating_sub(before.published),
                        bytes: now.bytes.saturating_sub(before.bytes),
                        delivered: now.delivered.saturating_sub(before.delivered),
                    },
                ));
                seen.insert(c.clone(), *now);
            }
        }
        out
    }

    /// The `top` channels by messages published (ties by name), and the rest summed.
    pub fn top(&self, top: usize) -> (Vec<(Channel, ChannelCounts)>, ChannelCounts) {
        let g = self.inner.lock();
        let mut all: Vec<(Channel, ChannelCounts)> = g.0.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut other = g.1;
        drop(g);
        all.sort_by(|a, b| b.1.published.cmp(&a.1.published).then_with(|| a.0.cmp(&b.0)));
        for (_, c) in all.iter().skip(top) {
            other.add(c);
        }
        all.truncate(top);
        (all, other)
    }
}

/// Milliseconds since the epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Stats {
    /// Notes that the social graph read the change log just now.
    pub fn graph_feed_read(&self) {
        self.graph_feed_read_at_ms.store(unix_ms(), Relaxed);
    }

    /// Seconds since the social graph last read the change log; `None` before the first read.
    pub fn graph_feed_lag_secs(&self) -> Option<f64> {
        let at = self.graph_feed_read_at_ms.load(Relaxed);
        #[allow(clippy::cast_precision_loss)] // milliseconds, far below 2^52
        (at > 0).then(|| unix_ms().saturating_sub(at) as f64 / 1000.0)
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts a connection refused before its session began.
    pub fn refused(&self, why: ConnRefused) {
        Self::add(&self.refused_by[why as usize], 1);
        if why != ConnRefused::TlsHandshake {
            Self::add(&self.connections_refused, 1);
        } else {
            Self::add(&self.tls_failures, 1);
        }
    }

    /// Counts a failed authentication.
    pub fn auth_failure(&self, why: AuthFailure) {
        Self::add(&self.auth_failed_by[why as usize], 1);
        if matches!(why, AuthFailure::UnknownIdent | AuthFailure::WrongSecret) {
            Self::add(&self.auth_failed, 1);
        }
    }

    /// Counts a frame read, by its opcode byte (publishes are counted apart).
    pub fn frame_in(&self, opcode: u8) {
        Self::add(&self.frames_in[usize::from(opcode).min(OPCODE_SLOTS - 1)], 1);
    }

    /// Counts a frame written to a client outside a session's writer, by its opcode byte.
    pub fn frame_out(&self, opcode: u8) {
        Self::add(&self.written.frames[usize::from(opcode).min(OPCODE_SLOTS - 1)], 1);
    }

    /// One line for the log: `name=value` pairs.
    pub fn summary(&self) -> String {
        let fields: [(&str, &AtomicU64); 19] = [
            ("connections_open", &self.connections_open),
            ("connections_accepted", &self.connections_accepted),
            ("connections_refused", &self.connections_refused),
            ("auth_ok", &self.auth_ok),
            ("auth_failed", &self.auth_failed),
            ("publishes", &self.publishes),
            ("publish_bytes", &self.publish_bytes),
            ("deliveries", &self.deliveries),
            ("dropped_slow", &self.dropped_slow),
            ("slow_disconnects", &self.slow_disconnects),
            ("backpressure_waits", &self.backpressure_waits),
            ("protocol_errors", &self.protocol_errors),
            ("acl_refusals", &self.acl_refusals),
            ("access_lost", &self.access_lost),
            ("usage_write_failures", &self.usage_write_failures),
            ("usage_lost", &self.usage_lost),
            ("key_log_dropped", &self.key_log_dropped),
            ("tls_failures", &self.tls_failures),
            ("frame_timeouts", &self.frame_timeouts),
        ];
        fields
            .iter()
            .map(|(k, v)| format!("{k}={}", v.load(Relaxed)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
