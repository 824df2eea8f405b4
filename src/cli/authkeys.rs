//! `hpfriends authkey …`: the keys clients connect with, acting as each key's owner.

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;

use super::output::{self, Listing};
use super::{Format, parse_channel, parse_ident};
use crate::social::ops;
use crate::store::Store;
use crate::wire::{Channel, Ident, Secret};

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
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
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
    /// Add channels to a key's subscribe list (what a share accepted needs before data
    /// arrives); the channels it lists already are left as they are.
    Subscribe {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
        /// The channels (repeat, or separate with commas).
        #[arg(required = true, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
        channels: Vec<Channel>,
    },
    /// A ready-made configuration for a key: cowrie's output_hpfeeds3 section, dionaea's
    /// hpfeeds ihandler, or a Python or Go client, with this broker's address and the key's
    /// ident and channels filled in.
    Snippet {
        /// The key's ident.
        #[arg(value_parser = parse_ident)]
        ident: Ident,
        /// What for: cowrie, dionaea, python or go.
        #[arg(long = "for", value_name = "TARGET")]
        target: crate::domain::snippet::Target,
        /// Fill in the key's secret (otherwise a placeholder: secrets are shown once).
        #[arg(long)]
        with_secret: bool,
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

/// A key as `authkey list` shows it (never its secret).
#[derive(Serialize)]
struct KeyRow {
    ident: String,
    owner: String,
    enabled: bool,
    publish: Vec<String>,
    subscribe: Vec<String>,
    comment: String,
    created_at: i64,
}

impl Listing for KeyRow {
    const HEADER: &'static [&'static str] = &["IDENT", "OWNER", "ENABLED", "PUBLISH", "SUBSCRIBE", "COMMENT"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.ident.clone(),
            self.owner.clone(),
            self.enabled.to_string(),
            self.publish.join(","),
            self.subscribe.join(","),
            self.comment.clone(),
        ]
    }
}

fn names(v: &[Channel]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// Runs an `authkey` subcommand.
pub(super) fn run(store: &Store, config: &crate::config::Config, cmd: AuthkeyCommand) -> anyhow::Result<()> {
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
            say!("ident: {ident}\nsecret: {}", secret.expose());
        }
        AuthkeyCommand::List { format } => {
            let rows: Vec<KeyRow> = store
                .authkeys()?
                .into_iter()
                .map(|k| KeyRow {
                    ident: k.ident.to_string(),
                    owner: k.owner,
                    enabled: k.enabled,
                    publish: names(&k.publish),
                    subscribe: names(&k.subscribe),
                    comment: k.comment,
                    created_at: k.created_at,
                })
                .collect();
            output::print(&rows, format.json)?;
        }
        AuthkeyCommand::Rm { ident } => {
            ops::delete_key(store, &ops::key_owner(store, &ident)?, &ident)?;
            say!("authkey {ident} removed");
        }
        AuthkeyCommand::Snippet {
            ident,
            target,
            with_secret,
        } => {
            let Some(k) = store.key_record(&ident)? else {
                bail!("no authkey with ident {:?}", ident.as_str());
            };
            let broker = crate::domain::snippet::Broker {
                host: config.client_host(),
                port: config.listen.port(),
                tls_port: config.client_tls_port(),
            };
            let key = crate::domain::snippet::KeyFacts {
                ident: k.ident.as_str(),
                secret: with_secret.then(|| k.secret.expose()),
                publish: &k.publish,
                subscribe: &k.subscribe,
            };
            eprintln!("# for {}", target.file());
            print!("{}", crate::domain::snippet::render(target, &broker, &key));
        }
        AuthkeyCommand::Subscribe { ident, channels } => {
            let owner = ops::key_owner(store, &ident)?;
            for c in &channels {
                if crate::social::receiving::subscribe_key(store, &owner, &ident, c)? {
                    say!("authkey {ident} subscribes to {c} now");
                } else {
                    say!("authkey {ident} subscribed to {c} already");
                }
            }
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
            say!("authkey {ident} updated");
        }
        AuthkeyCommand::Rotate { ident } => {
            let secret = ops::rotate_key(store, &ops::key_owner(store, &ident)?, &ident)?;
            say!("ident: {ident}\nsecret: {}", secret.expose());
        }
        AuthkeyCommand::Disable { ident } => {
            ops::set_key_enabled(store, &ops::key_owner(store, &ident)?, &ident, false)?;
            say!("authkey {ident} disabled");
        }
        AuthkeyCommand::Enable { ident } => {
            ops::set_key_enabled(store, &ops::key_owner(store, &ident)?, &ident, true)?;
            say!("authkey {ident} enabled");
        }
    }
    Ok(())
}
