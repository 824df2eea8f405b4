//! Command-line interface: parses arguments and calls the library. No logic of its own
//! beyond turning results into output and exit codes.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::bench;
use crate::client::{Client, ClientError};
use crate::config::{Config, Flags};
use crate::domain::acl::{Why, explain};
use crate::domain::model::{Grantee, ShareKind};
use crate::domain::model::{GroupRole, MemberState};
use crate::domain::{GroupId, ShareId, UserId};
use crate::server::{self, Endpoints};
use crate::social::ops::{self, GranteeName};
use crate::store::Store;
use crate::store::models::applied::Live;
use crate::wire::{Channel, Frame, Ident, Secret};

/// Who the audit log names for changes made from the command line.
const CLI_ACTOR: &str = "cli";
/// The demo's names, created by `serve --demo`.
const DEMO_USER: &str = "demo";
const DEMO_IDENT: &str = "demo";
const DEMO_CHANNEL: &str = "demo.events";

/// hpfriends: an hpfeeds broker where who receives what follows a social sharing graph.
#[derive(Debug, Parser)]
#[command(name = "hpfriends", version, propagate_version = true)]
pub struct Cli {
    /// Database: a SQLite file path or sqlite://PATH, or postgres://USER@HOST:PORT/DATABASE
    /// [default: hpfriends.db].
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// Configuration file (TOML; see deploy/hpfriends.example.toml).
    #[arg(long, global = true, env = "HPFRIENDS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: for people (text) or one JSON object per line (json).
    #[arg(long, global = true, env = "HPFRIENDS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hpfeeds broker (creates and migrates the database first).
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage users (the owners of authkeys).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage authkeys (ident + secret, with publish and subscribe channels).
    #[command(subcommand)]
    Authkey(AuthkeyCommand),
    /// Groups of users that channels can be shared with.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Share channels with users, groups or everyone; answer and withdraw shares.
    #[command(subcommand)]
    Share(ShareCommand),
    /// Show what a key may do and, for each channel it receives, whose data and why.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Misuse of a user's keys (failed auths, refused channels), newest first: the first
    /// place to look when a feed is silent.
    Log {
        /// Whose keys.
        #[arg(long = "as")]
        actor: String,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Publish a message to a broker, as an hpfeeds client.
    Pub(PubArgs),
    /// Subscribe to channels on a broker and print each message on a line.
    Sub(SubArgs),
    /// Load-test a broker (this one or any other) over the raw hpfeeds protocol.
    Bench(BenchArgs),
    /// The server key that encrypts authkey secrets at rest.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Move from another broker: its authkeys become users, keys and the accepted shares
    /// that keep every client working unchanged (plain hpfeeds: subscribers receive every
    /// publisher of their channels).
    Import {
        /// The source's format.
        #[arg(long, value_enum)]
        from: ImportFormat,
        /// The store (a file); not used with `--from hpfeeds-env`, which reads HPFEEDS_*
        /// variables from the environment.
        path: Option<PathBuf>,
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the community (users, keys, groups, shares, blocks) as JSON, for `import
    /// --from hpfriends-export` into another database.
    Export {
        /// Include the keys' secrets (the file is then written with mode 0600).
        #[arg(long)]
        include_secrets: bool,
        /// Write here instead of standard output (never overwrites).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write a consistent copy of the live SQLite database to PATH (never overwrites).
    Backup {
        /// Where the copy goes.
        path: PathBuf,
    },
}

/// Stores `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// The PyPI hpfeeds broker's SQLite store (`--auth sqlite:PATH`).
    HpfeedsSqlite,
    /// The PyPI hpfeeds broker's JSON store (`--auth json:PATH`).
    HpfeedsJson,
    /// The PyPI hpfeeds broker's environment store (`--auth env`: HPFEEDS_<IDENT>_SECRET …).
    HpfeedsEnv,
    /// `mongoexport --collection auth_key` of the original broker or MHN (JSON lines).
    MongoExport,
    /// `hpfriends export` of another hpfriends (users, keys, groups, shares, blocks).
    HpfriendsExport,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting as TOML with where its value came from (default, file,
    /// environment variable, flag); secrets masked. Fails, naming the key, when the
    /// settings cannot work together.
    Show,
}

/// `secret-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Write a new random key to PATH (mode 0600; an existing file is never overwritten).
    /// Then set secret_key_file = PATH (or HPFRIENDS_SECRET_KEY_FILE).
    New {
        /// Where to write it.
        path: PathBuf,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// hpfeeds listen address [default: 0.0.0.0:10000; 127.0.0.1:10000 with --demo].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Plain hpfeeds mode: every subscriber of a channel receives every publisher.
    #[arg(long)]
    pub open: bool,
    /// Create a demo user and authkey (if missing) and print how to use them.
    #[arg(long)]
    pub demo: bool,
    /// Largest publish payload in bytes [default: 1048576].
    #[arg(long)]
    pub max_payload: Option<usize>,
    /// Website listen address, or "off" [default: 127.0.0.1:8080].
    #[arg(long)]
    pub web_listen: Option<String>,
    /// hpfeeds TLS listen address [default: 0.0.0.0:10443; only with --tls-cert and --tls-key].
    #[arg(long)]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener and the website's HTTPS.
    #[arg(long)]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100) [default: off].
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        /// Login name: letters, digits, '.', '_' or '-', at most 64.
        name: String,
        /// Email address.
        #[arg(long)]
        email: String,
    },
    /// List users.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their keys stop working at once, live sessions close.
    Disable {
        /// The user.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        name: String,
    },
    /// Block a user: nothing of theirs reaches you by any path; their offers are declined.
    Block {
        /// The user to block.
        name: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Lift a block.
    Unblock {
        /// The user to unblock.
        name: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// The users the acting user blocks.
    Blocks {
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
}

/// `authkey` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthkeyCommand {
    /// Create an authkey; prints its ident and secret.
    Add {
        /// The owning user.
        #[arg(long)]
        owner: String,
        /// Ident [default: random].
        #[arg(long, value_parser = parse_ident)]
        ident: Option<Ident>,
        /// Secret [default: 64 random hex characters].
        #[arg(long)]
        secret: Option<String>,
        /// Channels it may publish on (repeat, or separate with commas).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
        publish: Vec<Channel>,
        /// Channels it may subscribe to (repeat, or separate with commas).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
        subscribe: Vec<Channel>,
        /// Free text (where the key is used).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List authkeys (without secrets).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Delete an authkey; its live sessions are closed.
    Rm {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
    },
    /// Replace a key's channel lists (live subscriptions that lose their right get
    /// `accessfail`).
    Set {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
        /// Channels it may publish on (repeat, or separate with commas).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
        publish: Vec<Channel>,
        /// Channels it may subscribe to (repeat, or separate with commas).
        #[arg(long, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
        subscribe: Vec<Channel>,
    },
    /// Give a key a new random secret (printed once).
    Rotate {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
    },
    /// Disable a key: it can no longer authenticate and its sessions close.
    Disable {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
    },
    /// Enable a disabled key.
    Enable {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
    },
}

/// `group` subcommands; each acts as the user given with `--as`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group owned by the acting user.
    Create {
        /// Group name: letters, digits, '.', '_' or '-', at most 64.
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Invite a user (owner only).
    Invite {
        /// The group.
        group: String,
        /// The user to invite.
        user: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Accept an invitation.
    Accept {
        /// The group.
        group: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Decline an invitation.
    Decline {
        /// The group.
        group: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Remove a member or withdraw an invitation (owner only).
    Remove {
        /// The group.
        group: String,
        /// The member.
        user: String,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// List the acting user's groups and their members.
    List {
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// `share` subcommands; each acts as the user given with `--as`.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Offer a channel to a user, a group (its owner answers) or everyone (a public offer
    /// each user takes up with `share follow`).
    Offer {
        /// The channel.
        #[arg(long, value_parser = parse_channel)]
        channel: Channel,
        /// Share with this user.
        #[arg(long, group = "grantee")]
        to_user: Option<String>,
        /// Share with this group's members.
        #[arg(long, group = "grantee")]
        to_group: Option<String>,
        /// Share with every user.
        #[arg(long, group = "grantee")]
        to_everyone: bool,
        /// Also pass on what you receive on the channel (default: only your own data).
        #[arg(long)]
        redistribute: bool,
        /// Let the grantee pass what it receives through this share on, through its own
        /// redistribute shares (default: it may not).
        #[arg(long)]
        onward: bool,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Take up a public offer (a share to everyone) for yourself.
    Follow {
        /// Share id (see `share list`).
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Stop taking a public offer.
    Unfollow {
        /// Share id.
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Accept a share offered to you (or to a group you own).
    Accept {
        /// Share id (see `share list`).
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Decline a share offered to you.
    Decline {
        /// Share id.
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Withdraw a share you made.
    Revoke {
        /// Share id.
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// Stop receiving a share you accepted.
    Leave {
        /// Share id.
        id: i64,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
    /// What the acting user shares and what is shared with them (public offers they took up
    /// included; the others are `share offers`).
    List {
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Open public offers the acting user may take up, 50 a page, newest first.
    Offers {
        /// Page, from 0.
        #[arg(long, default_value_t = 0)]
        page: usize,
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
    },
}

/// `acl` subcommands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// A key's publish channels and, per subscribed channel, its sources and why.
    Show {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
    },
    /// Where the acting user's data goes: per channel they share, who receives it and
    /// through whom.
    Reach {
        /// The acting user.
        #[arg(long = "as")]
        actor: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Where a client connects and as whom.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 10000)]
    pub port: u16,
    /// Authkey ident.
    #[arg(long, value_parser = parse_ident)]
    pub ident: Ident,
    /// Authkey secret.
    #[arg(long, env = "HPFRIENDS_SECRET", hide_env_values = true)]
    pub secret: String,
}

/// Options of `pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Channel to publish on.
    #[arg(long, value_parser = parse_channel)]
    channel: Channel,
    /// Each line of standard input is one message (instead of all of it as one).
    #[arg(long)]
    lines: bool,
    /// The message; `-` or nothing reads standard input.
    message: Option<String>,
}

/// Options of `sub`.
#[derive(Debug, Args)]
pub struct SubArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Channels to subscribe to (repeat, or separate with commas).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
    channel: Vec<Channel>,
    /// Print JSON lines: channel, ident, payload, encoding ("utf8" or "base64").
    #[arg(long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
}

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

fn bench(args: BenchArgs) -> anyhow::Result<()> {
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
        progress: !args.json,
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

fn parse_ident(s: &str) -> Result<Ident, String> {
    Ident::new(s).map_err(|e| e.to_string())
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    Channel::new(s).map_err(|e| e.to_string())
}

/// The settings given as flags: the top layer of the configuration.
fn flags(cli: &Cli) -> Flags {
    let flags = Flags::none().set("db", cli.db.clone());
    let Command::Serve(a) = &cli.command else {
        return flags;
    };
    flags
        .set("listen", a.listen.map(|l| l.to_string()))
        .set("max_payload", a.max_payload)
        .set("tls_listen", a.tls_listen.map(|l| l.to_string()))
        .set("tls_cert", a.tls_cert.clone())
        .set("tls_key", a.tls_key.clone())
        .set(
            "web_listen",
            a.web_listen
                .as_ref()
                .map(|w| if w == "off" { String::new() } else { w.clone() }),
        )
        .set("metrics_listen", a.metrics_listen.clone())
        .set("open", a.open.then_some(true))
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let loaded = Config::load_with(cli.config.as_deref(), std::env::vars(), &flags(&cli))?;
    let config = loaded.config.clone();
    match cli.command {
        Command::Config(ConfigCommand::Show) => {
            print!("{}", config.show(&loaded.origins));
            Ok(())
        }
        Command::Serve(args) => serve(config, args),
        Command::Migrate => {
            let store = Store::open_unmigrated(&config.db)?;
            let n = store.migrate()?;
            println!(
                "{}: {n} migration(s) applied, schema is current",
                crate::store::redacted(&config.db)
            );
            Ok(())
        }
        Command::User(cmd) => changing(&open_store(&config)?, |s| user(s, cmd)),
        Command::Authkey(cmd) => changing(&open_store(&config)?, |s| authkey(s, cmd)),
        Command::Group(cmd) => changing(&open_store(&config)?, |s| group(s, cmd)),
        Command::Share(cmd) => changing(&open_store(&config)?, |s| share(s, cmd)),
        Command::Acl(AclCommand::Show { ident }) => acl_show(&open_store(&config)?, &ident, config.open),
        Command::Acl(AclCommand::Reach { actor, json }) => acl_reach(&open_store(&config)?, &actor, json),
        Command::Log { actor, limit, json } => key_log(&open_store(&config)?, &actor, limit, json),
        Command::SecretKey(SecretKeyCommand::New { path }) => {
            use std::os::unix::fs::OpenOptionsExt;
            let key = crate::store::sealing::new_key()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{key}")?;
            println!(
                "wrote a new secret key to {}; set secret_key_file = \"{}\" and keep a copy in a safe place",
                path.display(),
                path.display()
            );
            Ok(())
        }
        Command::Import { from, path, dry_run } => import(&open_store(&config)?, from, path, dry_run),
        Command::Export {
            include_secrets,
            output,
        } => export(&open_store(&config)?, include_secrets, output),
        Command::Backup { path } => {
            open_store(&config)?.backup_to(&path)?;
            println!(
                "wrote a consistent copy of {} to {}",
                crate::store::redacted(&config.db),
                path.display()
            );
            Ok(())
        }
        Command::Pub(args) => client_runtime()?.block_on(publish(args)),
        Command::Sub(args) => client_runtime()?.block_on(subscribe(args)),
        Command::Bench(args) => bench(args),
    }
}

/// Opens (and migrates) the database with the configured secret key, if any.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    let sealer = if config.secret_key_file.is_empty() {
        None
    } else {
        Some(crate::store::sealing::Sealer::from_file(std::path::Path::new(
            &config.secret_key_file,
        ))?)
    };
    Ok(Store::open_pooled(&config.db, config.db_pool_size)?.with_sealer(sealer)?)
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn serve(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    // The demo stays on this machine unless told otherwise.
    if args.demo && args.listen.is_none() {
        config.listen = SocketAddr::from(([127, 0, 0, 1], config.listen.port()));
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let store = open_store(&config)
        .with_context(|| format!("opening database {}", crate::store::redacted(&config.db)))?;
    // Every secret must open now: a missing or wrong key fails here, not at every auth.
    store.seal_plaintext_secrets()?;
    let demo = if args.demo { Some(demo_key(&store)?) } else { None };

    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    });
    system.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let db = crate::store::redacted(&config.db);
        let mail_dir = config.mail_dir.clone();
        let scheme = if config.web_https() { "https" } else { "http" };
        server::serve(config, store, shutdown, |ep: Endpoints| {
            let tls = ep.tls.map(|a| format!(", hpfeeds tls://{a}")).unwrap_or_default();
            let web = ep.web.map(|a| format!(", website {scheme}://{a}")).unwrap_or_default();
            let metrics = ep.metrics.map(|a| format!(", metrics http://{a}/metrics")).unwrap_or_default();
            println!(
                "hpfriends listening: hpfeeds tcp://{}{tls}{web}{metrics} (database {db})",
                ep.hpfeeds
            );
            if let Some(secret) = &demo {
                print_demo(ep.hpfeeds, secret);
                if let Some(web) = ep.web {
                    println!(
                        "Website: {scheme}://{web}/ - sign up there; with no smtp_url, mail (the confirmation \
                         link) is written as .eml files into {}/\n",
                        mail_dir
                    );
                }
            }
            let _ = std::io::stdout().flush();
        })
        .await
    })?;
    Ok(())
}

async fn cancel_on_signal(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
    token.cancel();
}

/// Ensures the demo user and key exist; returns the key's secret.
fn demo_key(store: &Store) -> anyhow::Result<Secret> {
    let user = match store.user_by_name(DEMO_USER)? {
        Some(u) => u,
        None => ops::register(store, DEMO_USER, "demo@localhost", CLI_ACTOR)?,
    };
    let ident = Ident::new(DEMO_IDENT)?;
    if let Some(k) = store.key_records()?.into_iter().find(|k| k.ident == ident) {
        return Ok(k.secret);
    }
    let channel = Channel::new(DEMO_CHANNEL)?;
    let (_, secret) = ops::create_key(
        store,
        &user,
        Some(ident),
        None,
        vec![channel.clone()],
        vec![channel],
        "created by serve --demo".into(),
    )?;
    Ok(secret)
}

fn print_demo(addr: SocketAddr, secret: &Secret) {
    let s = secret.expose();
    let port = addr.port();
    println!(
        "\nDemo authkey: ident {DEMO_IDENT}, secret {s}, channel {DEMO_CHANNEL}\n\
         In another terminal, receive:\n  \
         cargo run --release -- sub --port {port} --ident {DEMO_IDENT} --secret {s} --channel {DEMO_CHANNEL}\n\
         and publish:\n  \
         cargo run --release -- pub --port {port} --ident {DEMO_IDENT} --secret {s} --channel {DEMO_CHANNEL} 'hello'\n\
         or from Python (pip install hpfeeds):\n  \
         python3 -c \"import hpfeeds; c = hpfeeds.new('127.0.0.1', {port}, '{DEMO_IDENT}', '{s}'); c.publish('{DEMO_CHANNEL}', 'hi'); c.close()\"\n\
         Press Ctrl-C to stop.\n"
    );
}

fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, email } => {
            let u = ops::register(store, &name, &email, CLI_ACTOR)?;
            println!("user {} created (id {})", u.name, u.id.0);
        }
        UserCommand::List { json } => {
            let users = store.users()?;
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(out, "{:<24} {:<32} ENABLED", "NAME", "EMAIL")?;
            }
            for u in users {
                if json {
                    let v = serde_json::json!({"id": u.id.0, "name": u.name, "email": u.email, "enabled": u.enabled, "created_at": u.created_at});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(out, "{:<24} {:<32} {}", u.name, u.email, u.enabled)?;
                }
            }
        }
        UserCommand::Disable { name } => {
            ops::set_user_enabled(store, &name, false, CLI_ACTOR)?;
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            ops::set_user_enabled(store, &name, true, CLI_ACTOR)?;
            println!("user {name} enabled");
        }
        UserCommand::Block { name, actor } => {
            ops::block_user(store, &ops::find_user(store, &actor)?, &name)?;
            println!("{actor} blocks {name}: nothing of theirs reaches {actor}");
        }
        UserCommand::Unblock { name, actor } => {
            ops::unblock_user(store, &ops::find_user(store, &actor)?, &name)?;
            println!("{actor} no longer blocks {name}");
        }
        UserCommand::Blocks { actor } => {
            for name in ops::my_blocks(store, &ops::find_user(store, &actor)?)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn authkey(store: &Store, cmd: AuthkeyCommand) -> anyhow::Result<()> {
    match cmd {
        AuthkeyCommand::Add {
            owner,
            ident,
            secret,
            publish,
            subscribe,
            comment,
        } => {
            let Some(user) = store.user_by_name(&owner)? else {
                bail!("no user named {owner:?}: create it with `hpfriends user add {owner} --email ADDRESS`");
            };
            let (ident, secret) = ops::create_key(
                store,
                &user,
                ident,
                secret.map(Secret::new),
                publish,
                subscribe,
                comment,
            )?;
            println!("ident: {ident}\nsecret: {}", secret.expose());
        }
        AuthkeyCommand::List { json } => {
            let keys = store.authkeys()?;
            let mut out = std::io::stdout().lock();
            let list = |v: &[Channel]| v.iter().map(Channel::as_str).collect::<Vec<_>>().join(",");
            if !json {
                writeln!(
                    out,
                    "{:<20} {:<16} {:<8} {:<30} SUBSCRIBE",
                    "IDENT", "OWNER", "ENABLED", "PUBLISH"
                )?;
            }
            for k in keys {
                if json {
                    let v = serde_json::json!({
                        "ident": k.ident.as_str(), "owner": k.owner, "enabled": k.enabled,
                        "publish": k.publish.iter().map(Channel::as_str).collect::<Vec<_>>(),
                        "subscribe": k.subscribe.iter().map(Channel::as_str).collect::<Vec<_>>(),
                        "comment": k.comment, "created_at": k.created_at,
                    });
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(
                        out,
                        "{:<20} {:<16} {:<8} {:<30} {}",
                        k.ident,
                        k.owner,
                        k.enabled,
                        list(&k.publish),
                        list(&k.subscribe)
                    )?;
                }
            }
        }
        AuthkeyCommand::Rm { ident } => {
            ops::delete_key(store, &ops::key_owner(store, &ident)?, &ident)?;
            println!("authkey {ident} removed");
        }
        AuthkeyCommand::Set {
            ident,
            publish,
            subscribe,
        } => {
            ops::set_key_channels(
                store,
                &ops::key_owner(store, &ident)?,
                &ident,
                &publish,
                &subscribe,
            )?;
            println!("authkey {ident} updated");
        }
        AuthkeyCommand::Rotate { ident } => {
            let secret = ops::rotate_key(store, &ops::key_owner(store, &ident)?, &ident)?;
            println!("ident: {ident}\nsecret: {}", secret.expose());
        }
        AuthkeyCommand::Disable { ident } => {
            ops::set_key_enabled(store, &ops::key_owner(store, &ident)?, &ident, false)?;
            println!("authkey {ident} disabled");
        }
        AuthkeyCommand::Enable { ident } => {
            ops::set_key_enabled(store, &ops::key_owner(store, &ident)?, &ident, true)?;
            println!("authkey {ident} enabled");
        }
    }
    Ok(())
}

/// A progress bar on stderr for long work (drawn only on a terminal).
fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

fn export(store: &Store, secrets: bool, output: Option<PathBuf>) -> anyhow::Result<()> {
    let e = crate::social::export::export(store, secrets)?;
    let text = serde_json::to_string_pretty(&e)? + "\n";
    match output {
        None => print!("{text}"),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if secrets { 0o600 } else { 0o644 })
                .open(&path)
                .with_context(|| format!("cannot create {} (export never overwrites)", path.display()))?;
            f.write_all(text.as_bytes())?;
            eprintln!(
                "exported {} user(s), {} key(s), {} group(s), {} share(s) to {}",
                e.users.len(),
                e.authkeys.len(),
                e.groups.len(),
                e.shares.len(),
                path.display()
            );
        }
    }
    Ok(())
}

fn import(store: &Store, from: ImportFormat, path: Option<PathBuf>, dry_run: bool) -> anyhow::Result<()> {
    use crate::social::import;
    let read = |p: &Option<PathBuf>| -> anyhow::Result<(String, String)> {
        let Some(p) = p else {
            bail!("say which file to import");
        };
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok((p.display().to_string(), text))
    };
    let keys = match from {
        ImportFormat::HpfeedsSqlite => {
            let Some(p) = &path else {
                bail!("say which SQLite file to import");
            };
            crate::store::foreign::read_hpfeeds_sqlite(p)?
        }
        ImportFormat::HpfeedsJson => {
            let (name, text) = read(&path)?;
            import::parse_hpfeeds_json(&name, &text)?
        }
        ImportFormat::MongoExport => {
            let (name, text) = read(&path)?;
            import::parse_mongo_export(&name, &text)?
        }
        ImportFormat::HpfeedsEnv => import::parse_hpfeeds_env(std::env::vars()),
        ImportFormat::HpfriendsExport => {
            let (name, text) = read(&path)?;
            let e: crate::social::export::Export =
                serde_json::from_str(&text).with_context(|| format!("{name} is not an hpfriends export"))?;
            if dry_run {
                println!(
                    "dry run: would create {} user(s), {} key(s), {} group(s), {} share(s), {} block(s)",
                    e.users.len(),
                    e.authkeys.len(),
                    e.groups.len(),
                    e.shares.len(),
                    e.blocks.len()
                );
                return Ok(());
            }
            let mut summary = String::new();
            changing(store, |s| {
                summary = crate::social::export::import(s, &e)?;
                Ok(())
            })?;
            println!("imported: {summary}");
            return Ok(());
        }
    };
    let plan = import::plan(store, &keys)?;
    if dry_run {
        for line in plan.lines() {
            println!("{line}");
        }
        println!("dry run: would have: {}", plan.summary());
        return Ok(());
    }
    let mut done = None;
    let bar = progress(plan.steps() as u64, "importing");
    changing(store, |s| {
        done = Some(import::apply(s, plan, &|| bar.inc(1))?);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(p) = done {
        for (ident, why) in &p.skipped {
            eprintln!("hpfriends: skipped key {ident}: {why}");
        }
        println!("imported: {}", p.summary());
    }
    Ok(())
}

/// How long a changing command waits for a running `serve` to make its change live.
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a command that may change the graph, then waits until every running server has
/// made the change live on its connections (bounded by [`LIVE_WAIT`], then says so).
fn changing(store: &Store, f: impl FnOnce(&Store) -> anyhow::Result<()>) -> anyhow::Result<()> {
    f(store)?;
    match store.wait_applied(LIVE_WAIT)? {
        Live::Applied { .. } => {}
        Live::Pending { version, behind } => eprintln!(
            "hpfriends: the change is saved, but {behind} running server(s) had not applied ACL              version {version} after {} s; it will be live when they catch up",
            LIVE_WAIT.as_secs()
        ),
    }
    Ok(())
}

fn group(store: &Store, cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Create {
            name,
            description,
            actor,
        } => {
            ops::create_group(store, &ops::find_user(store, &actor)?, &name, &description)?;
            println!("group {name} created, owned by {actor}");
        }
        GroupCommand::Invite { group, user, actor } => {
            ops::invite(store, &ops::find_user(store, &actor)?, &group, &user)?;
            println!("{user} invited to {group}");
        }
        GroupCommand::Accept { group, actor } => {
            ops::accept_invitation(store, &ops::find_user(store, &actor)?, &group)?;
            println!("{actor} joined {group}");
        }
        GroupCommand::Decline { group, actor } => {
            ops::decline_invitation(store, &ops::find_user(store, &actor)?, &group)?;
            println!("{actor} declined {group}");
        }
        GroupCommand::Leave { group, actor } => {
            ops::leave_group(store, &ops::find_user(store, &actor)?, &group)?;
            println!("{actor} left {group}");
        }
        GroupCommand::Remove { group, user, actor } => {
            ops::remove_member(store, &ops::find_user(store, &actor)?, &group, &user)?;
            println!("{user} removed from {group}");
        }
        GroupCommand::List { actor, json } => {
            let mut out = std::io::stdout().lock();
            for g in ops::my_groups(store, &ops::find_user(store, &actor)?)? {
                if json {
                    let members: Vec<_> = g
                        .members
                        .iter()
                        .map(|(n, r, s)| serde_json::json!({"user": n, "role": r.as_str(), "state": s.as_str()}))
                        .collect();
                    let v = serde_json::json!({
                        "name": g.name, "owner": g.owner, "description": g.description,
                        "members": members, "member_count": g.member_count,
                    });
                    writeln!(out, "{v}")?;
                } else {
                    let members: Vec<String> = g
                        .members
                        .iter()
                        .map(|(n, r, s)| match (r, s) {
                            (GroupRole::Owner, _) => format!("{n} (owner)"),
                            (_, MemberState::Invited) => format!("{n} (invited)"),
                            _ => n.clone(),
                        })
                        .collect();
                    let more = g.member_count.saturating_sub(g.members.len());
                    let rest = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    writeln!(out, "{}: {}{rest}", g.name, members.join(", "))?;
                }
            }
        }
    }
    Ok(())
}

fn share(store: &Store, cmd: ShareCommand) -> anyhow::Result<()> {
    match cmd {
        ShareCommand::Offer {
            channel,
            to_user,
            to_group,
            to_everyone,
            redistribute,
            onward,
            actor,
        } => {
            let to = match (to_user, to_group, to_everyone) {
                (Some(u), _, _) => GranteeName::User(u),
                (_, Some(g), _) => GranteeName::Group(g),
                (_, _, true) => GranteeName::Everyone,
                _ => bail!("say whom to share with: --to-user, --to-group or --to-everyone"),
            };
            let kind = if redistribute {
                ShareKind::Redistribute
            } else {
                ShareKind::Own
            };
            let id = ops::offer_share(
                store,
                &ops::find_user(store, &actor)?,
                &channel,
                &to,
                kind,
                onward,
            )?;
            let state = store.share(id)?.map(|s| s.state.to_string()).unwrap_or_default();
            println!("share {} ({channel}, {kind}) {state}", id.0);
        }
        ShareCommand::Follow { id, actor } => {
            ops::follow_share(store, &ops::find_user(store, &actor)?, ShareId(id))?;
            println!("share {id} taken up by {actor}");
        }
        ShareCommand::Unfollow { id, actor } => {
            ops::unfollow_share(store, &ops::find_user(store, &actor)?, ShareId(id))?;
            println!("share {id} no longer taken by {actor}");
        }
        ShareCommand::Accept { id, actor } => {
            ops::answer_share(store, &ops::find_user(store, &actor)?, ShareId(id), true)?;
            println!("share {id} accepted");
        }
        ShareCommand::Decline { id, actor } => {
            ops::answer_share(store, &ops::find_user(store, &actor)?, ShareId(id), false)?;
            println!("share {id} declined");
        }
        ShareCommand::Revoke { id, actor } => {
            ops::revoke_share(store, &ops::find_user(store, &actor)?, ShareId(id))?;
            println!("share {id} revoked");
        }
        ShareCommand::Leave { id, actor } => {
            ops::leave_share(store, &ops::find_user(store, &actor)?, ShareId(id))?;
            println!("share {id} left");
        }
        ShareCommand::Offers { page, actor } => {
            let (offers, more) = ops::public_offers(store, &ops::find_user(store, &actor)?, page)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<6} {:<24} {:<13} FROM", "ID", "CHANNEL", "TYPE")?;
            for i in offers {
                let s = &i.share;
                writeln!(
                    out,
                    "{:<6} {:<24} {:<13} {}",
                    s.id.0, s.channel, s.kind, i.from_name
                )?;
            }
            if more {
                writeln!(out, "(more: --page {})", page + 1)?;
            }
        }
        ShareCommand::List { actor, json } => {
            let (outgoing, incoming) = ops::my_shares(store, &ops::find_user(store, &actor)?)?;
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(
                    out,
                    "{:<6} {:<10} {:<24} {:<13} {:<10} WITH",
                    "ID", "DIRECTION", "CHANNEL", "TYPE", "STATE"
                )?;
            }
            for (dir, list) in [("out", outgoing), ("in", incoming)] {
                for i in list {
                    let s = &i.share;
                    if json {
                        let v = serde_json::json!({
                            "id": s.id.0, "direction": dir, "channel": s.channel.as_str(),
                            "type": s.kind.as_str(), "state": s.state.as_str(),
                            "from": i.from_name, "to": i.to_name,
                        });
                        writeln!(out, "{v}")?;
                    } else {
                        let with = if dir == "out" {
                            i.to_name.clone()
                        } else {
                            format!("from {}", i.from_name)
                        };
                        writeln!(
                            out,
                            "{:<6} {:<10} {:<24} {:<13} {:<10} {with}",
                            s.id.0, dir, s.channel, s.kind, s.state
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn key_log(store: &Store, actor: &str, limit: i64, json: bool) -> anyhow::Result<()> {
    let user = ops::find_user(store, actor)?;
    let mut out = std::io::stdout().lock();
    for e in store.key_log_of(user.id, limit.clamp(1, 10_000))? {
        if json {
            let v = serde_json::json!({
                "at": e.at, "ident": e.ident, "event": e.event, "channel": e.channel,
                "peer": e.peer, "detail": e.detail,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{} {:<18} {:<18} {:<22} {}",
                e.at,
                e.ident,
                e.event,
                e.peer.as_deref().unwrap_or("-"),
                e.detail
            )?;
        }
    }
    Ok(())
}

fn acl_reach(store: &Store, actor: &str, json: bool) -> anyhow::Result<()> {
    let me = ops::find_user(store, actor)?;
    let mut out = std::io::stdout().lock();
    for (channel, reached) in ops::reach(store, &me)? {
        if json {
            for r in &reached {
                let v = serde_json::json!({
                    "channel": channel.as_str(), "user": r.user, "through": r.through, "share": r.share.0,
                });
                writeln!(out, "{v}")?;
            }
            continue;
        }
        writeln!(out, "{channel}")?;
        if reached.is_empty() {
            writeln!(out, "    nobody receives it yet")?;
        }
        for r in reached {
            let how = if r.through.is_empty() {
                format!("directly (share {})", r.share.0)
            } else {
                format!("through {} (share {})", r.through.join(" -> "), r.share.0)
            };
            writeln!(out, "    {:<20} {how}", r.user)?;
        }
    }
    Ok(())
}

fn acl_show(store: &Store, ident: &Ident, open: bool) -> anyhow::Result<()> {
    let graph = store.load_graph()?;
    let Some(key) = graph.keys.iter().find(|k| k.ident == *ident) else {
        bail!("no authkey with ident {:?}", ident.as_str());
    };
    let names: std::collections::HashMap<UserId, String> =
        store.users()?.into_iter().map(|u| (u.id, u.name)).collect();
    let name = |u: &UserId| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    let group_names: std::collections::HashMap<GroupId, String> = store.all_groups()?.into_iter().collect();
    let grantee = |g: &Grantee| match g {
        Grantee::User(u) => format!("user {}", name(u)),
        Grantee::Group(id) => format!("group {}", group_names.get(id).cloned().unwrap_or_default()),
        Grantee::Everyone => "everyone".to_owned(),
    };
    let mut out = std::io::stdout().lock();
    let status = match (key.enabled, graph.enabled(key.owner)) {
        (true, true) => "enabled",
        (false, _) => "DISABLED: cannot authenticate",
        (true, false) => "owner DISABLED: cannot authenticate",
    };
    writeln!(out, "authkey {ident} (owner {}, {status})", name(&key.owner))?;
    let list = |v: &[Channel]| v.iter().map(Channel::as_str).collect::<Vec<_>>().join(", ");
    writeln!(out, "publish: {}", list(&key.publish))?;
    writeln!(out, "subscribe:")?;
    for c in &key.subscribe {
        writeln!(out, "  {c}")?;
        if open {
            writeln!(out, "    every publisher (open mode)")?;
            continue;
        }
        for (source, why) in explain(&graph, key.owner, c.as_str()) {
            let reason = match why {
                Why::Own => "own data".to_owned(),
                Why::Share { share, to, chain } => {
                    let mut r = format!("share {} to {}", share.0, grantee(&to));
                    if chain.len() > 1 {
                        let path: Vec<String> = chain.iter().rev().map(&name).collect();
                        r.push_str(&format!(", redistributed {}", path.join(" -> ")));
                    }
                    r
                }
            };
            writeln!(out, "    {:<20} {reason}", name(&source))?;
        }
    }
    Ok(())
}

async fn connect(args: &ClientArgs) -> Result<Client, ClientError> {
    let addr = format!("{}:{}", args.host, args.port);
    Client::connect(&addr, args.ident.clone(), &Secret::new(args.secret.clone())).await
}

async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.client).await?;
    match args.message.as_deref() {
        Some(m) if m != "-" => client.publish(&args.channel, Bytes::from(m.to_owned())).await?,
        _ => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading standard input")?;
            if args.lines {
                for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    client
                        .publish(&args.channel, Bytes::copy_from_slice(line))
                        .await?;
                }
            } else {
                client.publish(&args.channel, Bytes::from(input)).await?;
            }
        }
    }
    client.finish().await?;
    Ok(())
}

/// One received message as a line of text: `channel ident payload`, the payload as is when
/// it is printable UTF-8 and as `base64:…` otherwise.
fn text_line(channel: &Channel, ident: &Ident, payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{channel} {ident} {s}"),
        _ => format!(
            "{channel} {ident} base64:{}",
            base64::engine::general_purpose::STANDARD.encode(payload)
        ),
    }
}

fn json_line(channel: &Channel, ident: &Ident, payload: &[u8]) -> String {
    let (payload, encoding) = match std::str::from_utf8(payload) {
        Ok(s) => (s.to_owned(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(payload),
            "base64",
        ),
    };
    serde_json::json!({
        "channel": channel.as_str(), "ident": ident.as_str(),
        "payload": payload, "encoding": encoding,
    })
    .to_string()
}

async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.client).await?;
    for c in &args.channel {
        client.subscribe(c).await?;
    }
    let mut received = 0u64;
    let mut last_error = None;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| received < n) {
        match client.next_frame().await? {
            Some(Frame::Publish {
                ident,
                channel,
                payload,
            }) => {
                let line = if args.json {
                    json_line(&channel, &ident, &payload)
                } else {
                    text_line(&channel, &ident, &payload)
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(()); // stdout closed (e.g. piped into head): done
                }
                received += 1;
            }
            Some(Frame::Error(e)) => {
                eprintln!("broker: {e}");
                last_error = Some(e);
            }
            Some(other) => bail!("unexpected {} frame from the broker", other.opcode().name()),
            None => match last_error {
                Some(e) => bail!("broker closed the connection: {e}"),
                None => bail!("broker closed the connection"),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn lines_escape_binary() {
        let c = Channel::new("c").unwrap();
        let i = Ident::new("i").unwrap();
        assert_eq!(text_line(&c, &i, b"hello world"), "c i hello world");
        assert_eq!(text_line(&c, &i, b"a\nb"), "c i base64:YQpi");
        assert_eq!(
            json_line(&c, &i, &[0xff]),
            r#"{"channel":"c","encoding":"base64","ident":"i","payload":"/w=="}"#
        );
    }

    #[test]
    fn user_names() {
        assert!(ops::valid_name("alice.b-c_1"));
        assert!(!ops::valid_name(""));
        assert!(!ops::valid_name("a b"));
        assert!(!ops::valid_name(&"a".repeat(65)));
    }
}
