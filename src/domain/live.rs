//! The key table kept current change by change: the social graph held in memory, indexed
//! by channel, with each user's `forward` set cached, so that a change re-derives only the
//! keys whose sources can move (a share's grantees, a group's new or old member, a
//! blocker, and downstream of them the users whose `forward` set actually moved: see
//! [`forward`] for how a change costs the facts it moves, not the closure it sits in).
//!
//! [`super::acl::derive`] stays the reference: the proptest below applies random change
//! sequences here and compares the table with a full derivation after every step.

use std::collections::HashMap;
use std::sync::Arc;

use super::acl::{KeyAcl, KeyRecord, KeyTable, Mode};
use super::model::{Grantee, Share, ShareKind, ShareState};
use super::{AuthkeyId, GroupId, ShareId, UserId};
use crate::wire::{Channel, Ident};

mod catalogue;
mod forward;
mod keys;
mod owed;
use owed::{Owed, OwedKey};
mod reach;
mod start;
pub use catalogue::ChannelPublishers;
pub use reach::ReachTree;

/// Maps and sets keyed by database ids (never by names a user chose): a fast hash is safe.
type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;
type IdSet<K> = rustc_hash::FxHashSet<K>;

/// One thing that changed in the graph, with its state now (`None`/`false`: gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// A user's account: enabled or not, `None` when deleted.
    User(UserId, Option<bool>),
    /// An authkey as it is now, `None` when deleted.
    Key(AuthkeyId, Option<KeyRecord>),
    /// A share as it is now, `None` when deleted.
    Share(ShareId, Option<Share>),
    /// Whether `user` is an active member of `group` now.
    Member {
        /// The group.
        group: GroupId,
        /// The user.
        user: UserId,
        /// Active now (invited or gone: false).
        active: bool,
    },
    /// Whether `user` takes up the public offer `share` now.
    Follow {
        /// The public offer.
        share: ShareId,
        /// The user.
        user: UserId,
        /// Taken up now.
        on: bool,
    },
    /// Whether `blocker` blocks `blocked` now.
    Block {
        /// Who blocks.
        blocker: UserId,
        /// Who is blocked.
        blocked: UserId,
        /// Blocked now.
        on: bool,
    },
}

/// Each user's receptions on one channel.
type Receptions = IdMap<UserId, Vec<Taken>>;

/// Each group's live shares on one channel.
type GroupReceptions = Vec<(GroupId, Vec<Taken>)>;

/// What a batch of deltas may have moved on one channel: users' receptions, and groups'
/// live shares.
#[derive(Debug, Default)]
struct Seeds {
    users: IdSet<UserId>,
    groups: IdSet<GroupId>,
    /// Seeds whose blocks changed, with whom they blocked or unblocked: what they inherit
    /// is filtered anew (their receptions before cannot be read back: blocks filter them).
    blockers: IdMap<UserId, Vec<UserId>>,
    /// What a user whose groups or blocks change took before the first such change (read
    /// through memberships and blocks, which change before settling).
    before: IdMap<UserId, Vec<Taken>>,
}

/// One channel's shares, indexed by grantee, and what each user takes and passes on there.
#[derive(Debug, Default)]
struct ChannelState {
    to_user: IdMap<UserId, Vec<ShareId>>,
    to_group: IdMap<GroupId, Vec<ShareId>>,
    everyone: Vec<ShareId>,
    /// Per receiving user, the shares to them and the public offers they took up that carry
    /// data to them (by id). Group shares are not copied to every member: see `group_in`.
    incoming: IdMap<UserId, Vec<Taken>>,
    /// Per group, its live shares (accepted, from an enabled sharer), by id; each active
    /// member takes those from users it did not block.
    group_in: IdMap<GroupId, Vec<Taken>>,
    /// Redistribute shares taken, sharer → receivers (with multiplicity): the edges along
    /// which a change of what the sharer receives travels on.
    out: IdMap<UserId, IdMap<UserId, u32>>,
    /// The same for group shares: sharer → groups (their members receive).
    out_groups: IdMap<UserId, IdMap<GroupId, u32>>,
    /// What reaches X through onward redistribution, beyond X and `forward(X)`'s base (the
    /// users whose shares to X allow onward travel, read from the receptions), sorted; only
    /// receivers downstream of an onward redistribute share hold an entry.
    forward: IdMap<UserId, Vec<UserId>>,
}

/// A share as a receiver takes it: what `forward` and `sources` read, kept with the
/// reception so that undoing it needs nothing of the share as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Taken {
    id: ShareId,
    from: UserId,
    redistribute: bool,
    onward: bool,
}

impl Taken {
    /// Whether the sharer is in the base of `x`, the receiver: its data may travel on.
    fn in_base_of(&self, x: UserId) -> bool {
        self.onward && self.from != x
    }

    /// Whether `x` inherits the sharer's `forwards` through it: onward and redistributing.
    fn feeds_forward_of(&self, x: UserId) -> bool {
        self.in_base_of(x) && self.redistribute
    }
}

fn taken(s: &Share) -> Taken {
    Taken {
        id: s.id,
        from: s.from,
        redistribute: s.kind == ShareKind::Redistribute,
        onward: s.onward,
    }
}

fn remove_id<T: PartialEq>(list: &mut Vec<T>, x: &T) {
    if let Some(i) = list.iter().position(|y| y == x) {
        list.swap_remove(i);
    }
}

/// The derived key table changed (it is already what sessions authenticate against): the
/// broker brings the live sessions of exactly these keys in line with it — cuts lost
/// channels, re-routes changed sources, closes revoked keys. Sent to a `Recipient` by
/// whoever keeps the table live, so that neither side names the other.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct AclChanged {
    /// The new table.
    pub table: Arc<KeyTable>,
    /// The keys whose ACL differs from the previous table (added, changed or gone).
    pub idents: Vec<Ident>,
}

/// A key whose ACL changed: its ident and its ACL now (`None`: it can no longer be used).
pub type KeyChange = (Ident, Option<Arc<KeyAcl>>);

/// See the module doc.
#[derive(Debug)]
pub struct LiveGraph {
    mode: Mode,
    users: IdMap<UserId, bool>,
    members: IdMap<GroupId, IdSet<UserId>>,
    groups_of: IdMap<UserId, IdSet<GroupId>>,
    shares: IdMap<ShareId, Share>,
    shares_from: IdMap<UserId, IdSet<ShareId>>,
    group_shares: IdMap<GroupId, IdSet<ShareId>>,
    followers: IdMap<ShareId, IdSet<UserId>>,
    follows_of: IdMap<UserId, IdSet<ShareId>>,
    blocks: IdSet<(UserId, UserId)>,
    channels: HashMap<Channel, ChannelState>,
    keys: IdMap<AuthkeyId, KeyRecord>,
    keys_of: IdMap<UserId, IdSet<AuthkeyId>>,
    /// Who publishes where (the catalogue's index).
    publishing: catalogue::Publishing,
    table: KeyTable,
    /// Keys of absorbed changes not derived yet.
    owed: Owed,
}

impl LiveGraph {
    /// The table sessions authenticate against (cheap to clone: a persistent map).
    pub fn table(&self) -> &KeyTable {
        &self.table
    }

    /// How receivers are chosen.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many shares are held (any state).
    pub fn share_count(&self) -> usize {
        self.shares.len()
    }

    /// Applies `deltas` and re-derives only what they can change; returns the keys whose
    /// ACL is now different (sorted by ident), which are already in [`Self::table`]. What
    /// earlier changes left owed (see [`Self::absorb`]) stays owed.
    pub fn apply(&mut self, deltas: impl IntoIterator<Item = Delta>) -> Vec<KeyChange> {
        let mut owed = self.moved_by(deltas);
        self.derive(&mut owed, None)
    }

    /// Updates the graph for `deltas`: the keys they may move, not derived yet.
    fn moved_by(&mut self, deltas: impl IntoIterator<Item = Delta>) -> Owed {
        let mut seeds: HashMap<Channel, Seeds> = Default::default();
        let mut keys: IdSet<AuthkeyId> = Default::default();
        let mut gone: Vec<Ident> = Vec::new();
        // Who joined or left each group in this batch: where a group's shares move, they are
        // re-taken too (settling takes in only the members left at the end, and a share of
        // the group removed earlier in the batch no longer leads the leaver's delta to it).
        let mut moved: IdMap<GroupId, IdSet<UserId>> = Default::default();
        for d in deltas {
            if let Delta::Member { group, user, .. } = &d {
                moved.entry(*group).or_default().insert(*user);
            }
            self.take(d, &mut seeds, &mut keys, &mut gone);
        }
        for s in seeds.values_mut() {
            for g in &s.groups {
                s.users.extend(moved.get(g).into_iter().flatten().copied());
            }
        }
        // Per user, the channels whose sources may have moved: a key that changed only
        // there keeps the rest of its ACL (a big change re-reads one channel per key, not
        // every channel the key subscribes).
        let mut users: IdMap<UserId, Vec<Channel>> = Default::default();
        for (c, s) in seeds {
            let affected = self.settle(&c, s);
            for u in affected.into_iter().filter(|u| self.keys_of.contains_key(u)) {
                users.entry(u).or_default().push(c.clone());
            }
        }
        let mut queue: Vec<OwedKey> = keys
            .iter()
            .filter_map(|id| self.keys.get(id))
            .map(|k| (k.owner, k.id, None))
            .collect();
        for (u, channels) in users {
            let channels: Arc<[Channel]> = channels.into();
            for id in self.keys_of.get(&u).into_iter().flatten() {
                if !keys.contains(id) {
                    queue.push((u, *id, Some(Arc::clone(&channels))));
                }
            }
        }
        // In owner order, so that an owner's keys share what they read (see `Memo`).
        queue.sort_unstable_by_key(|(owner, id, _)| (*owner, *id));
        Owed { gone, queue, next: 0 }
    }

    /// Updates the indexes for one delta and notes which (channel, user) receptions and
    /// which keys it may change.
    fn take(
        &mut self,
        d: Delta,
        seeds: &mut HashMap<Channel, Seeds>,
        keys: &mut IdSet<AuthkeyId>,
        gone: &mut Vec<Ident>,
    ) {
        match d {
            Delta::Share(id, new) => {
                if let Some(old) = self.unindex(id) {
                    self.seed_share(&old, seeds);
                }
                if let Some(s) = new {
                    self.index(s);
                    if let Some(s) = self.shares.get(&id) {
                        self.seed_share(s, seeds);
                    }
                }
            }
            Delta::User(u, enabled) => {
                match enabled {
                    Some(e) => self.users.insert(u, e),
                    None => self.users.remove(&u),
                };
                self.seed_shares_from(u, seeds);
                keys.extend(self.keys_of.get(&u).into_iter().flatten().copied());
            }
            Delta::Key(id, new) => {
                if let Some(old) = self.keys.remove(&id) {
                    catalogue::note(&mut self.publishing, &old, false);
                    if let Some(ks) = self.keys_of.get_mut(&old.owner) {
                        ks.remove(&id);
                        if ks.is_empty() {
                            self.keys_of.remove(&old.owner);
                        }
                    }
                    if new.as_ref().is_none_or(|n| n.ident != old.ident) {
                        gone.push(old.ident);
                    }
                }
                if let Some(k) = new {
                    gone.retain(|i| *i != k.ident);
                    catalogue::note(&mut self.publishing, &k, true);
                    self.keys_of.entry(k.owner).or_default().insert(id);
                    self.keys.insert(id, k);
                    keys.insert(id);
                }
            }
            Delta::Member { group, user, active } => {
                for s in self.group_shares.get(&group).into_iter().flatten() {
                    if let Some(s) = self.shares.get(s) {
                        self.note_before(seeds, &s.channel, user);
                    }
                }
                if active {
                    self.members.entry(group).or_default().insert(user);
                    self.groups_of.entry(user).or_default().insert(group);
                } else {
                    if let Some(m) = self.members.get_mut(&group) {
                        m.remove(&user);
                    }
                    if let Some(gs) = self.groups_of.get_mut(&user) {
                        gs.remove(&group);
                    }
                }
                for s in self.group_shares.get(&group).into_iter().flatten() {
                    if let Some(s) = self.shares.get(s) {
                        seeds.entry(s.channel.clone()).or_default().users.insert(user);
                    }
                }
            }
            Delta::Follow { share, user, on } => {
                if on {
                    self.followers.entry(share).or_default().insert(user);
                    self.follows_of.entry(user).or_default().insert(share);
                } else {
                    if let Some(f) = self.followers.get_mut(&share) {
                        f.remove(&user);
                    }
                    if let Some(f) = self.follows_of.get_mut(&user) {
                        f.remove(&share);
                    }
                }
                if let Some(s) = self.shares.get(&share) {
                    seeds.entry(s.channel.clone()).or_default().users.insert(user);
                }
            }
            Delta::Block { blocker, blocked, on } => {
                // The blocked user's data travels only on channels it shares: the blocker's
                // receptions there may change (a block cuts them, an unblock restores them).
                for s in self.shares_from.get(&blocked).into_iter().flatten() {
                    if let Some(s) = self.shares.get(s) {
                        self.note_before(seeds, &s.channel, blocker);
                        let e = seeds.entry(s.channel.clone()).or_default();
                        e.users.insert(blocker);
                        e.blockers.entry(blocker).or_default().push(blocked);
                    }
                }
                if on {
                    self.blocks.insert((blocker, blocked));
                } else {
                    self.blocks.remove(&(blocker, blocked));
                }
            }
        }
    }

    /// Records what `u` takes on `c` now, before a change of its groups or blocks (the
    /// first record of a batch stands).
    fn note_before(&self, seeds: &mut HashMap<Channel, Seeds>, c: &Channel, u: UserId) {
        let Some(state) = self.channels.get(c) else {
            return;
        };
        let ctx = self.ctx();
        let e = seeds.entry(c.clone()).or_default();
        e.before
            .entry(u)
            .or_insert_with(|| ctx.taken_by(state, u).copied().collect());
    }

    fn seed_shares_from(&self, u: UserId, seeds: &mut HashMap<Channel, Seeds>) {
        for s in self.shares_from.get(&u).into_iter().flatten() {
            if let Some(s) = self.shares.get(s) {
                self.seed_share(s, seeds);
            }
        }
    }

    /// A share changed: its grantees' receptions may move. For a group share only the
    /// group's live shares are re-read; when they differ, settling takes in every member.
    fn seed_share(&self, s: &Share, seeds: &mut HashMap<Channel, Seeds>) {
        let e = seeds.entry(s.channel.clone()).or_default();
        match s.to {
            Grantee::Group(g) => {
                e.groups.insert(g);
            }
            _ => e.users.extend(self.grantees(s)),
        }
    }

    fn index(&mut self, s: Share) {
        let c = self.channels.entry(s.channel.clone()).or_default();
        match s.to {
            Grantee::User(u) => c.to_user.entry(u).or_default().push(s.id),
            Grantee::Group(g) => {
                c.to_group.entry(g).or_default().push(s.id);
                self.group_shares.entry(g).or_default().insert(s.id);
            }
            Grantee::Everyone => c.everyone.push(s.id),
        }
        self.shares_from.entry(s.from).or_default().insert(s.id);
        self.shares.insert(s.id, s);
    }

    fn unindex(&mut self, id: ShareId) -> Option<Share> {
        let s = self.shares.remove(&id)?;
        if let Some(c) = self.channels.get_mut(&s.channel) {
            match s.to {
                Grantee::User(u) => {
                    if let Some(l) = c.to_user.get_mut(&u) {
                        remove_id(l, &id);
                    }
                }
                Grantee::Group(g) => {
                    if let Some(l) = c.to_group.get_mut(&g) {
                        remove_id(l, &id);
                    }
                    if let Some(l) = self.group_shares.get_mut(&g) {
                        l.remove(&id);
                    }
                }
                Grantee::Everyone => remove_id(&mut c.everyone, &id),
            }
        }
        if let Some(l) = self.shares_from.get_mut(&s.from) {
            l.remove(&id);
        }
        Some(s)
    }

    /// Everyone a share could reach (whether it does is [`Self::reaches`]).
    fn grantees(&self, s: &Share) -> Vec<UserId> {
        match s.to {
            Grantee::User(u) => vec![u],
            Grantee::Group(g) => self.members.get(&g).into_iter().flatten().copied().collect(),
            Grantee::Everyone => self.followers.get(&s.id).into_iter().flatten().copied().collect(),
        }
    }

    fn enabled(&self, u: UserId) -> bool {
        self.users.get(&u).copied().unwrap_or(false)
    }

    fn blocked(&self, blocker: UserId, blocked: UserId) -> bool {
        self.blocks.contains(&(blocker, blocked))
    }

    /// [`Graph::reaches`] over the indexes.
    fn reaches(&self, s: &Share, u: UserId) -> bool {
        s.state == ShareState::Accepted
            && self.enabled(s.from)
            && !self.blocked(u, s.from)
            && match s.to {
                Grantee::User(v) => v == u,
                Grantee::Group(g) => self.members.get(&g).is_some_and(|m| m.contains(&u)),
                Grantee::Everyone => self.followers.get(&s.id).is_some_and(|f| f.contains(&u)),
            }
    }

    /// What settling a channel reads of the rest of the graph.
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            blocks: &self.blocks,
            members: &self.members,
            groups_of: &self.groups_of,
        }
    }

    /// The live shares of `state` to group `g`, by id (members' blocks apply on reading).
    fn group_taken(&self, state: &ChannelState, g: GroupId) -> Vec<Taken> {
        let mut out: Vec<Taken> = state
            .to_group
            .get(&g)
            .into_iter()
            .flatten()
            .filter_map(|id| self.shares.get(id))
            .filter(|s| s.state == ShareState::Accepted && self.enabled(s.from))
            .map(taken)
            .collect();
        out.sort_unstable();
        out
    }

    /// The shares to `u` and the public offers `u` took up that carry data to `u` now, by
    /// id (its groups' shares are in `group_in`).
    fn taken_in(&self, state: &ChannelState, c: &Channel, u: UserId) -> Vec<Taken> {
        let mut out: Vec<ShareId> = state.to_user.get(&u).cloned().unwrap_or_default();
        for s in self.follows_of.get(&u).into_iter().flatten() {
            if self
                .shares
                .get(s)
                .is_some_and(|s| s.channel == *c && s.to == Grantee::Everyone)
            {
                out.push(*s);
            }
        }
        out.sort_unstable();
        out.dedup();
        out.iter()
            .filter_map(|id| self.shares.get(id))
            .filter(|s| self.reaches(s, u))
            .map(taken)
            .collect()
    }

    /// Re-takes the shares of `c` for `seeds`, then brings `forward` in line downstream of
    /// them, fact by fact. Returns the users whose sources may have moved.
    fn settle(&mut self, c: &Channel, seeds: Seeds) -> IdSet<UserId> {
        let Seeds {
            users: seeds,
            groups,
            blockers,
            before,
        } = seeds;
        let Some(mut state) = self.channels.remove(c) else {
            return seeds;
        };
        let retaken: Vec<(UserId, Vec<Taken>)> =
            seeds.iter().map(|u| (*u, self.taken_in(&state, c, *u))).collect();
        let regrouped: Vec<(GroupId, Vec<Taken>)> = groups
            .into_iter()
            .map(|g| (g, self.group_taken(&state, g)))
            .collect();
        let changed = Changed { blockers, before };
        let down = resettle(&mut state, &self.ctx(), seeds, changed, retaken, regrouped);
        self.channels.insert(c.clone(), state);
        down
    }
}

/// What a channel's settling reads besides the channel itself.
struct Ctx<'a> {
    blocks: &'a IdSet<(UserId, UserId)>,
    members: &'a IdMap<GroupId, IdSet<UserId>>,
    groups_of: &'a IdMap<UserId, IdSet<GroupId>>,
}

impl Ctx<'_> {
    /// Everything `u` takes on the channel: its own receptions and its groups' shares from
    /// users it did not block.
    fn taken_by<'s>(&'s self, state: &'s ChannelState, u: UserId) -> impl Iterator<Item = &'s Taken> + 's {
        let groups = self.groups_of.get(&u).into_iter().flatten();
        let via_groups = groups
            .filter_map(|g| state.group_in.get(g))
            .flatten()
            .filter(move |t| !self.blocks.contains(&(u, t.from)));
        state.incoming.get(&u).into_iter().flatten().chain(via_groups)
    }

    /// The base of `forward(y)`: the users whose shares to `y` allow onward travel.
    fn base<'s>(&'s self, state: &'s ChannelState, y: UserId) -> impl Iterator<Item = UserId> + 's {
        self.taken_by(state, y)
            .filter(move |t| t.in_base_of(y))
            .map(|t| t.from)
    }

    /// `forward(y) − {y}`: the base and what reaches `y` through onward redistribution.
    fn forwards<'s>(&'s self, state: &'s ChannelState, y: UserId) -> impl Iterator<Item = UserId> + 's {
        self.base(state, y)
            .chain(state.forward.get(&y).into_iter().flatten().copied())
    }

    /// Who receives from `x` through its redistribute shares (a superset: members who
    /// blocked `x` are in it).
    fn downstream<'s>(&'s self, state: &'s ChannelState, x: UserId) -> impl Iterator<Item = UserId> + 's {
        let direct = state.out.get(&x).into_iter().flat_map(|rs| rs.keys().copied());
        let groups = state
            .out_groups
            .get(&x)
            .into_iter()
            .flat_map(|gs| gs.keys())
            .filter_map(|g| self.members.get(g))
            .flatten()
            .copied();
        direct.chain(groups)
    }
}

fn count_out<K: std::hash::Hash + Eq + Copy>(
    out: &mut IdMap<UserId, IdMap<K, u32>>,
    from: UserId,
    to: K,
    up: bool,
) {
    if up {
        *out.entry(from).or_default().entry(to).or_default() += 1;
    } else if let Some(rs) = out.get_mut(&from)
        && let Some(n) = rs.get_mut(&to)
    {
        *n -= 1;
        if *n == 0 {
            rs.remove(&to);
            if rs.is_empty() {
                out.remove(&from);
            }
        }
    }
}

/// What settling needs to know of a batch beyond its seeds.
#[derive(Debug, Default)]
struct Changed {
    /// See [`Seeds::blockers`].
    blockers: IdMap<UserId, Vec<UserId>>,
    /// See [`Seeds::before`].
    before: IdMap<UserId, Vec<Taken>>,
}

/// Installs `retaken` (each seed's receptions now) in `state`, then brings `forward` in
/// line ([`forward::refix`]). Returns the
/// users whose sources may have moved: those whose `forwards` moved and the users they
/// redistribute to.
fn resettle(
    state: &mut ChannelState,
    ctx: &Ctx<'_>,
    seeds: IdSet<UserId>,
    changed: Changed,
    retaken: Vec<(UserId, Vec<Taken>)>,
    regrouped: Vec<(GroupId, Vec<Taken>)>,
) -> IdSet<UserId> {
    let mut seeds = seeds;
    let Changed { blockers, mut before } = changed;
    // What each possible seed took before: the edges a change removes are read from it. On
    // a channel where nobody took anything (settled for the first time, at start) there is
    // nothing to read (a map of every receiver's nothing).
    let members = regrouped.iter().filter_map(|(g, _)| ctx.members.get(g)).flatten();
    if !state.incoming.is_empty() || !state.group_in.is_empty() {
        for &x in seeds.iter().chain(members) {
            before
                .entry(x)
                .or_insert_with(|| ctx.taken_by(state, x).copied().collect());
        }
    }
    for (u, new) in retaken {
        let old = if new.is_empty() {
            state.incoming.remove(&u)
        } else {
            state.incoming.insert(u, new.clone())
        };
        for t in old.iter().flatten().filter(|t| t.redistribute) {
            count_out(&mut state.out, t.from, u, false);
        }
        for t in new.iter().filter(|t| t.redistribute) {
            count_out(&mut state.out, t.from, u, true);
        }
    }
    for (g, new) in regrouped {
        let old = if new.is_empty() {
            state.group_in.remove(&g)
        } else {
            state.group_in.insert(g, new.clone())
        };
        if old.as_ref().map_or(!new.is_empty(), |o| *o != new) {
            seeds.extend(ctx.members.get(&g).into_iter().flatten().copied());
        }
        for t in old.iter().flatten().filter(|t| t.redistribute) {
            count_out(&mut state.out_groups, t.from, g, false);
        }
        for t in new.iter().filter(|t| t.redistribute) {
            count_out(&mut state.out_groups, t.from, g, true);
        }
    }
    let moved = forward::refix(state, ctx, &seeds, &blockers, &before);
    // `sources(r)` reads r's receptions and, through each redistribute share r takes,
    // the sharer's `forwards`: only those can have moved.
    let mut affected: IdSet<UserId> = moved.clone();
    for x in &moved {
        affected.extend(ctx.downstream(state, *x));
    }
    affected
}

#[cfg(test)]
mod tests;
