//! `hpfriends user …`: accounts (the owners of authkeys) and blocks between them.

use clap::Subcommand;
use serde::Serialize;

use anyhow::bail;

use super::output::{self, Listing};
use super::{Actor, CLI_ACTOR, Format};
use crate::config::Config;
use crate::social::{accounts, ops};
use crate::store::Store;

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
    /// Set a user's email address (unconfirmed until the user opens a link mailed there,
    /// e.g. by `user invite`); a changed address ends the user's sessions and API tokens.
    SetEmail {
        /// The user.
        name: String,
        /// The new address.
        address: String,
    },
    /// Mail users a link to choose a password and confirm their address: how users who
    /// never signed up (imported, or made by `user add`) come to the website.
    Invite {
        /// The users to invite.
        #[arg(required = true)]
        names: Vec<String>,
        /// How long the link works, in days (at most 30).
        #[arg(long, default_value_t = accounts::INVITE_DAYS)]
        days: u32,
        /// Print each link instead of mailing it (hand it over another way).
        #[arg(long)]
        print_link: bool,
    },
    /// List users.
    List {
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
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
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Lift a block.
    Unblock {
        /// The user to unblock.
        name: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// The users the acting user blocks.
    Blocks {
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
}

/// A user as `user list` shows it.
#[derive(Serialize)]
struct UserRow {
    id: i64,
    name: String,
    email: String,
    enabled: bool,
    created_at: i64,
}

impl Listing for UserRow {
    const HEADER: &'static [&'static str] = &["NAME", "EMAIL", "ENABLED", "CREATED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.email.clone(),
            self.enabled.to_string(),
            crate::web::render::time(self.created_at),
        ]
    }
}

/// Runs a `user` subcommand.
pub(super) fn run(store: &Store, config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, email } => {
            let u = ops::register(store, &name, &email, CLI_ACTOR)?;
            say!("user {} created (id {})", u.name, u.id.0);
        }
        UserCommand::SetEmail { name, address } => {
            let u = accounts::set_email(store, &name, &address, CLI_ACTOR)?;
            say!(
                "{name}'s address is now {} (unconfirmed: hpfriends user invite {name} mails a link to confirm it)",
                output::terminal_safe(&u.email)
            );
        }
        UserCommand::Invite {
            names,
            days,
            print_link,
        } => invite(store, config, &names, days, print_link)?,
        UserCommand::List { format } => {
            let rows: Vec<UserRow> = store
                .users()?
                .into_iter()
                .map(|u| UserRow {
                    id: u.id.0,
                    name: u.name,
                    email: u.email,
                    enabled: u.enabled,
                    created_at: u.created_at,
                })
                .collect();
            output::print(&rows, format.json)?;
        }
        UserCommand::Disable { name } => {
            ops::set_user_enabled(store, &name, false, CLI_ACTOR)?;
            say!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            ops::set_user_enabled(store, &name, true, CLI_ACTOR)?;
            say!("user {name} enabled");
        }
        UserCommand::Block { name, actor } => {
            ops::block_user(store, &actor.user(store)?, &name)?;
            say!(
                "{} blocks {name}: nothing of theirs reaches {}",
                actor.name,
                actor.name
            );
        }
        UserCommand::Unblock { name, actor } => {
            ops::unblock_user(store, &actor.user(store)?, &name)?;
            say!("{} no longer blocks {name}", actor.name);
        }
        UserCommand::Blocks { actor } => {
            for name in ops::my_blocks(store, &actor.user(store)?)? {
                say!("{name}");
            }
        }
    }
    Ok(())
}

/// `user invite`: a link per user, mailed now (or printed); every user is tried, and the
/// command fails at the end if any could not be invited, naming each.
fn invite(
    store: &Store,
    config: &Config,
    names: &[String],
    days: u32,
    print_link: bool,
) -> anyhow::Result<()> {
    if config.web_listen.is_empty() && config.public_url.is_empty() {
        bail!(
            "there is no website to sign in on: set web_listen (and public_url, the address users reach it at)"
        );
    }
    let site = config.site_url();
    let (_, mails) = crate::web::render::templates()?;
    let runtime = super::client::runtime()?;
    let mut failed = Vec::new();
    for name in names {
        let sent = accounts::invite(store, name, days)
            .map_err(anyhow::Error::from)
            .and_then(|inv| {
                let link = format!("{site}/reset/{}", inv.token);
                let email = output::terminal_safe(&inv.user.email);
                if print_link {
                    say!("{name} <{email}>: {link} (works once, for {days} day(s))");
                    return Ok(());
                }
                let text = mails.render(
                    "mail/invite",
                    &serde_json::json!({"name": inv.user.name, "link": link, "days": days, "site": site}),
                )?;
                runtime.block_on(crate::mail::deliver(
                    (&config.smtp_url, &config.mail_dir, &config.mail_from),
                    &inv.user.email,
                    "Your hpfriends account: choose a password",
                    &text,
                ))?;
                say!("invited {name}: mailed a link to {email} (works once, for {days} day(s))");
                Ok(())
            });
        if let Err(e) = sent {
            eprintln!("hpfriends: {name} not invited: {e:#}");
            failed.push(name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} user(s) not invited: {}",
            failed.len(),
            names.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
