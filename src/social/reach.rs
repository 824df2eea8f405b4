//! The reach of a user's data: on each channel they share, who receives it and through
//! whom, derived from the graph, with the names of a group's members kept to its members.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::ops::Result;
use crate::domain::acl::Why;
use crate::domain::listing::User;
use crate::domain::live::{LiveGraph, ReachTree};
use crate::domain::model::{Grantee, Graph};
use crate::domain::{GroupId, ShareId, UserId};
use crate::store::Store;
use crate::wire::Channel;

/// One receiver of the actor's data: who, and the redistributors it travels through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The receiving user.
    pub user: String,
    /// The users who pass it on, in the order the data travels (empty: a direct share).
    pub through: Vec<String>,
    /// The actor's share that starts its path.
    pub share: ShareId,
    /// That share in words, for people: "your share to bob", "your share to group
    /// trusted", "your public offer" (a share id is nothing a page shows).
    pub via: String,
    /// How many receivers this line stands for (more than one only for members of a
    /// group the actor is not in, whose names it does not see).
    pub count: usize,
}

/// The paths the actor's data takes, per channel their shares name, before names are put
/// on them: from the live graph (the website: bounded by what lies downstream of the
/// actor) or from a graph read whole (the CLI, which has no live graph).
#[derive(Default)]
pub struct Paths {
    /// Per channel, who receives (each by a shortest path), nearest first.
    channels: Vec<(Channel, Found)>,
    /// The groups on those paths the actor is a member of (who may see their members).
    member_of: HashSet<GroupId>,
}

/// A channel's receivers: paths written out only when named, or written out already.
enum Found {
    Tree(ReachTree),
    Listed(Vec<(UserId, Why)>),
}

impl Found {
    fn len(&self) -> usize {
        match self {
            Found::Tree(t) => t.len(),
            Found::Listed(l) => l.len(),
        }
    }

    /// Receiver `i`, the actor's share that starts its path and that share's grantee, and
    /// the path's length.
    fn receiver(&self, i: usize) -> (UserId, ShareId, Grantee, usize) {
        match self {
            Found::Tree(t) => t.receiver(i),
            Found::Listed(l) => match l.get(i) {
                Some((r, Why::Share { share, to, chain })) => (*r, *share, *to, chain.len()),
                _ => (UserId(0), ShareId(0), Grantee::Everyone, 0),
            },
        }
    }

    /// Receiver `i`'s path, receiver first.
    fn chain(&self, i: usize) -> Vec<UserId> {
        match self {
            Found::Tree(t) => t.chain(i),
            Found::Listed(l) => match l.get(i) {
                Some((_, Why::Share { chain, .. })) => chain.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// The groups the actor's shares that start the paths are offered to.
    fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        (0..self.len()).filter_map(|i| match self.receiver(i).2 {
            Grantee::Group(g) => Some(g),
            _ => None,
        })
    }
}

impl Paths {
    /// From the live graph (see [`LiveGraph::reach_tree`]).
    pub fn live(live: &LiveGraph, actor: UserId) -> Paths {
        let channels: Vec<(Channel, Found)> = live
            .shared_channels(actor)
            .into_iter()
            .map(|c| {
                let r = Found::Tree(live.reach_tree(actor, &c));
                (c, r)
            })
            .collect();
        let member_of = channels
            .iter()
            .flat_map(|(_, f)| f.groups())
            .filter(|g| live.is_member(*g, actor))
            .collect();
        Paths { channels, member_of }
    }

    /// From a graph read whole (see [`crate::domain::acl::reach`]).
    pub fn of_graph(graph: &Graph, actor: UserId) -> Paths {
        let mut names: Vec<Channel> = graph
            .shares
            .iter()
            .filter(|s| s.from == actor)
            .map(|s| s.channel.clone())
            .collect();
        names.sort();
        names.dedup();
        let channels: Vec<(Channel, Found)> = names
            .into_iter()
            .map(|c| {
                let r = Found::Listed(crate::domain::acl::reach(graph, actor, c.as_str()));
                (c, r)
            })
            .collect();
        let member_of = channels
            .iter()
            .flat_map(|(_, f)| f.groups())
            .filter(|g| graph.groups.get(g).is_some_and(|m| m.contains(&actor)))
            .collect();
        Paths { channels, member_of }
    }
}

/// Receivers named per channel in one answer of the website and the API (the rest by
/// page): a hub's data reaches thousands, each through a path that may be hundreds long.
pub const REACH_PAGE: usize = 100;

/// One channel's receivers, or a page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReach {
    /// The channel.
    pub channel: Channel,
    /// The receivers, nearest first (hidden group members folded into counted lines).
    pub receivers: Vec<Reached>,
    /// Lines in all, on every page.
    pub lines: usize,
    /// Receivers in all (a counted line stands for several).
    pub total: usize,
    /// Lines follow on later pages.
    pub more: bool,
}

/// Which receivers to name: every one (the CLI), or a page of each channel's, or a page of
/// one channel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Every receiver of every channel.
    All,
    /// Page `page` ([`REACH_PAGE`] lines) of each channel, or of `channel` alone.
    Page {
        /// Only this channel.
        channel: Option<Channel>,
        /// From 0.
        page: usize,
    },
}

/// The reach of the actor's data on each channel their shares name, read from a graph
/// read whole (the CLI's path): every receiver.
pub fn reach(store: &Store, actor: &User) -> Result<Vec<ChannelReach>> {
    let graph = store.load_graph()?;
    named(store, Paths::of_graph(&graph, actor.id), &Pick::All)
}

/// A line before names: a receiver, the group hidden from the actor its path starts in,
/// and how many receivers it stands for (hidden members reached directly fold into one).
struct Line {
    receiver: usize,
    hidden: Option<GroupId>,
    share: ShareId,
    to: Grantee,
    count: usize,
}

/// The paths as lines with names, for the receivers `pick` asks for: names are read for
/// just the users and groups on those lines. Who is in a group is for its members to know:
/// a sharer outside the group sees that its members receive, not who they are ("a member
/// of G", counted).
pub fn named(store: &Store, paths: Paths, pick: &Pick) -> Result<Vec<ChannelReach>> {
    let Paths { channels, member_of } = paths;
    let mut out = Vec::new();
    for (c, paths) in channels {
        let (page, per) = match pick {
            Pick::All => (0, usize::MAX),
            Pick::Page {
                channel: Some(only), ..
            } if *only != c => continue,
            Pick::Page { page, .. } => (*page, REACH_PAGE),
        };
        let total = paths.len();
        // A line per receiver, but the members of a group hidden from the actor that its
        // share reached directly: one counted line per group.
        let mut lines: Vec<Line> = Vec::new();
        let mut hidden_at: HashMap<GroupId, usize> = HashMap::new();
        for i in 0..total {
            let (_, share, to, hops) = paths.receiver(i);
            let hidden = match to {
                Grantee::Group(g) if !member_of.contains(&g) => Some(g),
                _ => None,
            };
            if let (Some(g), 1) = (hidden, hops) {
                match hidden_at.entry(g) {
                    Entry::Occupied(e) => {
                        lines[*e.get()].count += 1;
                        continue;
                    }
                    Entry::Vacant(e) => {
                        e.insert(lines.len());
                    }
                }
            }
            lines.push(Line {
                receiver: i,
                hidden,
                share,
                to,
                count: 1,
            });
        }
        let count = lines.len();
        let first = page.saturating_mul(per).min(count);
        let last = first.saturating_add(per).min(count);
        // Paths written out for the page alone: receiver first, then each user passing it
        // on, back to the grantee of the actor's share (dropped when hidden).
        let shown: Vec<(&Line, Vec<UserId>)> = lines[first..last]
            .iter()
            .map(|l| {
                let mut chain = paths.chain(l.receiver);
                if l.hidden.is_some() {
                    chain.pop();
                }
                (l, chain)
            })
            .collect();
        let mut ids: Vec<UserId> = shown.iter().flat_map(|(_, c)| c.iter()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let names = store.user_names(&ids)?;
        let name = |u: UserId| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
        let mut groups: HashMap<GroupId, String> = HashMap::new();
        let mut receivers = Vec::with_capacity(shown.len());
        for (l, chain) in shown {
            let mut label = |g: GroupId| -> Result<String> {
                if let Some(n) = groups.get(&g) {
                    return Ok(n.clone());
                }
                let n = store.group_name(g)?.unwrap_or_else(|| g.0.to_string());
                groups.insert(g, n.clone());
                Ok(n)
            };
            // In the order the data travels.
            let mut through: Vec<String> = chain.iter().skip(1).rev().map(|u| name(*u)).collect();
            let user = match (chain.first(), l.hidden) {
                (Some(u), None) => name(*u),
                // Reached through a hidden member: the path starts at "a member of G".
                (Some(u), Some(g)) => {
                    through.insert(0, format!("a member of group {}", label(g)?));
                    name(*u)
                }
                (None, Some(g)) if l.count > 1 => format!("{} members of group {}", l.count, label(g)?),
                (None, Some(g)) => format!("a member of group {}", label(g)?),
                (None, None) => String::new(),
            };
            let via = match l.to {
                // The grantee is the far end of the path, so its name was read with it.
                Grantee::User(u) => format!("your share to {}", name(u)),
                Grantee::Group(g) => format!("your share to group {}", label(g)?),
                Grantee::Everyone => "your public offer".to_owned(),
            };
            receivers.push(Reached {
                user,
                through,
                share: l.share,
                via,
                count: l.count,
            });
        }
        out.push(ChannelReach {
            channel: c,
            receivers,
            lines: count,
            total,
            more: last < count,
        });
    }
    Ok(out)
}
