//! `hpfriends group …`: groups that channels are shared with, as the acting user.

use clap::Subcommand;
use serde::Serialize;

use super::output::{self, Listing};
use super::{Actor, Format};
use crate::social::ops;
use crate::store::Store;

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
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Invite a user (owner only).
    Invite {
        /// The group.
        group: String,
        /// The user to invite.
        user: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Accept an invitation.
    Accept {
        /// The group.
        group: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Decline an invitation.
    Decline {
        /// The group.
        group: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Remove a member or withdraw an invitation (owner only).
    Remove {
        /// The group.
        group: String,
        /// The member.
        user: String,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// List the acting user's groups and their members.
    List {
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
    },
}

/// A member as listed.
#[derive(Serialize)]
struct MemberRow {
    user: String,
    role: &'static str,
    state: &'static str,
}

/// A group as `group list` shows it: the first page of members and how many in all.
#[derive(Serialize)]
struct GroupRow {
    name: String,
    owner: String,
    description: String,
    members: Vec<MemberRow>,
    member_count: usize,
}

impl Listing for GroupRow {
    const HEADER: &'static [&'static str] = &["GROUP", "OWNER", "MEMBERS"];
    fn cells(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .iter()
            .map(|m| match (m.role, m.state) {
                ("owner", _) => format!("{} (owner)", m.user),
                (_, "invited") => format!("{} (invited)", m.user),
                _ => m.user.clone(),
            })
            .collect();
        let more = self.member_count.saturating_sub(self.members.len());
        if more > 0 {
            names.push(format!("and {more} more"));
        }
        vec![self.name.clone(), self.owner.clone(), names.join(", ")]
    }
}

/// Runs a `group` subcommand.
pub(super) fn run(store: &Store, cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Create {
            name,
            description,
            actor,
        } => {
            ops::create_group(store, &actor.user(store)?, &name, &description)?;
            say!("group {name} created, owned by {}", actor.name);
        }
        GroupCommand::Invite { group, user, actor } => {
            ops::invite(store, &actor.user(store)?, &group, &user)?;
            say!("{user} invited to {group}");
        }
        GroupCommand::Accept { group, actor } => {
            let me = actor.user(store)?;
            ops::accept_invitation(store, &me, &group)?;
            let channels = crate::social::receiving::of_group(store, &me, &group)?;
            if channels.is_empty() {
                say!(
                    "{} joined {group} (nothing is shared with {group} yet)",
                    actor.name
                );
            } else {
                say!(
                    "{} joined {group}, which receives {} channel(s):",
                    actor.name,
                    channels.len()
                );
                for r in &channels {
                    say!("  {}", crate::social::receiving::say(&me.name, r));
                }
            }
        }
        GroupCommand::Decline { group, actor } => {
            ops::decline_invitation(store, &actor.user(store)?, &group)?;
            say!("{} declined {group}", actor.name);
        }
        GroupCommand::Leave { group, actor } => {
            ops::leave_group(store, &actor.user(store)?, &group)?;
            say!("{} left {group}", actor.name);
        }
        GroupCommand::Remove { group, user, actor } => {
            ops::remove_member(store, &actor.user(store)?, &group, &user)?;
            say!("{user} removed from {group}");
        }
        GroupCommand::List { actor, format } => {
            let rows: Vec<GroupRow> = ops::my_groups(store, &actor.user(store)?)?
                .into_iter()
                .map(|g| GroupRow {
                    members: g
                        .members
                        .iter()
                        .map(|(n, r, s)| MemberRow {
                            user: n.clone(),
                            role: r.as_str(),
                            state: s.as_str(),
                        })
                        .collect(),
                    name: g.name,
                    owner: g.owner,
                    description: g.description,
                    member_count: g.member_count,
                })
                .collect();
            output::print(&rows, format.json)?;
        }
    }
    Ok(())
}
