//! Who publishes where, from the live graph: the channels catalogue and a channel's
//! publishers without a database query that joins every key of every user (at 100,000
//! users a catalogue page read that way took seconds and weighed megabytes). The index,
//! channel → publishing users (with how many of their enabled keys list it), moves with
//! each key delta; blocks and disabled accounts are applied per viewer when read.

use std::collections::BTreeMap;

use super::{IdMap, IdSet, LiveGraph};
use crate::domain::UserId;
use crate::domain::model::{Grantee, KeyRecord, ShareState};
use crate::wire::Channel;

/// Channel → users with an enabled key that lists it for publishing, with how many.
pub(super) type Publishing = BTreeMap<Channel, IdMap<UserId, u32>>;

/// Adds (`add`) or takes away `k`'s publish channels in `index` (a disabled key counts for
/// nothing either way).
pub(super) fn note(index: &mut Publishing, k: &KeyRecord, add: bool) {
    if !k.enabled {
        return;
    }
    for c in &k.publish {
        if add {
            *index.entry(c.clone()).or_default().entry(k.owner).or_default() += 1;
            continue;
        }
        if let Some(users) = index.get_mut(c) {
            if let Some(n) = users.get_mut(&k.owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    users.remove(&k.owner);
                }
            }
            if users.is_empty() {
                index.remove(c);
            }
        }
    }
}

/// One channel of the catalogue as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPublishers {
    /// The channel.
    pub channel: Channel,
    /// How many publishers the viewer may see on it.
    pub count: usize,
    /// The first of them, at most as many as asked: the viewer, then the oldest accounts.
    pub first: Vec<UserId>,
}

impl LiveGraph {
    /// The users `viewer` must not see as publishers: those it blocks and those blocking it.
    fn hidden_from(&self, viewer: UserId) -> IdSet<UserId> {
        self.blocks
            .iter()
            .filter_map(|(a, b)| {
                if *a == viewer {
                    Some(*b)
                } else if *b == viewer {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether `viewer` sees `u` as a publisher (`hidden`: see [`Self::hidden_from`]).
    fn shows(&self, u: UserId, hidden: &IdSet<UserId>) -> bool {
        self.users.get(&u).copied().unwrap_or(false) && !hidden.contains(&u)
    }

    /// Page `page` (`per` a page, by name) of the channels whose name contains `query` (any
    /// case) with a publisher `viewer` may see (enabled, and neither blocking the other);
    /// each with how many, and the first `names` of them. And whether more follow.
    pub fn catalogue(
        &self,
        viewer: UserId,
        query: &str,
        page: usize,
        per: usize,
        names: usize,
    ) -> (Vec<ChannelPublishers>, bool) {
        let hidden = self.hidden_from(viewer);
        let query = query.to_lowercase();
        let skip = page.saturating_mul(per);
        let mut out = Vec::new();
        let mut seen = 0usize;
        for (channel, users) in &self.publishing {
            if !query.is_empty() && !channel.as_str().to_lowercase().contains(&query) {
                continue;
            }
            // Counting costs a pass over the channel's publishers: only for the page.
            if seen < skip {
                if users.keys().any(|u| self.shows(*u, &hidden)) {
                    seen += 1;
                }
                continue;
            }
            let visible = self.visible(users, &hidden);
            if visible.is_empty() {
                continue;
            }
            if out.len() == per {
                return (out, true);
            }
            seen += 1;
            out.push(ChannelPublishers {
                channel: channel.clone(),
                count: visible.len(),
                first: first(visible, viewer, names),
            });
        }
        (out, false)
    }

    /// The users `viewer` may see publishing on `channel` (see [`Self::catalogue`]), in no
    /// particular order.
    pub fn publishers(&self, viewer: UserId, channel: &Channel) -> Vec<UserId> {
        let hidden = self.hidden_from(viewer);
        self.publishing
            .get(channel)
            .map(|users| self.visible(users, &hidden))
            .unwrap_or_default()
    }

    /// Page `page` (`per` a page) of the publishers `viewer` may see on `channel`: the viewer
    /// first, then the oldest accounts; each with the state of a live share of theirs to the
    /// viewer on it (accepted over offered). And how many there are in all.
    pub fn publishers_page(
        &self,
        viewer: UserId,
        channel: &Channel,
        page: usize,
        per: usize,
    ) -> (Vec<(UserId, Option<ShareState>)>, usize) {
        let mut all = self.publishers(viewer, channel);
        all.sort_unstable_by_key(|u| (*u != viewer, *u));
        let total = all.len();
        let rows = all
            .into_iter()
            .skip(page.saturating_mul(per))
            .take(per)
            .map(|u| (u, self.share_to(u, channel, viewer)))
            .collect();
        (rows, total)
    }

    /// The state of `from`'s live share on `channel` to `to` (accepted over offered).
    fn share_to(&self, from: UserId, channel: &Channel, to: UserId) -> Option<ShareState> {
        self.shares_from
            .get(&from)
            .into_iter()
            .flatten()
            .filter_map(|id| self.shares.get(id))
            .filter(|s| s.to == Grantee::User(to) && s.channel == *channel)
            .map(|s| s.state)
            .filter(|st| matches!(st, ShareState::Accepted | ShareState::Offered))
            .min_by_key(|st| *st != ShareState::Accepted)
    }

    fn visible(&self, users: &IdMap<UserId, u32>, hidden: &IdSet<UserId>) -> Vec<UserId> {
        users.keys().copied().filter(|u| self.shows(*u, hidden)).collect()
    }
}

/// The viewer first (when there), then the lowest ids, `n` in all.
fn first(mut users: Vec<UserId>, viewer: UserId, n: usize) -> Vec<UserId> {
    let mine = users
        .iter()
        .position(|u| *u == viewer)
        .map(|i| users.swap_remove(i));
    let rest = n.saturating_sub(usize::from(mine.is_some()));
    if users.len() > rest {
        users.select_nth_unstable(rest.saturating_sub(1));
        users.truncate(rest);
    }
    users.sort();
    mine.into_iter().chain(users).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_comes_first_then_the_oldest_accounts() {
        let ids = |v: &[i64]| v.iter().map(|i| UserId(*i)).collect::<Vec<_>>();
        assert_eq!(first(ids(&[9, 3, 7, 1, 5]), UserId(7), 3), ids(&[7, 1, 3]));
        assert_eq!(first(ids(&[9, 3, 7, 1, 5]), UserId(2), 3), ids(&[1, 3, 5]));
        assert_eq!(first(ids(&[9, 3]), UserId(2), 5), ids(&[3, 9]));
        assert_eq!(first(ids(&[9, 3]), UserId(9), 1), ids(&[9]));
        assert!(first(ids(&[9, 3]), UserId(1), 0).is_empty());
    }
}
