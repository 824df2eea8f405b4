//! Command-line interface: parses arguments and calls the library. No logic of its own
//! beyond turning results into output and exit codes.
//!
//! One module per command family (`users`, `authkeys`, `groups`, `shares`, `acl`, `client`,
//! `bench`, `data`, `settings`, `serve`), each owning its argument types and how its results
//! are printed; tables and JSON lines come from [`output`]. Every write goes through
//! `social::ops`, and a command that may change the graph waits, through [`changing`], until
//! running servers made it live.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Flags};
use crate::domain::listing::User;
use crate::social::ops;
use crate::store::Store;
use crate::store::models::applied::Live;
use crate::wire::{Channel, Ident};

/// Prints a line of what a command did, held back while its change is not yet live (see
/// [`output::say`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::say(format!($($arg)*))
    };
}

mod acl;
mod authkeys;
mod bench;
mod client;
mod data;
mod groups;
pub mod output;
mod serve;
mod settings;
mod shares;
mod users;

pub use acl::AclCommand;
pub use authkeys::AuthkeyCommand;
pub use bench::{BenchArgs, BenchWhat, GraphArgs, RelayArgs};
pub use client::{ClientArgs, PubArgs, SubArgs};
pub use data::ImportFormat;
pub use groups::GroupCommand;
pub use serve::ServeArgs;
pub use settings::{ConfigCommand, SecretKeyCommand};
pub use shares::ShareCommand;
pub use users::UserCommand;

/// Who the audit log names for changes made from the command line.
const CLI_ACTOR: &str = "cli";

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
    /// A command that changes the graph answers once its change is saved, without waiting
    /// until running servers made it live (and exits 0 either way).
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// How long a command that changes the graph waits for running servers to make the
    /// change live before it says which are behind and exits 3, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub live_wait: u64,
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
    Log(acl::LogArgs),
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
    Import(data::ImportArgs),
    /// Write the community (users, keys, groups, shares, blocks) as JSON, for `import
    /// --from hpfriends-export` into another database.
    Export(data::ExportArgs),
    /// Write a consistent copy of the live SQLite database to PATH (never overwrites).
    Backup {
        /// Where the copy goes.
        path: PathBuf,
    },
}

/// The user a command acts as, as the website's signed-in user would: permission checks
/// are the same as on the site. Flattened into every command that acts for someone.
#[derive(Debug, Clone, Args)]
pub struct Actor {
    /// The acting user.
    #[arg(long = "as", value_name = "USER", id = "as")]
    pub name: String,
}

impl Actor {
    /// The acting user's record; an unknown name is an error that says so.
    fn user(&self, store: &Store) -> anyhow::Result<User> {
        Ok(ops::find_user(store, &self.name)?)
    }
}

/// The `--json` switch of every listing: JSON lines for scripts instead of a table.
#[derive(Debug, Clone, Copy, Args)]
pub struct Format {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn parse_ident(s: &str) -> Result<Ident, String> {
    Ident::new(s).map_err(|e| e.to_string())
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    Channel::typed(s)
}

/// The settings given as flags: the top layer of the configuration.
fn flags(cli: &Cli) -> Flags {
    let flags = Flags::none().set("db", cli.db.clone());
    match &cli.command {
        Command::Serve(a) => a.flags(flags),
        _ => flags,
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let loaded = Config::load_with(cli.config.as_deref(), std::env::vars(), &flags(&cli))?;
    let config = loaded.config.clone();
    let wait = (!cli.no_wait).then(|| std::time::Duration::from_secs(cli.live_wait));
    match cli.command {
        Command::Config(cmd) => settings::config(cmd, &loaded),
        Command::SecretKey(cmd) => settings::secret_key(cmd),
        Command::Serve(args) => serve::serve(config, args),
        Command::Migrate => data::migrate(&config),
        Command::User(cmd) => {
            // A first user may be made before anything else; every other command needs the
            // database to be there.
            let store = if matches!(cmd, UserCommand::Add { .. }) {
                open_or_create(&config)?
            } else {
                existing(&config)?
            };
            changing(&store, wait, |s| users::run(s, &config, cmd))
        }
        Command::Authkey(cmd) => changing(&existing(&config)?, wait, |s| authkeys::run(s, &config, cmd)),
        Command::Group(cmd) => changing(&existing(&config)?, wait, |s| groups::run(s, cmd)),
        Command::Share(cmd) => changing(&existing(&config)?, wait, |s| shares::run(s, cmd)),
        Command::Acl(cmd) => acl::run(&existing(&config)?, cmd, config.open),
        Command::Log(args) => acl::key_log(&existing(&config)?, &args),
        Command::Import(args) => data::import(&open_or_create(&config)?, wait, args),
        Command::Export(args) => data::export(&existing(&config)?, args),
        Command::Backup { path } => data::backup(&existing(&config)?, &config, &path),
        Command::Pub(args) => client::runtime()?.block_on(client::publish(args)),
        Command::Sub(args) => client::runtime()?.block_on(client::subscribe(args)),
        Command::Bench(args) => bench::run(args),
    }
}

/// [`open_store`] for the commands that read or change what is there: a SQLite file that
/// does not exist is an error, not a new empty database.
fn existing(config: &Config) -> anyhow::Result<Store> {
    open_with(config, false)
}

/// Opens (and migrates) the database with the configured secret key, if any, creating a
/// SQLite file that does not exist.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_with(config, true)
}

/// [`open_store`] for a command that may come first (`user add`, `import`): a database it
/// makes is said, never silently (a typo in `--db` shows).
fn open_or_create(config: &Config) -> anyhow::Result<Store> {
    if let Ok(crate::store::Backend::Sqlite(path)) = crate::store::Backend::of(&config.db)
        && !path.exists()
    {
        eprintln!("hpfriends: creating a new database {}", path.display());
    }
    open_store(config)
}

fn open_with(config: &Config, create: bool) -> anyhow::Result<Store> {
    let sealer = if config.secret_key_file.is_empty() {
        None
    } else {
        Some(crate::store::sealing::Sealer::from_file(std::path::Path::new(
            &config.secret_key_file,
        ))?)
    };
    let store = if create {
        Store::open_pooled(&config.db, config.db_pool_size)?
    } else {
        Store::open_existing(&config.db, config.db_pool_size)?
    };
    Ok(store.with_sealer(sealer)?)
}

/// A change is saved but some running server had not made it live when the CLI stopped
/// waiting, or a server not heard from lately had not: the command exits with
/// [`NotLive::EXIT_CODE`], not 0, so a script can tell.
#[derive(Debug)]
pub struct NotLive {
    /// The change log version waited for.
    pub version: i64,
    /// How many running servers were behind.
    pub behind: usize,
    /// Their names, as they report themselves.
    pub nodes: String,
    /// How long the CLI waited, in seconds.
    pub waited: u64,
    /// Servers not heard from lately that had not applied it, with when each was last seen.
    pub silent: String,
}

impl std::fmt::Display for NotLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the change is saved, but")?;
        if self.behind > 0 {
            write!(
                f,
                " {} running server(s) had not applied ACL version {} after waiting {} s ({})",
                self.behind, self.version, self.waited, self.nodes
            )?;
            if !self.silent.is_empty() {
                write!(f, ", and")?;
            }
        }
        if !self.silent.is_empty() {
            write!(
                f,
                " servers not heard from lately (down, or cut off from the database) had not \
                 applied ACL version {} ({})",
                self.version, self.silent
            )?;
        }
        write!(
            f,
            ": each applies it as soon as it reads the change log again, and one that cannot \
             read it for graph_stale_after_secs delivers only each user's own data until it has"
        )
    }
}

impl std::error::Error for NotLive {}

impl NotLive {
    /// The exit status for "saved, not yet live" (1 is a failure, 2 a usage error).
    pub const EXIT_CODE: u8 = 3;
}

/// Runs a command that may change the graph; if it did, waits until every running server
/// has made the change live on its connections (at most `wait`; [`NotLive`] when one has
/// not), and only then prints what the command did. `wait` `None` (`--no-wait`): answers
/// at once, saying that it did not wait.
fn changing(
    store: &Store,
    wait: Option<std::time::Duration>,
    f: impl FnOnce(&Store) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let before = store.acl_version()?;
    output::defer();
    let after = match f(store).and_then(|()| Ok(store.acl_version()?)) {
        Ok(v) => v,
        Err(e) => {
            // What it did is printed even when it failed halfway (an import's first part).
            output::release();
            return Err(e);
        }
    };
    if after == before {
        output::release();
        return Ok(());
    }
    let Some(wait) = wait else {
        output::release();
        eprintln!("hpfriends: saved (change {after}); not waiting for running servers to apply it");
        return Ok(());
    };
    let live = store.wait_applied_at(after, wait);
    output::release();
    let live = live?;
    // A server not heard from lately that had not applied it is named, never passed over.
    let silent = match store.silent_nodes(after, &live) {
        Ok(silent) => silent
            .iter()
            .map(|(n, ago)| format!("{n}, last seen {ago} s ago"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => {
            eprintln!("hpfriends: cannot tell which servers are silent: {e}");
            String::new()
        }
    };
    let silent = output::terminal_safe(&silent);
    let (behind, nodes) = match live {
        Live::Applied { .. } => (0, Vec::new()),
        Live::Pending { behind, nodes, .. } => (behind, nodes),
    };
    let nodes = output::terminal_safe(&nodes.join(", "));
    if behind == 0 && silent.is_empty() {
        return Ok(());
    }
    Err(NotLive {
        version: after,
        behind,
        nodes,
        waited: wait.as_secs(),
        silent,
    }
    .into())
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
    fn user_names() {
        assert!(ops::valid_name("alice.b-c_1"));
        assert!(!ops::valid_name(""));
        assert!(!ops::valid_name("a b"));
        assert!(!ops::valid_name(&"a".repeat(65)));
    }

    #[test]
    fn the_acting_user_is_required_wherever_it_is_used() {
        use clap::CommandFactory;
        let err = Cli::command()
            .try_get_matches_from(["hpfriends", "share", "list"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--as <USER>"), "{err}");
        let ok = Cli::try_parse_from(["hpfriends", "group", "invite", "g", "bob", "--as", "alice"]).unwrap();
        let Command::Group(GroupCommand::Invite { actor, user, .. }) = ok.command else {
            panic!("parsed as something else");
        };
        assert_eq!((actor.name.as_str(), user.as_str()), ("alice", "bob"));
    }
}
