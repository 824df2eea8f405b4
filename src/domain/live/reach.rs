//! Where a user's data goes, read from the live graph: a walk forward from the publisher
//! along the shares that carry its data, bounded by what lies downstream of it, instead of
//! loading the whole graph and asking every receiver of the channel for its sources
//! ([`crate::domain::acl::reach`], the reference: the same receivers, each by a path of
//! the same length, is what the tests check).

use std::collections::VecDeque;

use super::{IdMap, LiveGraph};
use crate::domain::acl::Why;
use crate::domain::model::{Grantee, Share, ShareKind, ShareState};
use crate::domain::{GroupId, ShareId, UserId};
use crate::wire::Channel;

/// How a user came to hold the publisher's data: the publisher's share that started the
/// path, and the user it came through (none: straight from the publisher).
#[derive(Clone, Copy)]
struct Step {
    share: ShareId,
    to: Grantee,
    via: Option<UserId>,
}

impl LiveGraph {
    /// The channels `user`'s shares name (in any state), sorted.
    pub fn shared_channels(&self, user: UserId) -> Vec<Channel> {
        let mut out: Vec<Channel> = self
            .shares_from
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.shares.get(id))
            .map(|s| s.channel.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `user` is an active member of `group` (who may see its members' names).
    pub fn is_member(&self, group: GroupId, user: UserId) -> bool {
        self.members.get(&group).is_some_and(|m| m.contains(&user))
    }

    /// The reach of `publisher`'s data on `channel`: every other user who receives it, each
    /// by a shortest path, nearest first (as [`crate::domain::acl::reach`]); a path is
    /// written out only when asked for ([`ReachTree::chain`]).
    pub fn reach_tree(&self, publisher: UserId, channel: &Channel) -> ReachTree {
        // Who receives it (first by the shortest path), and who may pass it on (by the
        // shortest path that allows it, which may be longer).
        let mut received: IdMap<UserId, (Step, usize)> = IdMap::default();
        let mut passes: IdMap<UserId, Step> = IdMap::default();
        let mut queue: VecDeque<(UserId, usize)> = VecDeque::new();
        // A user who blocked the publisher neither receives nor passes on its data.
        let takes =
            |s: &Share, u: UserId| u != publisher && !self.blocked(u, publisher) && self.reaches(s, u);
        for s in self.shares_on(publisher, channel) {
            for u in self.grantees(s) {
                if !takes(s, u) {
                    continue;
                }
                let step = Step {
                    share: s.id,
                    to: s.to,
                    via: None,
                };
                received.entry(u).or_insert((step, 1));
                if s.onward && !passes.contains_key(&u) {
                    passes.insert(u, step);
                    queue.push_back((u, 1));
                }
            }
        }
        // Then along redistribute shares, level by level: a path is found at its length.
        while let Some((y, hops)) = queue.pop_front() {
            let Some(&from) = passes.get(&y) else { continue };
            let on = self
                .shares_on(y, channel)
                .filter(|s| s.kind == ShareKind::Redistribute);
            for s in on {
                for v in self.grantees(s) {
                    if !takes(s, v) {
                        continue;
                    }
                    let step = Step { via: Some(y), ..from };
                    received.entry(v).or_insert((step, hops + 1));
                    if s.onward && !passes.contains_key(&v) {
                        passes.insert(v, step);
                        queue.push_back((v, hops + 1));
                    }
                }
            }
        }
        let mut receivers: Vec<(UserId, usize, Step)> = received
            .into_iter()
            .map(|(r, (step, hops))| (r, hops, step))
            .collect();
        receivers.sort_unstable_by_key(|(r, hops, _)| (*hops, *r));
        ReachTree { receivers, passes }
    }

    /// [`Self::reach_tree`] with every path written out.
    pub fn reach(&self, publisher: UserId, channel: &Channel) -> Vec<(UserId, Why)> {
        let tree = self.reach_tree(publisher, channel);
        (0..tree.len())
            .map(|i| {
                let (r, share, to, _) = tree.receiver(i);
                (
                    r,
                    Why::Share {
                        share,
                        to,
                        chain: tree.chain(i),
                    },
                )
            })
            .collect()
    }

    /// `user`'s accepted shares on `channel`.
    fn shares_on<'a>(&'a self, user: UserId, channel: &'a Channel) -> impl Iterator<Item = &'a Share> + 'a {
        self.shares_from
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.shares.get(id))
            .filter(move |s| s.state == ShareState::Accepted && s.channel == *channel)
    }
}

/// Who receives a publisher's data on a channel, nearest first, with what it takes to
/// write out each one's path.
#[derive(Default)]
pub struct ReachTree {
    /// Receiver, hops, and how it received.
    receivers: Vec<(UserId, usize, Step)>,
    passes: IdMap<UserId, Step>,
}

impl ReachTree {
    /// Receivers in all.
    pub fn len(&self) -> usize {
        self.receivers.len()
    }

    /// Whether nobody receives it.
    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Receiver `i`: who, the publisher's share that starts its path, that share's grantee,
    /// and the path's length in hops.
    pub fn receiver(&self, i: usize) -> (UserId, ShareId, Grantee, usize) {
        self.receivers
            .get(i)
            .map_or((UserId(0), ShareId(0), Grantee::Everyone, 0), |(r, hops, s)| {
                (*r, s.share, s.to, *hops)
            })
    }

    /// Receiver `i`'s path: the receiver first, then each user it came through, back to the
    /// grantee of the publisher's share.
    pub fn chain(&self, i: usize) -> Vec<UserId> {
        let Some((r, hops, step)) = self.receivers.get(i) else {
            return Vec::new();
        };
        let mut chain = Vec::with_capacity(*hops);
        chain.push(*r);
        let mut via = step.via;
        while let Some(y) = via {
            chain.push(y);
            via = self.passes.get(&y).and_then(|s| s.via);
        }
        chain
    }
}
