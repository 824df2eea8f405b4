//! Prometheus metrics: what the broker, the database pool, the ACL control plane and the
//! mail queue counted, rendered on each scrape in the OpenMetrics text format.
//!
//! Nothing here is on the publish path: the broker counts with relaxed atomics
//! ([`Stats`]) and this module reads them when scraped. Served at `/metrics` on the
//! website (loopback peers, or a bearer `metrics_token`) and on `metrics_listen`.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::broker::Shared;
use crate::broker::messages::{GetOutboxDepth, OutboxDepth};
use crate::broker::remote::RemoteCounters;
use crate::broker::stats::{AuthFailure, ChannelCounts, ConnRefused, LatencyHistogram, OPCODE_NAMES, Stats};
use crate::mail::Mailer;
use crate::store::{PoolUse, Store};
use crate::wire::Channel;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything a scrape reads; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
    store: Store,
    mailer: Option<Mailer>,
    started: std::time::SystemTime,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What one scrape saw, owned, so the encoder needs no locks.
#[derive(Debug)]
struct Snapshot {
    stats: Arc<Stats>,
    outbox: OutboxDepth,
    pool: PoolUse,
    keys: usize,
    channels: Vec<(Channel, ChannelCounts)>,
    other: ChannelCounts,
    mail: Option<(usize, [u64; 4])>,
    started: f64,
    process: Option<(u64, u64)>,
    cluster: Option<RemoteCounters>,
}

impl Metrics {
    /// Reads from these parts; `mailer` is the website's, when it runs.
    pub fn new(shared: Arc<Shared>, store: Store, mailer: Option<Mailer>) -> Metrics {
        Metrics {
            shared,
            store,
            mailer,
            started: std::time::SystemTime::now(),
        }
    }

    /// Renders every metric now (asks the Broker actor for its outboxes' depth).
    pub async fn render(&self) -> String {
        let outbox = self.shared.broker.send(GetOutboxDepth).await.unwrap_or_default();
        let (channels, other) = self
            .shared
            .stats
            .channels
            .top(self.shared.config.metrics_top_channels);
        let mail = self.mailer.as_ref().map(|m| {
            let s = &m.stats;
            (
                m.queued(),
                [&s.sent, &s.failed, &s.dropped, &s.throttled].map(|c| c.load(Relaxed)),
            )
        });
        let snap = Snapshot {
            stats: Arc::clone(&self.shared.stats),
            outbox,
            pool: self.store.pool_use(),
            keys: self.shared.keys.load().len(),
            channels,
            other,
            mail,
            started: self
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            process: process_usage(),
            cluster: self.shared.remote.as_ref().map(|r| r.counters()),
        };
        let mut registry = Registry::with_prefix("hpfriends");
        registry.register_collector(Box::new(snap));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }
}

/// Resident memory and open file descriptors of this process, from `/proc` (Linux).
fn process_usage() -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((pages * 4096, fds))
}

/// Escapes a label value for the text format (the encoder writes values as given).
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn labels(pairs: &[(&'static str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Owned(label_value(v))))
        .collect()
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn gauge_f(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// Rows of a family with one label: `(value of `key`, count)`.
fn by<const N: usize>(key: &'static str, rows: [(&'static str, u64); N]) -> Vec<(Labels, u64)> {
    rows.into_iter()
        .map(|(v, n)| (labels(&[(key, v.into())]), n))
        .collect()
}

fn counter_family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(l)?)?;
    }
    Ok(())
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &LatencyHistogram) -> std::fmt::Result {
    let (sum, count, buckets) = h.snapshot();
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &*self.stats;
        let e = &mut e;
        gauge_f(
            e,
            "start_time_seconds",
            "When this process started (Unix time).",
            self.started,
        )?;
        gauge(
            e,
            "connections_open",
            "hpfeeds connections open now.",
            i64::try_from(load(&s.connections_open)).unwrap_or(i64::MAX),
        )?;
        counter(
            e,
            "connections_accepted",
            "hpfeeds connections accepted by the listeners.",
            load(&s.connections_accepted),
        )?;
        counter_family(
            e,
            "connections_refused",
            "Connections refused before a session began, by reason.",
            &by(
                "reason",
                ConnRefused::ALL.map(|r| (r.label(), load(&s.refused_by[r as usize]))),
            ),
        )?;
        counter(e, "auth_ok", "Successful authentications.", load(&s.auth_ok))?;
        counter(
            e,
            "auth_throttled",
            "Failed authentications answered late because they repeated (per ident or address).",
            load(&s.auth_throttled),
        )?;
        counter_family(
            e,
            "auth_failures",
            "Failed authentications, by reason (the client is told the same for each).",
            &by(
                "reason",
                AuthFailure::ALL.map(|r| (r.label(), load(&s.auth_failed_by[r as usize]))),
            ),
        )?;
        let mut frames_in: Vec<(Labels, u64)> = OPCODE_NAMES
            .iter()
            .enumerate()
            .map(|(i, op)| (labels(&[("opcode", (*op).into())]), load(&s.frames_in[i])))
            .collect();
        // Accepted publishes are counted once, as `publishes`; refused ones in the slot.
        frames_in[3].1 += load(&s.publishes);
        counter_family(
            e,
            "frames_received",
            "Frames read from clients, by opcode.",
            &frames_in,
        )?;
        let frames_out: Vec<(Labels, u64)> = OPCODE_NAMES
            .iter()
            .enumerate()
            .map(|(i, op)| (labels(&[("opcode", (*op).into())]), load(&s.written.frames[i])))
            .collect();
        counter_family(
            e,
            "frames_sent",
            "Frames written to clients, by opcode.",
            &frames_out,
        )?;
        counter(
            e,
            "received_bytes",
            "Bytes read from hpfeeds clients.",
            load(&s.bytes_in),
        )?;
        counter(
            e,
            "sent_bytes",
            "Bytes written to hpfeeds clients.",
            load(&s.written.bytes),
        )?;
        counter(
            e,
            "messages_published",
            "Publishes accepted from clients.",
            load(&s.publishes),
        )?;
        counter(
            e,
            "published_bytes",
            "Bytes of the publish frames accepted.",
            load(&s.publish_bytes),
        )?;
        counter(
            e,
            "messages_delivered",
            "Publish frames queued to subscribers.",
            load(&s.deliveries),
        )?;
        let mut by_channel: Vec<(Labels, u64)> = Vec::new();
        let mut delivered: Vec<(Labels, u64)> = Vec::new();
        let mut bytes: Vec<(Labels, u64)> = Vec::new();
        let rows = self
            .channels
            .iter()
            .map(|(c, n)| (c.as_str().to_owned(), *n))
            .chain(std::iter::once(("other".to_owned(), self.other)));
        for (name, n) in rows {
            let l = labels(&[("channel", name)]);
            by_channel.push((l.clone(), n.published));
            bytes.push((l.clone(), n.bytes));
            delivered.push((l, n.delivered));
        }
        counter_family(
            e,
            "channel_messages_published",
            "Publishes by channel: the busiest channels (metrics_top_channels), the rest as \"other\".",
            &by_channel,
        )?;
        counter_family(
            e,
            "channel_published_bytes",
            "Publish bytes by channel (as above).",
            &bytes,
        )?;
        counter_family(
            e,
            "channel_messages_delivered",
            "Deliveries by channel (as above).",
            &delivered,
        )?;
        counter_family(
            e,
            "slow_consumer_events",
            "What the slow-consumer policy did: publishers paused (backpressure), messages dropped, subscribers cut.",
            &by(
                "outcome",
                [
                    ("waited", load(&s.backpressure_waits)),
                    ("dropped", load(&s.dropped_slow)),
                    ("disconnected", load(&s.slow_disconnects)),
                ],
            ),
        )?;
        gauge(
            e,
            "outbox_queued_bytes",
            "Bytes queued for subscribers now, over all sessions.",
            as_i64(self.outbox.total_bytes),
        )?;
        gauge(
            e,
            "outbox_queued_bytes_max",
            "Bytes queued for the fullest subscriber now.",
            as_i64(self.outbox.max_bytes),
        )?;
        gauge(
            e,
            "outbox_nonempty",
            "Sessions with something queued now.",
            as_i64(self.outbox.nonempty),
        )?;
        gauge(
            e,
            "sessions",
            "Authenticated sessions now.",
            as_i64(self.outbox.sessions),
        )?;
        histogram(
            e,
            "delivery_latency_seconds",
            "From queueing the oldest frame of a batch for a subscriber to the batch's write completing (each outbox's first batch and one in 16 after it).",
            &s.written.latency,
        )?;
        counter(
            e,
            "protocol_errors",
            "Connections closed for a protocol error.",
            load(&s.protocol_errors),
        )?;
        counter(
            e,
            "frame_timeouts",
            "Connections closed for a frame not finished in time.",
            load(&s.frame_timeouts),
        )?;
        counter(
            e,
            "acl_refusals",
            "Publishes and subscribes refused by the ACL or an ident mismatch.",
            load(&s.acl_refusals),
        )?;
        counter(
            e,
            "access_lost",
            "Subscriptions cut because their key lost the right while connected.",
            load(&s.access_lost),
        )?;
        counter(
            e,
            "acl_changes_applied",
            "ACL changes applied to live sessions.",
            load(&s.acl_changes),
        )?;
        counter(
            e,
            "acl_keys_changed",
            "Keys whose ACL the applied changes touched.",
            load(&s.acl_keys_changed),
        )?;
        histogram(
            e,
            "acl_apply_seconds",
            "Time to apply one ACL change to the live sessions.",
            &s.acl_apply_latency,
        )?;
        gauge(
            e,
            "authkeys",
            "Authkeys in the broker's key table.",
            as_i64(self.keys),
        )?;
        gauge(
            e,
            "db_pool_connections_max",
            "Connections the database pool may open.",
            i64::from(self.pool.max),
        )?;
        gauge(
            e,
            "db_pool_connections_open",
            "Database connections open.",
            i64::from(self.pool.open),
        )?;
        gauge(
            e,
            "db_pool_connections_in_use",
            "Database connections checked out now.",
            i64::from(self.pool.open.saturating_sub(self.pool.idle)),
        )?;
        counter(
            e,
            "db_pool_checkout_failures",
            "Database connections asked for and not had (timeout, dead database).",
            self.pool.checkout_failures,
        )?;
        counter(
            e,
            "usage_write_failures",
            "Failed writes of keys' usage counters (kept for the next write).",
            load(&s.usage_write_failures),
        )?;
        counter(
            e,
            "usage_lost",
            "Keys' usage counters dropped while the database failed.",
            load(&s.usage_lost),
        )?;
        if let Some(lag) = s.graph_feed_lag_secs() {
            gauge_f(
                e,
                "graph_feed_lag_seconds",
                "Seconds since this node last read the graph change log (it reads every acl_poll_ms, \
                 or on notice and at least every second on PostgreSQL): a node cut off from the \
                 database grows it, and past graph_stale_after_secs fails closed.",
                lag,
            )?;
        }
        gauge(
            e,
            "graph_fail_closed",
            "1 while this server delivers only each user's own data: it has not read the graph \
             change log for longer than graph_stale_after_secs (PostgreSQL).",
            i64::from(s.graph_stale.load(std::sync::atomic::Ordering::Relaxed)),
        )?;
        counter(
            e,
            "dropped_stale_graph",
            "Deliveries between users not made while failing closed.",
            load(&s.dropped_stale_graph),
        )?;
        counter(
            e,
            "key_log_dropped",
            "Key-log entries dropped because the writer fell behind.",
            load(&s.key_log_dropped),
        )?;
        if let Some(c) = self.cluster {
            gauge(
                e,
                "cluster_nats_connected",
                "1 while this node is connected to the cluster's NATS server.",
                i64::from(c.connected),
            )?;
            counter(
                e,
                "cluster_relayed",
                "Local publishes relayed to the other nodes.",
                c.relayed,
            )?;
            counter(
                e,
                "cluster_relay_dropped",
                "Local publishes not relayed (queue full or NATS refused): other nodes missed them.",
                c.relay_dropped,
            )?;
            counter(
                e,
                "cluster_relay_waits",
                "Local publishes whose publisher waited for room in the queue to NATS (backpressure).",
                c.relay_waits,
            )?;
            counter(
                e,
                "cluster_remote_dropped",
                "Slow-consumer events of the NATS client: messages from other nodes dropped, this node not reading them fast enough.",
                c.remote_dropped,
            )?;
            counter(
                e,
                "cluster_remote_received",
                "Messages received from other nodes.",
                c.received,
            )?;
            counter(
                e,
                "cluster_remote_rejected",
                "Messages from other nodes thrown away as malformed.",
                c.rejected,
            )?;
            counter(
                e,
                "cluster_nats_disconnects",
                "Times the NATS connection was lost.",
                c.disconnects,
            )?;
            gauge(
                e,
                "cluster_subjects",
                "Channels whose traffic from other nodes this node subscribes to.",
                i64::try_from(c.subjects).unwrap_or(i64::MAX),
            )?;
            gauge(
                e,
                "cluster_jetstream",
                "1 when traffic between nodes is stored on NATS JetStream (nothing lost across a NATS restart).",
                i64::from(c.jetstream),
            )?;
            counter(
                e,
                "cluster_relay_retries",
                "Relayed batches sent again because JetStream did not confirm them at first.",
                c.relay_retries,
            )?;
            counter(
                e,
                "cluster_remote_lost",
                "Messages from other nodes that never came: an outage longer than the stream keeps them.",
                c.remote_lost,
            )?;
            counter(
                e,
                "cluster_remote_duplicates",
                "Messages from other nodes received twice and delivered once.",
                c.remote_duplicates,
            )?;
            counter(
                e,
                "cluster_reader_restarts",
                "Channel readers started again because the JetStream stream held messages they had not seen.",
                c.reader_restarts,
            )?;
        }
        if let Some((queued, [sent, failed, dropped, throttled])) = self.mail {
            gauge(e, "mail_queued", "Mails waiting to be sent.", as_i64(queued))?;
            counter_family(
                e,
                "mails",
                "Mails by outcome: sent, failed (transport), dropped (queue full), throttled (hourly bound).",
                &by(
                    "outcome",
                    [
                        ("sent", sent),
                        ("failed", failed),
                        ("dropped", dropped),
                        ("throttled", throttled),
                    ],
                ),
            )?;
        }
        if let Some((rss, fds)) = self.process {
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory of this process.",
                i64::try_from(rss).unwrap_or(i64::MAX),
            )?;
            gauge(
                e,
                "process_open_fds",
                "Open file descriptors of this process.",
                i64::try_from(fds).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label_value("x\ny"), "x\\ny");
    }
}
