//! Broker counters: every refusal, drop and disconnect is counted, never silent.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// TLS handshakes that failed or timed out (wrong certificate, plain TCP, slowloris).
    pub tls_failures: AtomicU64,
    /// Connections closed because a frame was started and not finished in time.
    pub frame_timeouts: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
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
