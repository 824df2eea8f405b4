//! The start-up path: the whole graph read at once, indexed and settled channel by channel,
//! every key derived; what a change then keeps current (see the parent module).

use std::sync::Arc;

use super::{
    ChannelState, GroupReceptions, IdMap, IdSet, LiveGraph, Receptions, Taken, catalogue, count_out, forward,
    keys::Memo, taken,
};
use crate::domain::acl::{KeyAcl, KeyRecord, KeyTable, Mode};
use crate::domain::model::{Grantee, Graph, ShareState};
use crate::domain::{AuthkeyId, GroupId, ShareId, UserId};
use crate::wire::{Channel, Ident};

impl LiveGraph {
    /// Indexes `graph` and derives every key once (what [`crate::domain::acl::derive`] gives).
    pub fn new(graph: Graph, mode: Mode) -> Self {
        let Graph {
            users,
            groups,
            shares,
            keys: records,
            follows,
            blocks,
        } = graph;
        let mut g = Self {
            mode,
            users: users.into_iter().collect(),
            members: Default::default(),
            groups_of: Default::default(),
            shares: IdMap::with_capacity_and_hasher(shares.len(), Default::default()),
            shares_from: Default::default(),
            group_shares: Default::default(),
            followers: Default::default(),
            follows_of: Default::default(),
            blocks: blocks.into_iter().collect(),
            channels: Default::default(),
            keys: Default::default(),
            keys_of: Default::default(),
            publishing: Default::default(),
            table: KeyTable::new(),
            owed: Default::default(),
        };
        // The shares indexed on this thread; groups, follows and keys on another (none of
        // them reads the others).
        std::thread::scope(|scope| {
            let rest = scope.spawn(move || {
                let mut members: IdMap<GroupId, IdSet<UserId>> = Default::default();
                let mut groups_of: IdMap<UserId, IdSet<GroupId>> = Default::default();
                for (group, users) in groups {
                    for u in users {
                        groups_of.entry(u).or_default().insert(group);
                        members.entry(group).or_default().insert(u);
                    }
                }
                let mut followers: IdMap<ShareId, IdSet<UserId>> = Default::default();
                let mut follows_of: IdMap<UserId, IdSet<ShareId>> = Default::default();
                for (s, u) in follows {
                    followers.entry(s).or_default().insert(u);
                    follows_of.entry(u).or_default().insert(s);
                }
                let mut publishing = catalogue::Publishing::default();
                let mut keys_of: IdMap<UserId, IdSet<AuthkeyId>> = Default::default();
                let mut keys = IdMap::with_capacity_and_hasher(records.len(), Default::default());
                for k in records {
                    catalogue::note(&mut publishing, &k, true);
                    keys_of.entry(k.owner).or_default().insert(k.id);
                    keys.insert(k.id, k);
                }
                (
                    members, groups_of, followers, follows_of, publishing, keys_of, keys,
                )
            });
            for s in shares {
                g.index(s);
            }
            (
                g.members,
                g.groups_of,
                g.followers,
                g.follows_of,
                g.publishing,
                g.keys_of,
                g.keys,
            ) = rest.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        });
        // Channels are independent: settled side by side on every core, each in one pass
        // over its shares, the largest first and each to whichever thread is free (one busy
        // channel must not leave a core idle).
        let mut states: Vec<(Channel, ChannelState)> = std::mem::take(&mut g.channels).into_iter().collect();
        states.sort_unstable_by_key(|(_, s)| std::cmp::Reverse(s.share_count()));
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let queue = std::sync::Mutex::new(states.iter_mut());
        std::thread::scope(|scope| {
            for _ in 0..threads.min(states_len(&queue)) {
                let (g, queue) = (&g, &queue);
                scope.spawn(move || {
                    while let Some((_, state)) = queue.lock().ok().and_then(|mut q| q.next()) {
                        let (users, groups) = g.taken_by_all(state);
                        install(state, users, groups);
                        forward::build(state, &g.ctx());
                    }
                });
            }
        });
        g.channels = states.into_iter().collect();
        let mut keys: Vec<&KeyRecord> = g.keys.values().collect();
        keys.sort_unstable_by_key(|k| (k.owner, k.id));
        let per = keys.len().div_ceil(threads).max(1);
        let derived: Vec<Vec<(Ident, Arc<KeyAcl>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = keys
                .chunks(per)
                .map(|chunk| {
                    let g = &g;
                    scope.spawn(move || {
                        let mut memo = Memo::default();
                        chunk
                            .iter()
                            .filter_map(|k| g.key_acl(k, &mut memo).map(|acl| (k.ident.clone(), acl)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        g.table = derived.into_iter().flatten().collect();
        g
    }

    /// Every reception of one channel at once, share by share (the start-up path: one pass
    /// over the channel's shares and their grantees rather than a look-up per user).
    fn taken_by_all(&self, state: &ChannelState) -> (Receptions, GroupReceptions) {
        let mut out: IdMap<UserId, Vec<Taken>> = Default::default();
        let groups: Vec<(GroupId, Vec<Taken>)> = state
            .to_group
            .keys()
            .map(|g| (*g, self.group_taken(state, *g)))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        let ids = state.to_user.values().flatten().chain(state.everyone.iter());
        for s in ids.filter_map(|id| self.shares.get(id)) {
            if s.state != ShareState::Accepted || !self.enabled(s.from) {
                continue;
            }
            let t = taken(s);
            let mut take = |u: UserId| {
                if !self.blocked(u, s.from) {
                    out.entry(u).or_default().push(t);
                }
            };
            match s.to {
                Grantee::User(u) => take(u),
                Grantee::Group(_) => {}
                Grantee::Everyone => self
                    .followers
                    .get(&s.id)
                    .into_iter()
                    .flatten()
                    .copied()
                    .for_each(&mut take),
            }
        }
        for list in out.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        (out, groups)
    }
}

impl ChannelState {
    /// How many shares the channel carries (what settling it costs, roughly).
    fn share_count(&self) -> usize {
        self.to_user.values().map(Vec::len).sum::<usize>()
            + self.to_group.values().map(Vec::len).sum::<usize>()
            + self.everyone.len()
    }
}

/// How many channels are left in a queue of them.
fn states_len<I: ExactSizeIterator>(queue: &std::sync::Mutex<I>) -> usize {
    queue.lock().map_or(0, |q| q.len())
}

/// Installs every reception of a channel nobody took anything on yet (the start-up path:
/// [`forward::build`] follows).
fn install(state: &mut ChannelState, users: Receptions, groups: GroupReceptions) {
    for (&u, taken) in &users {
        for t in taken.iter().filter(|t| t.redistribute) {
            count_out(&mut state.out, t.from, u, true);
        }
    }
    state.incoming = users;
    for (g, taken) in groups {
        for t in taken.iter().filter(|t| t.redistribute) {
            count_out(&mut state.out_groups, t.from, g, true);
        }
        state.group_in.insert(g, taken);
    }
}
