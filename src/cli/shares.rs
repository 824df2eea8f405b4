//! `hpfriends share …`: offering channels, answering offers, withdrawing and leaving, as
//! the acting user.

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;

use super::output::{self, Listing};
use super::{Actor, Format, parse_channel};
use crate::domain::ShareId;
use crate::domain::listing::ShareInfo;
use crate::domain::model::ShareKind;
use crate::social::ops::{self, GranteeName};
use crate::social::receiving;
use crate::store::Store;
use crate::wire::Channel;

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
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Take up a public offer (a share to everyone) for yourself.
    Follow {
        /// Share id (see `share offers`).
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Stop taking a public offer.
    Unfollow {
        /// Share id.
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Accept a share offered to you (or to a group you own).
    Accept {
        /// Share id (see `share list`).
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Decline a share offered to you.
    Decline {
        /// Share id.
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Withdraw a share you made.
    Revoke {
        /// Share id.
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// Stop receiving a share you accepted.
    Leave {
        /// Share id.
        id: i64,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
    },
    /// What the acting user shares and what is shared with them (public offers they took up
    /// included; the others are `share offers`).
    List {
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
    },
    /// Open public offers the acting user may take up, 50 a page, newest first.
    Offers {
        /// Page, from 0.
        #[arg(long, default_value_t = 0)]
        page: usize,
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
    },
}

/// A share as `share list` shows it, seen from the acting user.
#[derive(Serialize)]
struct ShareRow {
    id: i64,
    /// "out" (the acting user shares) or "in" (shared with them).
    direction: &'static str,
    channel: String,
    #[serde(rename = "type")]
    kind: &'static str,
    state: &'static str,
    from: String,
    to: String,
}

impl ShareRow {
    fn new(direction: &'static str, i: ShareInfo) -> Self {
        Self {
            id: i.share.id.0,
            direction,
            channel: i.share.channel.to_string(),
            kind: i.share.kind.as_str(),
            state: i.share.state.as_str(),
            from: i.from_name,
            to: i.to_name,
        }
    }
}

impl Listing for ShareRow {
    const HEADER: &'static [&'static str] = &["ID", "DIRECTION", "CHANNEL", "TYPE", "STATE", "WITH"];
    fn cells(&self) -> Vec<String> {
        let with = if self.direction == "out" {
            self.to.clone()
        } else {
            format!("from {}", self.from)
        };
        vec![
            self.id.to_string(),
            self.direction.to_owned(),
            self.channel.clone(),
            self.kind.to_owned(),
            self.state.to_owned(),
            with,
        ]
    }
}

/// A public offer as `share offers` shows it.
#[derive(Serialize)]
struct OfferRow {
    id: i64,
    channel: String,
    #[serde(rename = "type")]
    kind: &'static str,
    from: String,
}

impl Listing for OfferRow {
    const HEADER: &'static [&'static str] = &["ID", "CHANNEL", "TYPE", "FROM"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.channel.clone(),
            self.kind.to_owned(),
            self.from.clone(),
        ]
    }
}

/// Runs a `share` subcommand.
pub(super) fn run(store: &Store, cmd: ShareCommand) -> anyhow::Result<()> {
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
            let id = ops::offer_share(store, &actor.user(store)?, &channel, &to, kind, onward)?;
            let state = store.share(id)?.map(|s| s.state.to_string()).unwrap_or_default();
            say!("share {} ({channel}, {kind}) {state}", id.0);
        }
        ShareCommand::Follow { id, actor } => {
            let me = actor.user(store)?;
            ops::follow_share(store, &me, ShareId(id))?;
            let r = receiving::of_share(store, &me, ShareId(id))?;
            say!(
                "share {id} taken up by {}: {}",
                actor.name,
                receiving::say(&me.name, &r)
            );
        }
        ShareCommand::Unfollow { id, actor } => {
            ops::unfollow_share(store, &actor.user(store)?, ShareId(id))?;
            say!("share {id} no longer taken by {}", actor.name);
        }
        ShareCommand::Accept { id, actor } => {
            let me = actor.user(store)?;
            ops::answer_share(store, &me, ShareId(id), true)?;
            let r = receiving::of_share(store, &me, ShareId(id))?;
            say!("share {id} accepted: {}", receiving::say(&me.name, &r));
        }
        ShareCommand::Decline { id, actor } => {
            ops::answer_share(store, &actor.user(store)?, ShareId(id), false)?;
            say!("share {id} declined");
        }
        ShareCommand::Revoke { id, actor } => {
            ops::revoke_share(store, &actor.user(store)?, ShareId(id))?;
            say!("share {id} revoked");
        }
        ShareCommand::Leave { id, actor } => {
            ops::leave_share(store, &actor.user(store)?, ShareId(id))?;
            say!("share {id} left");
        }
        ShareCommand::Offers { page, actor, format } => {
            let (offers, more) = ops::public_offers(store, &actor.user(store)?, page)?;
            let rows: Vec<OfferRow> = offers
                .into_iter()
                .map(|i| OfferRow {
                    id: i.share.id.0,
                    channel: i.share.channel.to_string(),
                    kind: i.share.kind.as_str(),
                    from: i.from_name,
                })
                .collect();
            output::print(&rows, format.json)?;
            if more {
                eprintln!("(more: --page {})", page + 1);
            }
        }
        ShareCommand::List { actor, format } => {
            let (outgoing, incoming) = ops::my_shares(store, &actor.user(store)?)?;
            let rows: Vec<ShareRow> = outgoing
                .into_iter()
                .map(|i| ShareRow::new("out", i))
                .chain(incoming.into_iter().map(|i| ShareRow::new("in", i)))
                .collect();
            output::print(&rows, format.json)?;
        }
    }
    Ok(())
}
