//! `hpfriends bench …`: the load generators (data plane, idle connections, soak, the
//! control plane at community scale, and the bare relay floor), with their output.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::output;
use crate::bench;

/// Options of `bench`. Channels are `bench.0` … `bench.C-1`; the subscriber key must also
/// be allowed to publish on them (each subscriber confirms its subscription with a marker).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Another benchmark instead of the data plane's.
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 10000)]
    port: u16,
    /// Subscribers connect here instead (HOST:PORT, repeat or comma-separate for round
    /// robin): other nodes of a cluster, to measure delivery across it.
    #[arg(long, value_delimiter = ',')]
    sub_at: Vec<String>,
    /// Publisher ident.
    #[arg(long, default_value = "benchpub")]
    pub_ident: String,
    /// Publisher secret.
    #[arg(long, default_value = "bench")]
    pub_secret: String,
    /// Subscriber ident.
    #[arg(long, default_value = "benchsub")]
    sub_ident: String,
    /// Subscriber secret.
    #[arg(long, default_value = "bench")]
    sub_secret: String,
    /// Publishing connections.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribing connections (each on every channel).
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Channels.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    channels: u16,
    /// Messages in all.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload bytes (at least 16: send time and sequence number).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Total publish rate, msg/s [default: as fast as possible].
    #[arg(long)]
    rate: Option<u64>,
    /// Bytes publishers may run ahead of the subscribers (0: unbounded, flat out as a
    /// sensor burst or a replay sends). A window makes the generator wait for its own
    /// subscribers, which hides how a broker copes with publishers outrunning them.
    #[arg(long, default_value_t = 0)]
    window: u64,
    /// Soak: run the steady workload (--rate, default 1000 msg/s) for this many seconds
    /// while --churn clients connect and disconnect; reports loss and the broker's memory
    /// over time (give --pid).
    #[arg(long)]
    soak: Option<u64>,
    /// Churning clients during --soak.
    #[arg(long, default_value_t = 20)]
    churn: usize,
    /// Instead of traffic: open this many authenticated idle subscribers.
    #[arg(long)]
    idle: Option<usize>,
    /// Seconds to hold the idle connections before measuring.
    #[arg(long, default_value_t = 2)]
    hold: u64,
    /// Broker process id, to report its memory.
    #[arg(long)]
    pid: Option<u32>,
    /// One JSON line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Benchmarks other than the data plane's traffic.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// The control plane at community scale: generates communities into scratch databases,
    /// starts `serve` on each and measures start-up, memory, share changes reaching a live
    /// connection (API and CLI), CPU per change and subscribe cost on a crowded channel.
    Graph(GraphArgs),
    /// The floor to compare against: a bare relay (any auth accepted, no ACL, no queues)
    /// that forwards frame bytes to subscribers with blocking writes. Runs until killed;
    /// never expose it.
    Relay(RelayArgs),
}

/// Options of `bench relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:10992")]
    listen: SocketAddr,
    /// One blocking write per frame and subscriber, instead of one per run of frames on a
    /// channel that arrived in one read (a naive relay rather than the floor).
    #[arg(long)]
    per_frame: bool,
}

/// Options of `bench graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Community sizes in users, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    users: Vec<usize>,
    /// Accept/revoke rounds per path (API, CLI).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Subscribers joining one channel, one after another.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Shares each user makes.
    #[arg(long, default_value_t = 10)]
    shares_per_user: usize,
    /// Scratch directory for the databases [default: a temporary directory].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep the generated databases in --dir (graph-USERS.db), e.g. to serve one by hand.
    #[arg(long)]
    keep: bool,
    /// Generate into PostgreSQL (a fresh database per size on this server, e.g.
    /// postgres://postgres@127.0.0.1:5432/) instead of SQLite files.
    #[arg(long, value_name = "SERVER_URL")]
    postgres: Option<String>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Also the graph's worst cases: 10 redistribute chains of 300 users below one head and
    /// a group of 10,000 (at most the community) offered a redistribute share, with the
    /// first link blocking the head, the group accepting, and a small change meanwhile.
    #[arg(long)]
    worst: bool,
}

fn bench_graph(args: GraphArgs) -> anyhow::Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let tmp = tempfile_dir(args.dir)?;
    let b = bench::graph::GraphBench {
        exe: std::env::current_exe()?,
        sizes: args.users,
        dir: tmp.clone(),
        rounds: args.rounds.max(1),
        subscribers: args.subscribers,
        shape: crate::store::generate::Shape {
            shares_per_user: args.shares_per_user,
            ..Default::default()
        },
        keep: args.keep,
        postgres: args.postgres,
        worst: args.worst.then(crate::store::generate::Worst::default),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let empty = bench::graph::empty_rss(&b)?;
    let mut rows = Vec::new();
    for users in b.sizes.clone() {
        let row = rt.block_on(bench::graph::run_size(&b, users, empty))?;
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        }
        rows.push(row);
    }
    if !args.json {
        print!("{}", bench::graph::table(&rows));
    }
    Ok(())
}

/// `dir`, or a new directory under the system's temporary one.
fn tempfile_dir(dir: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    let d = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("hpfriends-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// Runs `bench` and its subcommands.
pub(super) fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        Some(BenchWhat::Graph(g)) => return bench_graph(g),
        Some(BenchWhat::Relay(r)) => {
            let listener = std::net::TcpListener::bind(r.listen)
                .with_context(|| format!("cannot listen on {}", r.listen))?;
            eprintln!(
                "bench relay listening on {} (no auth, no ACL: a benchmark floor only)",
                r.listen
            );
            return bench::relay::run(&listener, r.per_frame).context("relay failed");
        }
        None => {}
    }
    if args.size < bench::MIN_SIZE {
        bail!("--size must be at least {} bytes", bench::MIN_SIZE);
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let w = bench::Workload {
        addr: format!("{}:{}", args.host, args.port),
        sub_addrs: args.sub_at,
        pub_ident: args.pub_ident,
        pub_secret: args.pub_secret,
        sub_ident: args.sub_ident,
        sub_secret: args.sub_secret,
        publishers: args.publishers,
        subscribers: args.subscribers,
        channels: usize::from(args.channels),
        messages: args.messages,
        size: args.size,
        rate: args.rate,
        window: args.window,
        progress: (!args.json).then(|| {
            output::progress(
                0,
                if args.idle.is_some() {
                    "connections"
                } else {
                    "delivered"
                },
            )
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(n) = args.idle {
        let r = rt.block_on(bench::idle(
            &w,
            n,
            std::time::Duration::from_secs(args.hold),
            args.pid,
        ))?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            let kib = |v: Option<u64>| v.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            println!(
                "{} idle subscribers: broker RSS {} -> {}, {} per connection",
                r.connections,
                kib(r.rss_before_kib),
                kib(r.rss_after_kib),
                r.kib_per_connection
                    .map_or("? (give --pid)".to_owned(), |k| format!("{k:.2} KiB")),
            );
        }
        return Ok(());
    }
    if let Some(secs) = args.soak {
        let r = rt.block_on(bench::soak(w, secs, args.churn, args.pid))?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            let kib = |v: Option<u64>| v.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            println!(
                "soak {} s: {} published, {} delivered, {} lost; {} churn cycles ({} failed); \
                 broker RSS warm {} -> end {} ({})",
                r.seconds,
                r.steady.published,
                r.steady.delivered,
                r.steady.lost,
                r.churn_cycles,
                r.churn_errors,
                kib(r.rss_warm_kib),
                kib(r.rss_end_kib),
                r.rss_growth_pct
                    .map_or("give --pid".to_owned(), |g| format!("{g:+.1}%")),
            );
        }
        return Ok(());
    }
    let mut r = rt.block_on(bench::run(w))?;
    r.broker_rss_kib = args.pid.and_then(bench::rss_kib);
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", bench::table(&r));
    }
    Ok(())
}
