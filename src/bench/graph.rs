//! `hpfriends bench graph`: the control plane at community scale.
//!
//! For each size it generates a community ([`crate::store::generate`]) into a scratch
//! SQLite file, starts the real `hpfriends serve` on it as a child process, and measures:
//! start-up (spawn to listening), RSS above an empty broker, how long a share accept and a
//! revoke take to reach a live hpfeeds connection — through the website's JSON API (the
//! in-process path: it answers only once the change is live) and through the CLI (a second
//! process writing beside the server) — whether anything published after a revoke answered
//! was delivered, the server's CPU per change, and the broker's time per subscribe as
//! subscribers join one channel.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::BufMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BenchError, Conn, now_ns, publish_parts, rss_kib};
use crate::store::Store;
use crate::store::generate::Shape;
use crate::store::models::accounts::TokenKind;
use crate::wire::{Channel, Ident};

pub mod pages;
pub mod worst;

/// What to run.
#[derive(Debug, Clone)]
pub struct GraphBench {
    /// The `hpfriends` binary to start as the server and to run as the CLI.
    pub exe: PathBuf,
    /// Community sizes (users).
    pub sizes: Vec<usize>,
    /// Scratch directory (a database per size).
    pub dir: PathBuf,
    /// Accept/revoke rounds per path.
    pub rounds: usize,
    /// Subscribers joining one channel.
    pub subscribers: usize,
    /// The community's shape (users is set per size).
    pub shape: Shape,
    /// Leave each generated database in `dir` (`graph-USERS.db`) for a look afterwards.
    pub keep: bool,
    /// A PostgreSQL server to generate each community into (a fresh database per size)
    /// instead of a SQLite file.
    pub postgres: Option<String>,
    /// Add the graph's worst cases (long chains, a big group) and measure changes to them.
    pub worst: Option<crate::store::generate::Worst>,
}

/// A size's database: a SQLite file in the bench's folder, or a scratch PostgreSQL one.
struct BenchDb {
    url: String,
    file: Option<PathBuf>,
    scratch: Option<crate::store::scratch::ScratchDb>,
    keep: bool,
}

impl BenchDb {
    fn new(b: &GraphBench, name: &str) -> Result<BenchDb, BenchError> {
        if let Some(server) = &b.postgres {
            let scratch = crate::store::scratch::ScratchDb::on(server)
                .map_err(|e| BenchError::Protocol(e.to_string()))?;
            return Ok(BenchDb {
                url: scratch.url().to_owned(),
                file: None,
                scratch: Some(scratch),
                keep: b.keep,
            });
        }
        let file = b.dir.join(format!("{name}.db"));
        remove_sqlite(&file);
        Ok(BenchDb {
            url: file.to_string_lossy().into_owned(),
            file: Some(file),
            scratch: None,
            keep: b.keep,
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if self.keep {
            if let Some(s) = self.scratch.take() {
                eprintln!("bench graph: kept {}", s.url());
                std::mem::forget(s);
            }
            return;
        }
        if let Some(f) = &self.file {
            remove_sqlite(f);
        }
    }
}

fn remove_sqlite(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

/// One size's figures (times in ms unless named otherwise).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GraphRow {
    /// Users.
    pub users: usize,
    /// Shares (any state) and accepted ones.
    pub shares: usize,
    /// Accepted shares.
    pub accepted: usize,
    /// Seconds to generate the database.
    pub generate_s: f64,
    /// Seconds from spawning `serve` to its listening line.
    pub start_s: f64,
    /// RSS after start-up, KiB.
    pub rss_kib: u64,
    /// RSS of `serve` on an empty database, KiB.
    pub rss_empty_kib: u64,
    /// API accept: median and worst time from the request to the first message delivered.
    pub api_accept: (f64, f64),
    /// API revoke: median and worst time until the request answered (live by then).
    pub api_revoke: (f64, f64),
    /// CLI accept: median and worst time from spawning the command to the first message.
    pub cli_accept: (f64, f64),
    /// CLI revoke: median and worst time until the command answered.
    pub cli_revoke: (f64, f64),
    /// Messages delivered that were published after a revoke had answered (must be 0).
    pub leaked: u64,
    /// Server CPU per change (offer, accept or revoke through the API), ms.
    pub cpu_ms_per_change: f64,
    /// Broker time per subscribe, mean of the first and of the last 100 subscribers, µs.
    pub subscribe_us: (f64, f64),
    /// `GET /api/v1/` shares, authkeys, groups, logs and search for an ordinary user:
    /// median ms of each.
    pub list_ms: [f64; 5],
    /// The worst cases, when asked for.
    pub worst: Option<worst::WorstRow>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

/// The server's user + system CPU so far, in ms (`/proc/PID/stat`, clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// A running `serve` child and where it listens.
struct Server {
    child: Child,
    hpfeeds: SocketAddr,
    web: SocketAddr,
    started: Duration,
}

impl Server {
    fn start(exe: &Path, db: &str) -> Result<Server, BenchError> {
        let t0 = Instant::now();
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"])
            .env("HPFRIENDS_MAX_CONNECTIONS", "40000")
            .env("HPFRIENDS_MAX_CONNECTIONS_PER_IP", "40000")
            .env("HPFRIENDS_MAX_SUBSCRIPTIONS_PER_KEY", "40000")
            .env("HPFRIENDS_STATS_INTERVAL_SECS", "0")
            // Refusals are the subscribe probe's own doing: only errors are news here.
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Protocol("no stdout from serve".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("hpfriends listening:") => break l,
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    return Err(BenchError::Protocol("serve exited before listening".into()));
                }
            }
        };
        let started = t0.elapsed();
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let addr = |prefix: &str| -> Result<SocketAddr, BenchError> {
            line.split(prefix)
                .nth(1)
                .and_then(|r| r.split([',', ' ']).next())
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| BenchError::Protocol(format!("no {prefix} address in {line:?}")))
        };
        Ok(Server {
            hpfeeds: addr("tcp://")?,
            web: addr("http://")?,
            child,
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, as an operator stops it; then make sure.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to the JSON API: (status, body).
async fn api(
    web: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), BenchError> {
    let mut s = TcpStream::connect(web).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn json_id(body: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("id")?.as_i64()
}

/// Publishes on `channel` as `ident` every millisecond: 8 bytes of send time, 8 of
/// sequence.
async fn publisher(
    addr: SocketAddr,
    (ident, secret, channel): (&str, &str, &str),
    stop: Arc<AtomicBool>,
) -> Result<(), BenchError> {
    let mut c = Conn::open(&addr.to_string(), ident, secret).await?;
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while !stop.load(Relaxed) {
        tick.tick().await;
        let mut p = Vec::with_capacity(16);
        p.put_u64(now_ns());
        p.put_u64(seq);
        seq += 1;
        c.send(3, channel, &p).await?;
    }
    Ok(())
}

/// What a live subscriber saw: the send time of the first message since `mark`, and the
/// send time of the last message received.
#[derive(Default)]
struct Seen {
    first_after_mark: AtomicU64,
    last_sent: AtomicU64,
    mark: AtomicU64,
    received: AtomicU64,
    /// When the last message arrived, and the longest time between two arrivals (`now_ns`
    /// units): a publish path held up shows here.
    last_at: AtomicU64,
    max_gap: AtomicU64,
}

/// Subscribes to `channel` as `ident` and records what arrives in `seen`.
async fn subscriber(
    addr: SocketAddr,
    (ident, secret, channel): (&str, &str, &str),
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> Result<(), BenchError> {
    let mut c = Conn::open(&addr.to_string(), ident, secret).await?;
    c.send(4, channel, &[]).await?;
    while !stop.load(Relaxed) {
        let Ok(frame) = tokio::time::timeout(Duration::from_millis(100), c.next_frame()).await else {
            continue;
        };
        let (op, body) = frame?;
        if op != 3 {
            continue;
        }
        let Some((_, p)) = publish_parts(&body) else {
            continue;
        };
        if p.len() < 16 {
            continue;
        }
        let sent = u64::from_be_bytes(p[..8].try_into().unwrap_or_default());
        let at = now_ns();
        let before = seen.last_at.swap(at, Relaxed);
        if before != 0 {
            seen.max_gap.fetch_max(at.saturating_sub(before), Relaxed);
        }
        seen.received.fetch_add(1, Relaxed);
        seen.last_sent.fetch_max(sent, Relaxed);
        if sent >= seen.mark.load(Relaxed) {
            let _ = seen
                .first_after_mark
                .compare_exchange(0, now_ns(), Relaxed, Relaxed);
        }
    }
    Ok(())
}

/// Waits (at most 10 s) until the subscriber received a message published after `mark`;
/// the time it arrived, in `now_ns` units.
async fn first_after(seen: &Seen, mark: u64) -> Result<u64, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = seen.first_after_mark.load(Relaxed);
        if t != 0 && seen.mark.load(Relaxed) == mark {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Protocol(
                "no message reached the subscriber after an accept".into(),
            ));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn set_mark(seen: &Seen) -> u64 {
    let m = now_ns();
    seen.first_after_mark.store(0, Relaxed);
    seen.mark.store(m, Relaxed);
    m
}

/// Runs the CLI against the database; its stdout.
fn cli(exe: &Path, db: &str, args: &[&str]) -> Result<String, BenchError> {
    let out = Command::new(exe)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?;
    if !out.status.success() {
        return Err(BenchError::Protocol(format!(
            "hpfriends {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds the benchmark's own users, keys and API tokens: (publisher token, subscriber token).
fn bench_users(store: &Store) -> Result<(String, String), BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Protocol(e.to_string());
    let ch = |s: &str| Channel::new(s).map_err(|e| err(&e));
    let id = |s: &str| Ident::new(s).map_err(|e| err(&e));
    let mut tokens = Vec::new();
    for (name, ident, secret, publish, subscribe) in [
        (
            "benchpub",
            "bench-pub",
            "bench-pub-secret",
            vec![ch("bench.live")?],
            vec![],
        ),
        (
            "benchsub",
            "bench-sub",
            "bench-sub-secret",
            vec![],
            vec![ch("bench.live")?],
        ),
        (
            "benchflat",
            "bench-flat",
            "bench-flat-secret",
            vec![],
            vec![ch("bench.flat")?],
        ),
    ] {
        let user = store
            .add_user(name, &format!("{name}@bench.invalid"), "bench")
            .map_err(|e| err(&e))?;
        store
            .add_authkey(
                &crate::domain::listing::NewAuthkey {
                    ident: id(ident)?,
                    secret: crate::wire::Secret::new(secret),
                    owner: user.id,
                    publish,
                    subscribe,
                    comment: String::new(),
                },
                "bench",
            )
            .map_err(|e| err(&e))?;
        tokens.push(
            store
                .create_token(TokenKind::Api, user.id, "", None)
                .map_err(|e| err(&e))?,
        );
    }
    Ok((tokens.remove(0), tokens.remove(0)))
}

/// Broker time per subscribe as `n` connections join `bench.flat` one after another: the
/// time from sending the subscribe (followed by a subscribe the key may not make) to the
/// refusal of the second, which the session answers only after the first is routed.
async fn subscribe_costs(addr: SocketAddr, n: usize) -> Result<Vec<f64>, BenchError> {
    let mut conns = Vec::with_capacity(n);
    let mut costs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Conn::open(&addr.to_string(), "bench-flat", "bench-flat-secret").await?;
        let t0 = Instant::now();
        c.send(4, "bench.flat", &[]).await?;
        c.send(4, "bench.nope", &[]).await?;
        match c.next_frame().await {
            Err(BenchError::Broker(_)) => {}
            Err(e) => return Err(e),
            Ok((op, _)) => {
                return Err(BenchError::Protocol(format!(
                    "expected the refusal, got opcode {op}"
                )));
            }
        }
        costs.push(t0.elapsed().as_secs_f64() * 1e6);
        conns.push(c);
    }
    Ok(costs)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Runs one size.
pub async fn run_size(b: &GraphBench, users: usize, rss_empty_kib: u64) -> Result<GraphRow, BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Protocol(e.to_string());
    let holder = BenchDb::new(b, &format!("graph-{users}"))?;
    let db = holder.url.clone();
    let t = Instant::now();
    let store = Store::open(&db).map_err(|e| err(&e))?;
    let generated = store
        .generate(Shape { users, ..b.shape }, 0x5eed_u64 ^ users as u64)
        .map_err(|e| err(&e))?;
    let (pub_token, sub_token) = bench_users(&store)?;
    let worst_made = match b.worst {
        Some(w) => Some((worst::prepare(&store, users, w)?, w)),
        None => None,
    };
    drop(store);
    let generate_s = t.elapsed().as_secs_f64();
    eprintln!(
        "bench graph: {users} users generated in {generate_s:.1} s ({} shares)",
        generated.shares
    );

    let server = Server::start(&b.exe, &db)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut row = GraphRow {
        users,
        shares: generated.shares,
        accepted: generated.accepted,
        generate_s,
        start_s: server.started.as_secs_f64(),
        rss_kib: rss_kib(server.pid()).unwrap_or(0),
        rss_empty_kib,
        ..GraphRow::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let sub = tokio::spawn(subscriber(
        server.hpfeeds,
        ("bench-sub", "bench-sub-secret", "bench.live"),
        Arc::clone(&seen),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let publ = tokio::spawn(publisher(
        server.hpfeeds,
        ("bench-pub", "bench-pub-secret", "bench.live"),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    if seen.received.load(Relaxed) != 0 {
        return Err(BenchError::Protocol(
            "the subscriber received before any share".into(),
        ));
    }

    // Lists as a user of the community sees them (its keys, its shares and what is offered
    // to it, public offers included).
    // The dashboard reads what these read (shares, groups, keys, the newest log lines).
    let paths = [
        "/api/v1/shares",
        "/api/v1/authkeys",
        "/api/v1/groups",
        "/api/v1/logs",
        "/api/v1/search?q=u1",
    ];
    let mut lists: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..5 {
        for (i, path) in paths.iter().enumerate() {
            let t0 = Instant::now();
            let (status, _) = api(server.web, &sub_token, "GET", path, "").await?;
            lists[i].push(ms(t0.elapsed()));
            if status != 200 {
                return Err(BenchError::Protocol(format!("{path} answered {status}")));
            }
        }
    }
    for (i, l) in lists.into_iter().enumerate() {
        row.list_ms[i] = median_max(l).0;
    }

    let offer = r#"{"channel":"bench.live","to_user":"benchsub"}"#;
    let (mut api_accept, mut api_revoke, mut cli_accept, mut cli_revoke) = (vec![], vec![], vec![], vec![]);
    let cpu0 = cpu_ms(server.pid());
    let t_api = Instant::now();
    for _ in 0..b.rounds {
        let (status, body) = api(server.web, &pub_token, "POST", "/api/v1/shares", offer).await?;
        let id =
            json_id(&body).ok_or_else(|| BenchError::Protocol(format!("offer answered {status}: {body}")))?;
        let mark = set_mark(&seen);
        let t0 = Instant::now();
        let (status, body) = api(
            server.web,
            &sub_token,
            "POST",
            &format!("/api/v1/shares/{id}/accept"),
            "",
        )
        .await?;
        if status != 200 {
            return Err(BenchError::Protocol(format!("accept answered {status}: {body}")));
        }
        let arrived = first_after(&seen, mark).await?;
        let started = now_ns() - u64::try_from(t0.elapsed().as_nanos()).unwrap_or(0);
        api_accept.push((arrived.saturating_sub(started)) as f64 / 1e6);
        let t0 = Instant::now();
        let (status, body) = api(
            server.web,
            &pub_token,
            "POST",
            &format!("/api/v1/shares/{id}/revoke"),
            "",
        )
        .await?;
        let answered = now_ns();
        api_revoke.push(ms(t0.elapsed()));
        if status != 200 {
            return Err(BenchError::Protocol(format!("revoke answered {status}: {body}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if seen.last_sent.load(Relaxed) > answered {
            row.leaked += 1;
        }
    }
    let api_wall = t_api.elapsed();
    let cpu1 = cpu_ms(server.pid());
    // The same time with traffic and no changes, to take the traffic's own CPU out.
    tokio::time::sleep(api_wall).await;
    let cpu2 = cpu_ms(server.pid());
    if let (Some(a), Some(b1), Some(c)) = (cpu0, cpu1, cpu2) {
        let changes = (3 * b.rounds) as f64;
        row.cpu_ms_per_change = ((b1 - a) - (c - b1)).max(0.0) / changes;
    }

    for _ in 0..b.rounds {
        let out = cli(
            &b.exe,
            &db,
            &[
                "share",
                "offer",
                "--channel",
                "bench.live",
                "--to-user",
                "benchsub",
                "--as",
                "benchpub",
            ],
        )?;
        let id = out
            .split_whitespace()
            .nth(1)
            .filter(|_| out.starts_with("share "))
            .ok_or_else(|| BenchError::Protocol(format!("share offer said {out:?}")))?
            .to_owned();
        let mark = set_mark(&seen);
        let t0 = Instant::now();
        let exe = b.exe.clone();
        let dbp = db.clone();
        let id2 = id.clone();
        let accept = tokio::task::spawn_blocking(move || {
            cli(&exe, &dbp, &["share", "accept", &id2, "--as", "benchsub"])
        });
        let arrived = first_after(&seen, mark).await?;
        let started = now_ns() - u64::try_from(t0.elapsed().as_nanos()).unwrap_or(0);
        cli_accept.push((arrived.saturating_sub(started)) as f64 / 1e6);
        accept.await.map_err(|e| err(&e))??;
        let t0 = Instant::now();
        let exe = b.exe.clone();
        let dbp = db.clone();
        tokio::task::spawn_blocking(move || cli(&exe, &dbp, &["share", "revoke", &id, "--as", "benchpub"]))
            .await
            .map_err(|e| err(&e))??;
        let answered = now_ns();
        cli_revoke.push(ms(t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if seen.last_sent.load(Relaxed) > answered {
            row.leaked += 1;
        }
    }
    if let Some((prepared, w)) = worst_made {
        let running = worst::Running {
            exe: &b.exe,
            db: &db,
            hpfeeds: server.hpfeeds,
            web: server.web,
            tokens: (&pub_token, &sub_token),
            small: &seen,
            users,
            head_token: &prepared.head_token,
            hub: (&prepared.hub_token, &prepared.hub_cookie),
            pid: server.pid(),
        };
        row.worst = Some(worst::run(&running, prepared.made, w, b.rounds).await?);
    }
    stop.store(true, Relaxed);
    let _ = publ.await;
    let _ = sub.await;
    row.api_accept = median_max(api_accept);
    row.api_revoke = median_max(api_revoke);
    row.cli_accept = median_max(cli_accept);
    row.cli_revoke = median_max(cli_revoke);

    if b.subscribers > 0 {
        let costs = subscribe_costs(server.hpfeeds, b.subscribers).await?;
        let k = costs.len().min(100);
        row.subscribe_us = (mean(&costs[..k]), mean(&costs[costs.len() - k..]));
    }
    drop(server);
    drop(holder);
    Ok(row)
}

/// RSS of `serve` on an empty database, KiB.
pub fn empty_rss(b: &GraphBench) -> Result<u64, BenchError> {
    let db = BenchDb::new(
        &GraphBench {
            keep: false,
            ..b.clone()
        },
        "graph-empty",
    )?;
    let server = Server::start(&b.exe, &db.url)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(server.pid()).unwrap_or(0);
    drop(server);
    Ok(rss)
}

/// The rows as a Markdown table.
pub fn table(rows: &[GraphRow]) -> String {
    let mut out = String::from(
        "| users | shares (accepted) | serve ready | RSS (above empty) | per share | API accept → first msg | API revoke answered | CLI accept → first msg | CLI revoke answered | leaked after revoke | CPU per change | subscribe, first → last 100 | API lists: shares, keys, groups, logs, search |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let above = r.rss_kib.saturating_sub(r.rss_empty_kib);
        let per_share = if r.shares > 0 {
            above as f64 * 1024.0 / r.shares as f64
        } else {
            0.0
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {:.2} s | {:.0} MiB ({:.0} MiB) | {:.0} B | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {} | {:.2} ms | {:.0} → {:.0} µs | {:.1}, {:.1}, {:.1}, {:.1}, {:.1} ms |\n",
            r.users,
            r.shares,
            r.accepted,
            r.start_s,
            r.rss_kib as f64 / 1024.0,
            above as f64 / 1024.0,
            per_share,
            r.api_accept.0,
            r.api_accept.1,
            r.api_revoke.0,
            r.api_revoke.1,
            r.cli_accept.0,
            r.cli_accept.1,
            r.cli_revoke.0,
            r.cli_revoke.1,
            r.leaked,
            r.cpu_ms_per_change,
            r.subscribe_us.0,
            r.subscribe_us.1,
            r.list_ms[0],
            r.list_ms[1],
            r.list_ms[2],
            r.list_ms[3],
            r.list_ms[4],
        ));
    }
    let worst: Vec<(usize, &worst::WorstRow)> = rows
        .iter()
        .filter_map(|r| r.worst.as_ref().map(|w| (r.users, w)))
        .collect();
    if !worst.is_empty() {
        out.push('\n');
        out.push_str(&worst::table(&worst));
        let pages: Vec<(usize, &pages::PagesRow, (f64, f64, f64))> =
            worst.iter().map(|(u, w)| (*u, &w.pages, w.rss_mib)).collect();
        out.push('\n');
        out.push_str(&pages::table(&pages));
    }
    out
}
