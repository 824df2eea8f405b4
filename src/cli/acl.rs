//! `hpfriends acl …` and `hpfriends log`: why a key receives what it receives, where a
//! user's data goes, and what went wrong with a user's keys.

use std::collections::HashMap;
use std::io::Write;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{self, Listing};
use super::{Actor, Format, parse_ident};
use crate::domain::acl::{Why, explain};
use crate::domain::log::KeyLogEntry;
use crate::domain::model::Grantee;
use crate::domain::{GroupId, UserId};
use crate::social::reach::reach;
use crate::store::Store;
use crate::wire::{Channel, Ident};

/// The most log lines one `log` prints.
const MAX_LOG_LINES: i64 = 10_000;

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
        /// Who acts (`--as`).
        #[command(flatten)]
        actor: Actor,
        /// Table or JSON lines (`--json`).
        #[command(flatten)]
        format: Format,
    },
}

/// Options of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Who acts (`--as`).
    #[command(flatten)]
    actor: Actor,
    /// How many entries (at most 10,000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Table or JSON lines (`--json`).
    #[command(flatten)]
    format: Format,
}

/// A key log line as `log` shows it.
#[derive(Serialize)]
struct LogRow {
    /// Unix seconds.
    at: i64,
    ident: String,
    event: String,
    channel: Option<String>,
    peer: Option<String>,
    detail: String,
}

impl From<KeyLogEntry> for LogRow {
    fn from(e: KeyLogEntry) -> Self {
        Self {
            at: e.at,
            ident: e.ident,
            event: e.event,
            channel: e.channel,
            peer: e.peer,
            detail: e.detail,
        }
    }
}

impl Listing for LogRow {
    const HEADER: &'static [&'static str] = &["AT", "IDENT", "EVENT", "CHANNEL", "PEER", "DETAIL"];
    fn cells(&self) -> Vec<String> {
        let e = self;
        vec![
            crate::web::render::time(e.at),
            e.ident.clone(),
            e.event.clone(),
            e.channel.clone().unwrap_or_else(|| "-".into()),
            e.peer.clone().unwrap_or_else(|| "-".into()),
            e.detail.clone(),
        ]
    }
}

/// Runs an `acl` subcommand; `open` is the configured mode (every publisher reaches every
/// subscriber of a channel).
pub(super) fn run(store: &Store, cmd: AclCommand, open: bool) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Show { ident } => acl_show(store, &ident, open),
        AclCommand::Reach { actor, format } => acl_reach(store, &actor, format.json),
    }
}

/// `log`: the newest misuse of the acting user's keys.
pub(super) fn key_log(store: &Store, args: &LogArgs) -> anyhow::Result<()> {
    let user = args.actor.user(store)?;
    let rows: Vec<LogRow> = store
        .key_log_of(user.id, args.limit.clamp(1, MAX_LOG_LINES))?
        .into_iter()
        .map(LogRow::from)
        .collect();
    output::print(&rows, args.format.json)
}

fn acl_reach(store: &Store, actor: &Actor, json: bool) -> anyhow::Result<()> {
    let me = actor.user(store)?;
    let mut out = std::io::stdout().lock();
    for c in reach(store, &me)? {
        let (channel, reached) = (c.channel, c.receivers);
        if json {
            for r in &reached {
                let v = serde_json::json!({
                    "channel": channel.as_str(), "user": r.user, "through": r.through, "share": r.share.0, "via": r.via,
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
                format!("{} (share {})", r.via, r.share.0)
            } else {
                format!(
                    "through {}, from {} (share {})",
                    r.through.join(" -> "),
                    r.via,
                    r.share.0
                )
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
    let names: HashMap<UserId, String> = store.users()?.into_iter().map(|u| (u.id, u.name)).collect();
    let name = |u: &UserId| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    let group_names: HashMap<GroupId, String> = store.all_groups()?.into_iter().collect();
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
