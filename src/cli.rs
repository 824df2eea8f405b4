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

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::server::{self, Endpoints};
use crate::store::Store;
use crate::store::models::authkeys::NewAuthkey;
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
    /// Database: a SQLite file path or sqlite://PATH [default: hpfriends.db].
    #[arg(long, global = true, env = "HPFRIENDS_DB")]
    pub db: Option<String>,
    /// Configuration file (TOML; see deploy/hpfriends.example.toml).
    #[arg(long, global = true, env = "HPFRIENDS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
    /// Publish a message to a broker, as an hpfeeds client.
    Pub(PubArgs),
    /// Subscribe to channels on a broker and print each message on a line.
    Sub(SubArgs),
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

fn parse_ident(s: &str) -> Result<Ident, String> {
    Ident::new(s).map_err(|e| e.to_string())
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    Channel::new(s).map_err(|e| e.to_string())
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(db) = cli.db {
        config.db = db;
    }
    match cli.command {
        Command::Serve(args) => serve(config, args),
        Command::Migrate => {
            let store = Store::open_unmigrated(&config.db)?;
            let n = store.migrate()?;
            println!("{}: {n} migration(s) applied, schema is current", config.db);
            Ok(())
        }
        Command::User(cmd) => user(&Store::open(&config.db)?, cmd),
        Command::Authkey(cmd) => authkey(&Store::open(&config.db)?, cmd),
        Command::Pub(args) => client_runtime()?.block_on(publish(args)),
        Command::Sub(args) => client_runtime()?.block_on(subscribe(args)),
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn serve(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if args.demo && args.listen.is_none() {
        config.listen = SocketAddr::from(([127, 0, 0, 1], config.listen.port()));
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = args.max_payload {
        config.max_payload = m;
    }
    config.open |= args.open;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let store = Store::open(&config.db).with_context(|| format!("opening database {}", config.db))?;
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
        let db = config.db.clone();
        server::serve(config, store, shutdown, |ep: Endpoints| {
            println!(
                "hpfriends listening: hpfeeds tcp://{} (database {db})",
                ep.hpfeeds
            );
            if let Some(secret) = &demo {
                print_demo(ep.hpfeeds, secret);
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
        None => store.add_user(DEMO_USER, "demo@localhost", CLI_ACTOR)?,
    };
    let ident = Ident::new(DEMO_IDENT)?;
    if let Some(k) = store.key_records()?.into_iter().find(|k| k.ident == ident) {
        return Ok(k.secret);
    }
    let secret = Secret::random()?;
    let channel = Channel::new(DEMO_CHANNEL)?;
    store.add_authkey(
        &NewAuthkey {
            owner: user.id,
            ident,
            secret: secret.clone(),
            publish: vec![channel.clone()],
            subscribe: vec![channel],
            comment: "created by serve --demo".into(),
        },
        CLI_ACTOR,
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

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, email } => {
            if !valid_user_name(&name) {
                bail!("invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-'");
            }
            let email = email.trim();
            if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
                bail!("invalid email address {email:?}");
            }
            let u = store.add_user(&name, email, CLI_ACTOR)?;
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
            store.set_user_enabled(&name, false, CLI_ACTOR)?;
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            store.set_user_enabled(&name, true, CLI_ACTOR)?;
            println!("user {name} enabled");
        }
    }
    Ok(())
}

fn random_ident() -> anyhow::Result<Ident> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b)?;
    Ok(Ident::new(&hex::encode(b))?)
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
            let ident = match ident {
                Some(i) => i,
                None => random_ident()?,
            };
            let secret = match secret {
                Some(s) if s.is_empty() => bail!("the secret must not be empty"),
                Some(s) => Secret::new(s),
                None => Secret::random()?,
            };
            store.add_authkey(
                &NewAuthkey {
                    owner: user.id,
                    ident: ident.clone(),
                    secret: secret.clone(),
                    publish,
                    subscribe,
                    comment,
                },
                CLI_ACTOR,
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
            store.remove_authkey(&ident, CLI_ACTOR)?;
            println!("authkey {ident} removed");
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
        assert!(valid_user_name("alice.b-c_1"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("a b"));
        assert!(!valid_user_name(&"a".repeat(65)));
    }
}
