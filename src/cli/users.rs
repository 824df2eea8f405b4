//! `hpfriends user …`: accounts (the owners of authkeys) and blocks between them.

use clap::Subcommand;
use serde::Serialize;

use super::output::{self, Listing};
use super::{Actor, CLI_ACTOR, Format};
use crate::social::ops;
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
pub(super) fn run(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, email } => {
            let u = ops::register(store, &name, &email, CLI_ACTOR)?;
            say!("user {} created (id {})", u.name, u.id.0);
        }
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
