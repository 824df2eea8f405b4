//! `hpfriends bench`: a load generator speaking the raw hpfeeds wire protocol, so the same
//! workload can be run against hpfriends and any other broker.
//!
//! Each payload starts with its send time (nanoseconds since the run began) and a sequence
//! number (the publisher's index in its top bits); subscribers record publish-to-receive
//! latency in an HDR histogram, and which numbers of each publisher they have seen, so
//! that a duplicate or a message out of its publisher's order is counted, not just lost
//! ones. Frames are
//! built by hand here rather than through `wire`, so that the generator's cost stays
//! visible and separate from the broker's.

pub mod graph;
pub mod relay;
mod sequences;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use hdrhistogram::Histogram;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use sequences::{SEQ_BITS, Sequences};

/// Payload prefix of the markers subscribers use to learn that their subscription is live.
const MARKER: &[u8] = b"HPFBENCH-MARK";
/// Smallest payload: send time and sequence number.
pub const MIN_SIZE: usize = 16;
/// Frames per write when publishing flat out.
const BATCH: usize = 64;
/// How long subscribers wait for stragglers once publishing is over and nothing arrives.
const DRAIN_IDLE: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Broker address, `host:port`.
    pub addr: String,
    /// Where subscribers connect instead, round robin (other nodes of a cluster, to measure
    /// delivery across it); empty: `addr`.
    pub sub_addrs: Vec<String>,
    /// Publisher key.
    pub pub_ident: String,
    /// Publisher secret.
    pub pub_secret: String,
    /// Subscriber key (needs publish rights too, for the start-up markers).
    pub sub_ident: String,
    /// Subscriber secret.
    pub sub_secret: String,
    /// Publishing connections.
    pub publishers: usize,
    /// Subscribing connections; each subscribes to every channel.
    pub subscribers: usize,
    /// Channels `bench.0` … ; publisher i publishes on channel i mod C.
    pub channels: usize,
    /// Messages in all, over all publishers.
    pub messages: u64,
    /// Payload bytes (at least 16).
    pub size: usize,
    /// Total publish rate in msg/s; `None` is as fast as possible.
    pub rate: Option<u64>,
    /// Bytes a publisher may be ahead of the subscribers (0: unbounded, flat out). A
    /// window hides how a broker copes with publishers that outrun their subscribers.
    pub window: u64,
    /// A bar on stderr to advance as messages are delivered (indicatif draws it only on a
    /// terminal); `None` for quiet runs (JSON output, scripts).
    pub progress: Option<indicatif::ProgressBar>,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Publishing connections.
    pub publishers: usize,
    /// Subscribing connections.
    pub subscribers: usize,
    /// Channels.
    pub channels: usize,
    /// Payload bytes.
    pub size: usize,
    /// Messages published.
    pub published: u64,
    /// Publish rate achieved, msg/s.
    pub published_per_s: f64,
    /// Deliveries expected (published × subscribers).
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Delivery rate, msg/s (first send to last receive).
    pub delivered_per_s: f64,
    /// Deliveries that never arrived.
    pub lost: u64,
    /// Subscribers the broker closed before they had everything (cut as slow consumers).
    pub subscribers_cut: usize,
    /// Deliveries of a message the subscriber had already received.
    pub duplicates: u64,
    /// Deliveries that came after a later message of the same publisher.
    pub misordered: u64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// Broker resident memory after the run, KiB (when `--pid` was given).
    pub broker_rss_kib: Option<u64>,
}

/// Errors of the load generator.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The broker said no.
    #[error("broker error: {0}")]
    Broker(String),
    /// The broker sent something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A task died.
    #[error("task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(clock().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn put_str(b: &mut BytesMut, s: &[u8]) {
    b.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
    b.put_slice(&s[..s.len().min(255)]);
}

fn frame(b: &mut BytesMut, op: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = b.len();
    b.put_u32(0);
    b.put_u8(op);
    body(b);
    let len = u32::try_from(b.len() - start).unwrap_or(u32::MAX);
    b[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A raw connection: read buffer plus stream.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    ident: String,
}

impl Conn {
    /// Connects, reads info and authenticates.
    async fn open(addr: &str, ident: &str, secret: &str) -> Result<Conn, BenchError> {
        Self::open_from(addr, None, ident, secret).await
    }

    /// As [`Conn::open`], from a given local address (127.0.0.x), so that more connections
    /// than one address has ports for can reach one broker port.
    async fn open_from(
        addr: &str,
        local: Option<std::net::IpAddr>,
        ident: &str,
        secret: &str,
    ) -> Result<Conn, BenchError> {
        let stream = match local {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let to = tokio::net::lookup_host(addr)
                    .await?
                    .find(std::net::SocketAddr::is_ipv4)
                    .ok_or_else(|| BenchError::Protocol(format!("no IPv4 address for {addr}")))?;
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.bind(std::net::SocketAddr::new(ip, 0))?;
                sock.connect(to).await?
            }
        };
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(1024),
            ident: ident.to_owned(),
        };
        let (op, body) = c.next_frame().await?;
        if op != 1 {
            return Err(BenchError::Protocol(format!("expected info, got opcode {op}")));
        }
        let name_len = usize::from(
            *body
                .first()
                .ok_or_else(|| BenchError::Protocol("empty info".into()))?,
        );
        let nonce = body.get(1 + name_len..).unwrap_or_default().to_vec();
        let mut h = Sha1::new();
        h.update(&nonce);
        h.update(secret.as_bytes());
        let hash = h.finalize();
        let mut out = BytesMut::new();
        frame(&mut out, 2, |b| {
            put_str(b, ident.as_bytes());
            b.put_slice(&hash);
        });
        c.stream.write_all(&out).await?;
        Ok(c)
    }

    /// Reads one whole frame: (opcode, body).
    async fn next_frame(&mut self) -> Result<(u8, BytesMut), BenchError> {
        loop {
            if self.buf.len() >= 5 {
                let len = usize::try_from(u32::from_be_bytes([
                    self.buf[0],
                    self.buf[1],
                    self.buf[2],
                    self.buf[3],
                ]))
                .unwrap_or(usize::MAX);
                if !(5..=64 << 20).contains(&len) {
                    return Err(BenchError::Protocol(format!("bad frame length {len}")));
                }
                if self.buf.len() >= len {
                    let mut f = self.buf.split_to(len);
                    let op = f[4];
                    f.advance(5);
                    if op == 0 {
                        return Err(BenchError::Broker(String::from_utf8_lossy(&f).into_owned()));
                    }
                    return Ok((op, f));
                }
                self.buf.reserve(len - self.buf.len());
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(BenchError::Protocol("broker closed the connection".into()));
            }
        }
    }

    async fn send(&mut self, op: u8, channel: &str, payload: &[u8]) -> Result<(), BenchError> {
        let mut out = BytesMut::new();
        let ident = self.ident.clone();
        frame(&mut out, op, |b| {
            put_str(b, ident.as_bytes());
            if op == 3 {
                put_str(b, channel.as_bytes());
                b.put_slice(payload);
            } else {
                b.put_slice(channel.as_bytes());
            }
        });
        self.stream.write_all(&out).await?;
        Ok(())
    }
}

fn channel(i: usize) -> String {
    format!("bench.{i}")
}

/// Splits a publish body into (channel, payload).
fn publish_parts(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let il = usize::from(*body.first()?);
    let rest = body.get(1 + il..)?;
    let cl = usize::from(*rest.first()?);
    Some((rest.get(1..1 + cl)?, rest.get(1 + cl..)?))
}

struct Shared {
    progress: tokio::sync::Notify,
    delivered: AtomicU64,
    published: AtomicU64,
    publishing_done: AtomicBool,
    last_receive_ns: AtomicU64,
}

/// Connects a subscriber, subscribes to every channel and waits for its own marker on
/// each, so that it is known to be live before publishing starts.
async fn subscriber(w: &Workload, n: usize) -> Result<Conn, BenchError> {
    let addr = if w.sub_addrs.is_empty() {
        &w.addr
    } else {
        &w.sub_addrs[n % w.sub_addrs.len()]
    };
    let mut c = Conn::open(addr, &w.sub_ident, &w.sub_secret).await?;
    for ch in 0..w.channels {
        c.send(4, &channel(ch), &[]).await?;
    }
    let mut pending: Vec<Vec<u8>> = (0..w.channels)
        .map(|ch| [MARKER, format!("-{n}-{ch}").as_bytes()].concat())
        .collect();
    for (ch, m) in pending.iter().enumerate() {
        c.send(3, &channel(ch), m).await?;
    }
    while !pending.is_empty() {
        let (op, body) = tokio::time::timeout(Duration::from_secs(10), c.next_frame())
            .await
            .map_err(|_| {
                BenchError::Protocol(
                    "subscription marker never came back (does the subscriber key may publish on bench.*?)"
                        .into(),
                )
            })??;
        if let (3, Some((_, payload))) = (op, publish_parts(&body)) {
            pending.retain(|m| m.as_slice() != payload);
        }
    }
    Ok(c)
}

/// What one subscriber received: how many, their latencies, whether it was cut, and its
/// duplicates and misordered deliveries.
struct Received {
    got: u64,
    hist: Histogram<u64>,
    cut: bool,
    duplicates: u64,
    misordered: u64,
}

async fn receive(mut c: Conn, expected: u64, shared: Arc<Shared>) -> Result<Received, BenchError> {
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 120_000_000_000, 3)
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    let mut seqs = Sequences::default();
    let mut got = 0u64;
    c.buf.reserve(256 * 1024);
    while got < expected {
        let idle = if shared.publishing_done.load(Relaxed) {
            DRAIN_IDLE
        } else {
            Duration::from_secs(60)
        };
        let read = tokio::time::timeout(idle, c.stream.read_buf(&mut c.buf)).await;
        match read {
            Err(_) => break, // nothing more is coming
            // Cut (as a slow consumer, say): what it missed is counted as lost.
            Ok(Ok(0)) => {
                return Ok(Received {
                    got,
                    hist,
                    cut: true,
                    duplicates: seqs.duplicates,
                    misordered: seqs.misordered,
                });
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(_)) => {}
        }
        let now = now_ns();
        let mut n = 0;
        while c.buf.len() >= 5 {
            let len = usize::try_from(u32::from_be_bytes([c.buf[0], c.buf[1], c.buf[2], c.buf[3]]))
                .unwrap_or(usize::MAX);
            if c.buf.len() < len {
                c.buf.reserve(len);
                break;
            }
            let f = c.buf.split_to(len);
            match f[4] {
                0 => return Err(BenchError::Broker(String::from_utf8_lossy(&f[5..]).into_owned())),
                3 => {
                    if let Some((_, p)) = publish_parts(&f[5..])
                        && p.len() >= MIN_SIZE
                        && !p.starts_with(MARKER)
                    {
                        let sent = u64::from_be_bytes(p[..8].try_into().unwrap_or_default());
                        let _ = hist.record(now.saturating_sub(sent).max(1_000));
                        seqs.record(u64::from_be_bytes(p[8..16].try_into().unwrap_or_default()));
                        n += 1;
                    }
                }
                _ => {}
            }
        }
        if c.buf.capacity() - c.buf.len() < 64 * 1024 {
            c.buf.reserve(256 * 1024);
        }
        got += n;
        shared.delivered.fetch_add(n, Relaxed);
        shared.last_receive_ns.fetch_max(now, Relaxed);
        shared.progress.notify_waiters();
    }
    Ok(Received {
        got,
        hist,
        cut: false,
        duplicates: seqs.duplicates,
        misordered: seqs.misordered,
    })
}

async fn publish(
    w: Workload,
    index: usize,
    count: u64,
    rate: Option<f64>,
    shared: Arc<Shared>,
) -> Result<(), BenchError> {
    let mut c = Conn::open(&w.addr, &w.pub_ident, &w.pub_secret).await?;
    let ch = channel(index % w.channels);
    let mut template = BytesMut::new();
    frame(&mut template, 3, |b| {
        put_str(b, w.pub_ident.as_bytes());
        put_str(b, ch.as_bytes());
        b.put_bytes(b'x', w.size);
    });
    let stamp_at = template.len() - w.size;
    let frame_len = template.len();
    let mut out = BytesMut::with_capacity(frame_len * BATCH);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let due = match rate {
            None => BATCH as u64,
            Some(r) => {
                let elapsed = start.elapsed().as_secs_f64();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let should = ((elapsed * r) as u64 + 1).min(count);
                if should <= sent {
                    #[allow(clippy::cast_precision_loss)]
                    let next = Duration::from_secs_f64((sent as f64) / r);
                    tokio::time::sleep(next.saturating_sub(start.elapsed())).await;
                    continue;
                }
                should - sent
            }
        };
        let n = due.min(count - sent);
        if w.window > 0 && w.subscribers > 0 {
            wait_for_window(&w, &shared, frame_len as u64).await;
        }
        out.clear();
        let ts = now_ns();
        for k in 0..n {
            let at = out.len();
            out.extend_from_slice(&template);
            out[at + stamp_at..at + stamp_at + 8].copy_from_slice(&ts.to_be_bytes());
            let seq = (index as u64) << SEQ_BITS | (sent + k);
            out[at + stamp_at + 8..at + stamp_at + 16].copy_from_slice(&seq.to_be_bytes());
        }
        c.stream.write_all(&out).await?;
        sent += n;
        shared.published.fetch_add(n, Relaxed);
    }
    // Stay connected until the subscribers are done, so nothing is cut off in flight.
    c.stream.flush().await?;
    Ok(())
}

/// Waits while the publishers are more than the window ahead of the average subscriber.
async fn wait_for_window(w: &Workload, shared: &Shared, frame_len: u64) {
    loop {
        let progressed = shared.progress.notified();
        tokio::pin!(progressed);
        progressed.as_mut().enable();
        let received_each = shared.delivered.load(Relaxed) / w.subscribers as u64;
        let ahead = shared.published.load(Relaxed).saturating_sub(received_each);
        if ahead.saturating_mul(frame_len) <= w.window {
            return;
        }
        // Bounded wait: a subscriber that died must not hang the publishers.
        let _ = tokio::time::timeout(Duration::from_millis(20), progressed).await;
    }
}

/// Runs a workload.
pub async fn run(w: Workload) -> Result<Report, BenchError> {
    let _ = clock();
    let shared = Arc::new(Shared {
        progress: tokio::sync::Notify::new(),
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
        publishing_done: AtomicBool::new(false),
        last_receive_ns: AtomicU64::new(0),
    });
    let mut subs = Vec::new();
    for n in 0..w.subscribers {
        subs.push(subscriber(&w, n).await?);
    }
    let publishers = w.publishers.max(1);
    let per_pub = w.messages / publishers as u64;
    let published_total = per_pub * publishers as u64;
    // Every subscriber is on every channel, so it receives every message.
    let expected_each = published_total;
    let receivers: Vec<_> = subs
        .into_iter()
        .map(|c| tokio::spawn(receive(c, expected_each, Arc::clone(&shared))))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let rate = w.rate.map(|r| r as f64 / publishers as f64);
    let progress = w.progress.clone().map(|bar| {
        bar.set_length(expected_each * w.subscribers as u64);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                bar.set_position(shared.delivered.load(Relaxed));
                bar.set_message(format!("published {}, delivered", shared.published.load(Relaxed)));
            }
        })
    });
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let pubs: Vec<_> = (0..publishers)
        .map(|i| tokio::spawn(publish(w.clone(), i, per_pub, rate, Arc::clone(&shared))))
        .collect();
    for p in pubs {
        p.await??;
    }
    let publish_secs = t0.elapsed().as_secs_f64();
    shared.publishing_done.store(true, Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 120_000_000_000, 3)
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    let (mut delivered, mut cut, mut duplicates, mut misordered) = (0, 0, 0, 0);
    for r in receivers {
        let got = r.await??;
        delivered += got.got;
        cut += usize::from(got.cut);
        duplicates += got.duplicates;
        misordered += got.misordered;
        let _ = hist.add(&got.hist);
    }
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(bar) = &w.progress {
        bar.finish_and_clear();
    }
    let last = shared.last_receive_ns.load(Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let deliver_secs = (last.saturating_sub(t0_ns) as f64 / 1e9).max(1e-9);
    let expected = expected_each * w.subscribers as u64;
    #[allow(clippy::cast_precision_loss)]
    let us = |v: u64| v as f64 / 1000.0;
    #[allow(clippy::cast_precision_loss)]
    Ok(Report {
        publishers,
        subscribers: w.subscribers,
        channels: w.channels,
        size: w.size,
        published: published_total,
        published_per_s: published_total as f64 / publish_secs.max(1e-9),
        expected,
        delivered,
        delivered_per_s: delivered as f64 / deliver_secs,
        lost: expected.saturating_sub(delivered.saturating_sub(duplicates)),
        subscribers_cut: cut,
        duplicates,
        misordered,
        p50_us: us(hist.value_at_quantile(0.5)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        broker_rss_kib: None,
    })
}

/// What a soak run measured: steady traffic that must lose nothing while connections churn,
/// and the broker's memory over time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    /// How long it ran.
    pub seconds: u64,
    /// The steady workload (its `lost` must be 0).
    pub steady: Report,
    /// Connect, auth, subscribe, read a little, disconnect: cycles completed.
    pub churn_cycles: u64,
    /// Churn cycles that failed (refused, reset).
    pub churn_errors: u64,
    /// Broker RSS every `SOAK_SAMPLE`, KiB (when a pid was given).
    pub rss_samples_kib: Vec<u64>,
    /// RSS once warmed up (at a tenth of the run), KiB.
    pub rss_warm_kib: Option<u64>,
    /// RSS at the end, KiB.
    pub rss_end_kib: Option<u64>,
    /// (end − warm) / warm, percent.
    pub rss_growth_pct: Option<f64>,
}

/// How often a soak samples the broker's memory.
pub const SOAK_SAMPLE: Duration = Duration::from_secs(10);

/// One churning client: connects, subscribes, reads for a while, disconnects, again,
/// until `stop`.
async fn churn(w: Workload, i: usize, stop: Arc<AtomicBool>, cycles: Arc<AtomicU64>, errors: Arc<AtomicU64>) {
    let mut n: u64 = 0;
    while !stop.load(Relaxed) {
        n += 1;
        let hold = Duration::from_millis((n * 37 + i as u64 * 11) % 250);
        let cycle = async {
            let mut c = Conn::open(&w.addr, &w.sub_ident, &w.sub_secret).await?;
            c.send(4, &channel(i % w.channels.max(1)), &[]).await?;
            // Reads whatever arrives for a while (ignoring it), then drops the connection.
            let _ = tokio::time::timeout(hold, async {
                loop {
                    c.next_frame().await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), BenchError>(())
            })
            .await;
            Ok::<(), BenchError>(())
        };
        match cycle.await {
            Ok(()) => cycles.fetch_add(1, Relaxed),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                errors.fetch_add(1, Relaxed)
            }
        };
    }
}

/// Runs `w` at its rate (default 1,000 msg/s) for `seconds` while `churners` clients
/// connect and disconnect, sampling the broker's memory when `pid` is given.
pub async fn soak(
    w: Workload,
    seconds: u64,
    churners: usize,
    pid: Option<u32>,
) -> Result<SoakReport, BenchError> {
    let rate = w.rate.unwrap_or(1000).max(1);
    let steady = Workload {
        rate: Some(rate),
        messages: rate.saturating_mul(seconds),
        ..w.clone()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let churn_tasks: Vec<_> = (0..churners)
        .map(|i| {
            tokio::spawn(churn(
                w.clone(),
                i,
                Arc::clone(&stop),
                Arc::clone(&cycles),
                Arc::clone(&errors),
            ))
        })
        .collect();
    let sampler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(SOAK_SAMPLE);
            tick.tick().await;
            while !stop.load(Relaxed) {
                tick.tick().await;
                if let Some(k) = pid.and_then(rss_kib) {
                    samples.push(k);
                }
            }
            samples
        })
    };
    let result = run(steady).await;
    stop.store(true, Relaxed);
    for t in churn_tasks {
        let _ = t.await;
    }
    let mut samples = sampler.await?;
    let mut report = result?;
    report.broker_rss_kib = pid.and_then(rss_kib);
    if let Some(end) = report.broker_rss_kib {
        samples.push(end);
    }
    let warm = samples.get(samples.len() / 10).copied();
    let end = samples.last().copied();
    #[allow(clippy::cast_precision_loss)]
    let growth = match (warm, end) {
        (Some(w0), Some(e)) if w0 > 0 => Some((e as f64 - w0 as f64) / w0 as f64 * 100.0),
        _ => None,
    };
    Ok(SoakReport {
        seconds,
        steady: report,
        churn_cycles: cycles.load(Relaxed),
        churn_errors: errors.load(Relaxed),
        rss_samples_kib: samples,
        rss_warm_kib: warm,
        rss_end_kib: end,
        rss_growth_pct: growth,
    })
}

/// Resident memory of a process, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Idle connections opened from one source address before the next is used.
const PORTS_PER_SOURCE: usize = 20_000;

/// What holding idle connections cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleReport {
    /// Connections opened, authenticated and subscribed.
    pub connections: usize,
    /// Broker RSS before, KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS while holding them, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / connections, KiB.
    pub kib_per_connection: Option<f64>,
}

/// Opens `n` authenticated subscribers on `bench.0`, holds them for `hold`, checks they are
/// all still open, and reports the broker's memory growth. (No start-up markers here: each
/// would reach every earlier idle subscriber, which never reads.)
pub async fn idle(
    w: &Workload,
    n: usize,
    hold: Duration,
    pid: Option<u32>,
) -> Result<IdleReport, BenchError> {
    let before = pid.and_then(rss_kib);
    // Loopback has ~28,000 ephemeral ports per address pair: past that, other source
    // addresses (127.0.0.2, …) on a loopback broker.
    let loopback = w.addr.starts_with("127.") || w.addr.starts_with("localhost");
    let open = |i: usize| async move {
        let local = (loopback && i >= PORTS_PER_SOURCE).then(|| {
            let k = u8::try_from(1 + i / PORTS_PER_SOURCE).unwrap_or(u8::MAX);
            std::net::IpAddr::from([127, 0, 0, k])
        });
        let mut c = Conn::open_from(&w.addr, local, &w.sub_ident, &w.sub_secret).await?;
        c.send(4, &channel(0), &[]).await?;
        Ok::<Conn, BenchError>(c)
    };
    let mut conns = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let chunk = (n - i).min(100);
        for c in futures_util::future::join_all((i..i + chunk).map(open)).await {
            conns.push(c?);
        }
        i += chunk;
        if let Some(bar) = &w.progress {
            bar.set_length(n as u64);
            bar.set_position(i as u64);
        }
    }
    if let Some(bar) = &w.progress {
        bar.finish_and_clear();
    }
    tokio::time::sleep(hold).await;
    let after = pid.and_then(rss_kib);
    // Every connection must still be open and silent: a refused auth would have closed it.
    let mut probe = [0u8; 64];
    for c in &conns {
        match c.stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) | Err(_) => return Err(BenchError::Protocol("an idle connection was closed".into())),
            Ok(_) => {
                return Err(BenchError::Protocol(format!(
                    "an idle connection received: {}",
                    String::from_utf8_lossy(&probe)
                )));
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let per = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n.max(1) as f64),
        _ => None,
    };
    drop(conns);
    Ok(IdleReport {
        connections: n,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: per,
    })
}

/// The human table for a report.
pub fn table(r: &Report) -> String {
    let rss = r
        .broker_rss_kib
        .map(|k| format!("\nbroker RSS  {:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_default();
    format!(
        "{} publisher(s) -> {} subscriber(s), {} channel(s), {}-byte payloads\n\
         published  {:>12} msg   {:>14.0} msg/s\n\
         delivered  {:>12} msg   {:>14.0} msg/s   lost {}   duplicates {}   misordered {}   subscribers cut {}\n\
         latency    p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms   max {:.3} ms{rss}",
        r.publishers,
        r.subscribers,
        r.channels,
        r.size,
        r.published,
        r.published_per_s,
        r.delivered,
        r.delivered_per_s,
        r.lost,
        r.duplicates,
        r.misordered,
        r.subscribers_cut,
        r.p50_us / 1000.0,
        r.p99_us / 1000.0,
        r.p999_us / 1000.0,
        r.max_us / 1000.0,
    )
}
