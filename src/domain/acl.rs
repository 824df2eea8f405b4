//! Each authkey's effective ACL, derived as a pure function of the social [`Graph`].
//!
//! The broker never asks the database: it holds an immutable [`KeyTable`] snapshot, and a
//! session checks a publish or subscribe against its key's `Arc<KeyAcl>`. The rule is
//! ARCHITECTURE.md's:
//!
//! ```text
//! taken(R, c)   = shares of c that reach R with R's consent (Graph::reaches): accepted
//!                 invitations, accepted shares to R's active groups, public offers R took
//!                 up; none from a user R blocked
//! forward(X, c) = ({X} ∪ {P : P→X in taken(X, c), onward}
//!                  ∪ ⋃ forward(Y, c) for Y→X in taken(X, c), redistribute and onward) − blocked(X)
//! sources(R, c) = ({R} ∪ {P : P→R in taken(R, c)}
//!                  ∪ ⋃ forward(X, c) for X→R in taken(R, c), redistribute) − blocked(R)
//! deliver(c, published by a key of P, to key k) = k enabled, owner(k) enabled,
//!                                                 k subscribes c, P ∈ sources(owner(k), c)
//! ```
//!
//! So data of P reaches R through redistributing users only if every share on the way but
//! the last allows onward travel, and nobody on the way (R included) blocked P. `forward` is
//! a least fixpoint, computed by iteration, and terminates on cycles.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::{AuthkeyId, UserId};
use crate::domain::model::{Grantee, Graph, Share, ShareKind};
use crate::wire::names::PRESENCE_SUFFIX;
use crate::wire::{Channel, Ident, Secret};

/// Whose messages a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Every publisher on the channel (open mode).
    Everyone,
    /// Only messages published by keys of these users (one set shared by an owner's keys
    /// that list the channel: most owners run several sensors on the same channels).
    Users(Arc<BTreeSet<UserId>>),
}

impl Sources {
    /// Whether a message published by a key of `user` is delivered.
    pub fn admits(&self, user: UserId) -> bool {
        match self {
            Self::Everyone => true,
            Self::Users(u) => u.contains(&user),
        }
    }
}

/// A set of channels on a fast hash: checked on every publish; its members are what a
/// key's owner listed, so a client's lookups cannot grow it.
pub type ChannelSet = HashSet<Channel, rustc_hash::FxBuildHasher>;

/// What one authkey may do on the feed, as the broker checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAcl {
    /// Database id of the key.
    pub id: AuthkeyId,
    /// The key's public name.
    pub ident: Ident,
    /// For the auth hash.
    pub secret: Secret,
    /// The user whose key this is: the source its publishes are tagged with.
    pub owner: UserId,
    /// Channels it may publish on.
    pub publish: ChannelSet,
    /// Channels it may subscribe to, each with whose messages it receives there.
    pub subscribe: HashMap<Channel, Sources>,
}

impl KeyAcl {
    /// The ACL of key `k` (whose owner is enabled), with `sources(c)` read for each channel
    /// it subscribes in social mode: one construction for the reference derivation and the
    /// live graph, which differ only in how they find sources.
    pub fn of<'k>(
        k: &'k KeyRecord,
        mode: Mode,
        mut sources: impl FnMut(&'k Channel) -> Arc<BTreeSet<UserId>>,
    ) -> KeyAcl {
        let subscribe = k
            .subscribe
            .iter()
            .map(|c| {
                let s = match mode {
                    Mode::Open => Sources::Everyone,
                    Mode::Social => Sources::Users(sources(c)),
                };
                (c.clone(), s)
            })
            .collect();
        KeyAcl {
            id: k.id,
            ident: k.ident.clone(),
            secret: k.secret.clone(),
            owner: k.owner,
            publish: k.publish.iter().cloned().collect(),
            subscribe,
        }
    }

    /// Whether the key may publish on `channel` (never on a presence channel: only the
    /// broker speaks there).
    pub fn may_publish(&self, channel: &str) -> bool {
        !channel.ends_with(PRESENCE_SUFFIX) && self.publish.contains(channel)
    }

    /// Whose messages the key receives on `channel`; `None` when it may not subscribe. On
    /// a presence channel `CHAN..broker`, those of `CHAN`: a key hears of the sessions
    /// of exactly the users whose messages (and so whose idents) it receives there.
    pub fn sources(&self, channel: &str) -> Option<&Sources> {
        let base = channel
            .strip_suffix(PRESENCE_SUFFIX)
            .filter(|b| !b.is_empty())
            .unwrap_or(channel);
        self.subscribe.get(base)
    }
}

/// Every usable key by ident: the immutable snapshot sessions authenticate against.
pub type KeyTable = imbl::HashMap<Ident, Arc<KeyAcl>>;

pub use super::model::KeyRecord;

/// How receivers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// hpfriends: delivery follows the share graph.
    #[default]
    Social,
    /// Plain hpfeeds: a key receives every publisher on the channels it lists.
    Open,
}

/// The shares of one channel that each user took up (see [`Graph::reaches`]), and from them
/// what each user may pass on, so that every subscriber's sources are a few set unions.
struct ChannelView<'g> {
    graph: &'g Graph,
    /// Per receiving user, the shares of the channel that carry data to them.
    incoming: HashMap<UserId, Vec<&'g Share>>,
    /// `forward(X)`: whose data X may pass on through its redistribute shares.
    forward: HashMap<UserId, BTreeSet<UserId>>,
}

impl<'g> ChannelView<'g> {
    fn new(graph: &'g Graph, channel: &str) -> Self {
        let mut followers: HashMap<crate::domain::ShareId, Vec<UserId>> = HashMap::new();
        for (share, user) in &graph.follows {
            followers.entry(*share).or_default().push(*user);
        }
        let mut incoming: HashMap<UserId, Vec<&Share>> = HashMap::new();
        for s in graph.shares.iter().filter(|s| s.channel.as_str() == channel) {
            let candidates: Vec<UserId> = match s.to {
                Grantee::User(u) => vec![u],
                Grantee::Group(g) => graph.groups.get(&g).into_iter().flatten().copied().collect(),
                Grantee::Everyone => followers.get(&s.id).cloned().unwrap_or_default(),
            };
            for u in candidates.into_iter().filter(|u| graph.reaches(s, *u)) {
                incoming.entry(u).or_default().push(s);
            }
        }
        let forward = Self::forward(graph, &incoming);
        Self {
            graph,
            incoming,
            forward,
        }
    }

    /// The least fixpoint of
    /// `forward(X) = ({X} ∪ {P : P→X onward} ∪ ⋃ forward(Y) for Y→X redistribute onward) − blocked(X)`.
    fn forward(graph: &Graph, incoming: &HashMap<UserId, Vec<&Share>>) -> HashMap<UserId, BTreeSet<UserId>> {
        let mut fwd: HashMap<UserId, BTreeSet<UserId>> = incoming
            .iter()
            .map(|(x, shares)| {
                let mut set = BTreeSet::from([*x]);
                set.extend(shares.iter().filter(|s| s.onward).map(|s| s.from));
                (*x, set)
            })
            .collect();
        loop {
            let mut grew = false;
            for (x, shares) in incoming {
                let mut add = Vec::new();
                for s in shares
                    .iter()
                    .filter(|s| s.onward && s.kind == ShareKind::Redistribute)
                {
                    match fwd.get(&s.from) {
                        Some(f) => add.extend(f.iter().copied().filter(|q| !graph.blocked(*x, *q))),
                        None => add.push(s.from),
                    }
                }
                if let Some(mine) = fwd.get_mut(x) {
                    for q in add {
                        grew |= mine.insert(q);
                    }
                }
            }
            if !grew {
                return fwd;
            }
        }
    }

    /// What `x` may pass on: itself at least.
    fn forwards(&self, x: UserId) -> BTreeSet<UserId> {
        self.forward
            .get(&x)
            .cloned()
            .unwrap_or_else(|| BTreeSet::from([x]))
    }

    /// `sources(r)`: r, every direct sharer, and what each redistributor to r may pass on,
    /// less the users r blocked.
    fn sources(&self, r: UserId) -> BTreeSet<UserId> {
        let mut out = BTreeSet::from([r]);
        for s in self.incoming.get(&r).into_iter().flatten() {
            out.insert(s.from);
            if s.kind == ShareKind::Redistribute {
                out.extend(self.forwards(s.from));
            }
        }
        out.retain(|q| !self.graph.blocked(r, *q));
        out
    }

    /// The shortest path by which `q`'s data reaches `r` (who must be a source of it): a
    /// breadth-first search back from `r` through users who did not block `q`, over shares
    /// that allow onward travel beyond the last hop.
    fn why(&self, r: UserId, q: UserId) -> Option<Why> {
        if q == r {
            return Some(Why::Own);
        }
        let mut chains: HashMap<UserId, Vec<UserId>> = HashMap::from([(r, vec![r])]);
        let mut queue = VecDeque::from([r]);
        while let Some(y) = queue.pop_front() {
            let chain = chains[&y].clone();
            let last_hop = y == r;
            let shares = self.incoming.get(&y).into_iter().flatten();
            for s in shares.filter(|s| last_hop || s.onward) {
                if s.from == q {
                    return Some(Why::Share {
                        share: s.id,
                        to: s.to,
                        chain,
                    });
                }
            }
            for s in self.incoming.get(&y).into_iter().flatten() {
                let passes = (last_hop || s.onward) && s.kind == ShareKind::Redistribute;
                if passes && !chains.contains_key(&s.from) && !self.graph.blocked(s.from, q) {
                    let mut next = chain.clone();
                    next.push(s.from);
                    chains.insert(s.from, next);
                    queue.push_back(s.from);
                }
            }
        }
        None
    }

    /// Every user who receives something on the channel through a share.
    fn receivers(&self) -> impl Iterator<Item = UserId> + '_ {
        self.incoming.keys().copied()
    }
}

/// `sources(user, channel)`: the fixpoint (ARCHITECTURE.md's rule).
pub fn sources(graph: &Graph, user: UserId, channel: &str) -> BTreeSet<UserId> {
    ChannelView::new(graph, channel).sources(user)
}

/// Why a user is a source of another's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The subscriber's own data.
    Own,
    /// Through `share` (to `to`), which reaches the last user of `chain`; `chain` runs from
    /// the subscriber through each user who redistributes to the one before.
    Share {
        /// The share that admits the source.
        share: crate::domain::ShareId,
        /// Who that share is offered to.
        to: crate::domain::model::Grantee,
        /// Subscriber first, then each redistributor on the way.
        chain: Vec<UserId>,
    },
}

fn hops(w: &Why) -> usize {
    match w {
        Why::Own => 0,
        Why::Share { chain, .. } => chain.len(),
    }
}

/// Every source of `user` on `channel` with the (shortest) reason it is one, nearest first;
/// the same set as [`sources`].
pub fn explain(graph: &Graph, user: UserId, channel: &str) -> Vec<(UserId, Why)> {
    let view = ChannelView::new(graph, channel);
    let mut out: Vec<(UserId, Why)> = view
        .sources(user)
        .into_iter()
        .filter_map(|q| view.why(user, q).map(|w| (q, w)))
        .collect();
    out.sort_by_key(|(q, w)| (hops(w), *q));
    out
}

/// The reach of `publisher`'s data on `channel`: every other user who receives it, each with
/// the path it takes (so a sharer sees where redistribution carries it), nearest first.
pub fn reach(graph: &Graph, publisher: UserId, channel: &str) -> Vec<(UserId, Why)> {
    let view = ChannelView::new(graph, channel);
    let mut out: Vec<(UserId, Why)> = view
        .receivers()
        .filter(|r| *r != publisher && view.sources(*r).contains(&publisher))
        .filter_map(|r| view.why(r, publisher).map(|w| (r, w)))
        .collect();
    out.sort_by_key(|(r, w)| (hops(w), *r));
    out
}

/// Derives the key table: disabled keys and keys of disabled users are left out, so they
/// can neither authenticate nor keep a session.
pub fn derive(graph: &Graph, mode: Mode) -> KeyTable {
    let mut views: HashMap<&str, ChannelView<'_>> = HashMap::new();
    let mut memo: HashMap<(UserId, &str), Arc<BTreeSet<UserId>>> = HashMap::new();
    graph
        .keys
        .iter()
        .filter(|k| k.enabled && graph.enabled(k.owner))
        .map(|k| {
            let acl = KeyAcl::of(k, mode, |c| {
                memo.entry((k.owner, c.as_str()))
                    .or_insert_with(|| {
                        Arc::new(
                            views
                                .entry(c.as_str())
                                .or_insert_with(|| ChannelView::new(graph, c.as_str()))
                                .sources(k.owner),
                        )
                    })
                    .clone()
            });
            (k.ident.clone(), Arc::new(acl))
        })
        .collect()
}

/// The idents whose ACL differs between two tables (added, removed or changed): exactly
/// the keys whose live sessions must hear of a change.
pub fn changed(old: &KeyTable, new: &KeyTable) -> Vec<Ident> {
    let mut out: Vec<Ident> = new
        .iter()
        .filter(|(i, acl)| old.get(*i).is_none_or(|o| o != *acl))
        .map(|(i, _)| i.clone())
        .collect();
    out.extend(old.keys().filter(|i| !new.contains_key(*i)).cloned());
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Grantee, Share, ShareState};
    use crate::domain::{GroupId, ShareId};
    use proptest::prelude::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);
    const D: UserId = UserId(4);
    const E: UserId = UserId(5);

    fn ch(s: &str) -> Channel {
        Channel::new(s).unwrap()
    }

    fn key(id: i64, owner: UserId, channels: &[&str]) -> KeyRecord {
        KeyRecord {
            id: AuthkeyId(id),
            ident: Ident::new(&format!("k{id}")).unwrap(),
            secret: Secret::new("s"),
            owner,
            enabled: true,
            publish: channels.iter().map(|c| ch(c)).collect(),
            subscribe: channels.iter().map(|c| ch(c)).collect(),
        }
    }

    fn share(id: i64, from: UserId, to: Grantee, kind: ShareKind, state: ShareState) -> Share {
        Share {
            id: ShareId(id),
            from,
            channel: ch("c"),
            to,
            kind,
            state,
            onward: false,
        }
    }

    fn onward(mut s: Share) -> Share {
        s.onward = true;
        s
    }

    fn graph(shares: Vec<Share>) -> Graph {
        Graph {
            users: [A, B, C, D, E].into_iter().map(|u| (u, true)).collect(),
            groups: HashMap::new(),
            shares,
            keys: vec![],
            follows: HashSet::new(),
            blocks: HashSet::new(),
        }
    }

    fn set(users: &[UserId]) -> BTreeSet<UserId> {
        users.iter().copied().collect()
    }

    use ShareKind::{Own, Redistribute};
    use ShareState::{Accepted, Declined, Left, Offered, Revoked};

    #[test]
    fn a_share_flows_only_once_accepted() {
        let mut g = graph(vec![share(1, A, Grantee::User(B), Own, Offered)]);
        assert_eq!(sources(&g, B, "c"), set(&[B]));
        g.shares[0].state = Accepted;
        assert_eq!(sources(&g, B, "c"), set(&[A, B]));
        assert_eq!(sources(&g, B, "other"), set(&[B]), "only the shared channel");
        assert_eq!(sources(&g, A, "c"), set(&[A]), "shares are one-way");
    }

    #[test]
    fn own_does_not_pass_on_but_redistribute_does_when_the_sharer_allows() {
        // A → B (own), B → C: C gets A's data only if B redistributes and A let it travel on.
        let mut g = graph(vec![
            share(1, A, Grantee::User(B), Own, Accepted),
            share(2, B, Grantee::User(C), Own, Accepted),
        ]);
        assert_eq!(sources(&g, C, "c"), set(&[B, C]));
        g.shares[1].kind = Redistribute;
        assert_eq!(
            sources(&g, C, "c"),
            set(&[B, C]),
            "A's share does not allow onward"
        );
        g.shares[0].onward = true;
        assert_eq!(sources(&g, C, "c"), set(&[A, B, C]));
    }

    #[test]
    fn onward_must_hold_on_every_share_but_the_last() {
        // A → B → C → D, B and C redistribute: D gets A only if A→B and B→C allow onward.
        let mut g = graph(vec![
            onward(share(1, A, Grantee::User(B), Own, Accepted)),
            share(2, B, Grantee::User(C), Redistribute, Accepted),
            share(3, C, Grantee::User(D), Redistribute, Accepted),
        ]);
        assert_eq!(sources(&g, C, "c"), set(&[A, B, C]));
        assert_eq!(sources(&g, D, "c"), set(&[C, D]), "B→C does not allow onward");
        g.shares[1].onward = true;
        assert_eq!(sources(&g, D, "c"), set(&[A, B, C, D]));
        let r: Vec<UserId> = reach(&g, A, "c").into_iter().map(|(u, _)| u).collect();
        assert_eq!(r, vec![B, C, D], "A sees whom its data reaches, nearest first");
    }

    #[test]
    fn a_user_blocked_reaches_nobody_who_blocked_them_by_any_path() {
        let mut g = graph(vec![
            onward(share(1, A, Grantee::User(B), Own, Accepted)),
            share(2, B, Grantee::User(C), Redistribute, Accepted),
            share(3, A, Grantee::Everyone, Own, Accepted),
            share(4, A, Grantee::User(C), Own, Accepted),
        ]);
        g.follows.insert((ShareId(3), C));
        assert_eq!(sources(&g, C, "c"), set(&[A, B, C]));
        g.blocks.insert((C, A));
        assert_eq!(
            sources(&g, C, "c"),
            set(&[B, C]),
            "not direct, public or redistributed"
        );
        assert!(explain(&g, C, "c").iter().all(|(u, _)| *u != A));
        // An intermediate's block stops what it passes on.
        g.blocks.clear();
        g.blocks.insert((B, A));
        assert_eq!(sources(&g, B, "c"), set(&[B]));
        assert_eq!(
            sources(&g, C, "c"),
            set(&[A, B, C]),
            "C still takes A's own shares"
        );
        g.shares.retain(|s| s.id != ShareId(4) && s.id != ShareId(3));
        assert_eq!(sources(&g, C, "c"), set(&[B, C]));
    }

    #[test]
    fn explain_names_the_chain() {
        let g = graph(vec![
            onward(share(1, A, Grantee::User(B), Own, Accepted)),
            share(2, B, Grantee::User(C), Redistribute, Accepted),
        ]);
        let why = explain(&g, C, "c");
        assert_eq!(why[0], (C, Why::Own));
        assert_eq!(
            why[1],
            (
                B,
                Why::Share {
                    share: ShareId(2),
                    to: Grantee::User(C),
                    chain: vec![C]
                }
            )
        );
        assert_eq!(
            why[2],
            (
                A,
                Why::Share {
                    share: ShareId(1),
                    to: Grantee::User(B),
                    chain: vec![C, B]
                }
            )
        );
    }

    #[test]
    fn redistribute_cycles_terminate() {
        let g = graph(vec![
            onward(share(1, A, Grantee::User(B), Redistribute, Accepted)),
            onward(share(2, B, Grantee::User(C), Redistribute, Accepted)),
            onward(share(3, C, Grantee::User(A), Redistribute, Accepted)),
            onward(share(4, D, Grantee::User(C), Own, Accepted)),
        ]);
        assert_eq!(sources(&g, A, "c"), set(&[A, B, C, D]));
        assert_eq!(sources(&g, B, "c"), set(&[A, B, C, D]));
        assert_eq!(sources(&g, E, "c"), set(&[E]));
    }

    #[test]
    fn group_members_receive_until_they_leave() {
        let mut g = graph(vec![share(1, A, Grantee::Group(GroupId(9)), Own, Accepted)]);
        g.groups.insert(GroupId(9), HashSet::from([B, D]));
        assert_eq!(sources(&g, D, "c"), set(&[A, D]));
        g.groups.get_mut(&GroupId(9)).unwrap().remove(&D);
        assert_eq!(sources(&g, D, "c"), set(&[D]));
        assert_eq!(sources(&g, B, "c"), set(&[A, B]));
    }

    #[test]
    fn public_offers_reach_only_the_users_who_take_them_up() {
        let mut g = graph(vec![share(1, A, Grantee::Everyone, Own, Accepted)]);
        for u in [B, C, D, E] {
            assert_eq!(sources(&g, u, "c"), set(&[u]), "nobody consented yet");
        }
        g.follows.insert((ShareId(1), B));
        assert_eq!(sources(&g, B, "c"), set(&[A, B]));
        assert_eq!(sources(&g, C, "c"), set(&[C]));
    }

    #[test]
    fn revoked_declined_and_left_shares_carry_nothing() {
        for state in [Revoked, Declined, Left, Offered] {
            let g = graph(vec![share(1, A, Grantee::User(B), Redistribute, state)]);
            assert_eq!(sources(&g, B, "c"), set(&[B]), "{state}");
        }
    }

    #[test]
    fn disabled_keys_and_owners_are_left_out_and_disabled_sharers_share_nothing() {
        let mut g = graph(vec![share(1, A, Grantee::User(B), Own, Accepted)]);
        g.keys = vec![key(1, A, &["c"]), key(2, B, &["c"]), key(3, C, &["c"])];
        g.keys[2].enabled = false;
        let t = derive(&g, Mode::Social);
        assert_eq!(t.len(), 2);
        assert!(t["k2"].sources("c").unwrap().admits(A));
        g.users.insert(A, false);
        let t = derive(&g, Mode::Social);
        assert_eq!(t.len(), 1, "A's key is gone");
        assert!(!t["k2"].sources("c").unwrap().admits(A), "and so is A's share");
    }

    #[test]
    fn open_mode_receives_everyone() {
        let mut g = graph(vec![]);
        g.keys = vec![key(1, A, &["c"])];
        assert_eq!(
            derive(&g, Mode::Open)["k1"].sources("c"),
            Some(&Sources::Everyone)
        );
        assert_eq!(
            derive(&g, Mode::Social)["k1"].sources("c"),
            Some(&Sources::Users(Arc::new(set(&[A]))))
        );
    }

    #[test]
    fn changed_names_exactly_the_keys_that_differ() {
        let mut g = graph(vec![]);
        g.keys = vec![key(1, A, &["c"]), key(2, B, &["c"]), key(3, C, &["c"])];
        let before = derive(&g, Mode::Social);
        g.shares.push(share(1, A, Grantee::User(B), Own, Accepted));
        g.keys.retain(|k| k.id != AuthkeyId(3));
        let after = derive(&g, Mode::Social);
        assert_eq!(
            changed(&before, &after),
            vec![Ident::new("k2").unwrap(), Ident::new("k3").unwrap()]
        );
    }

    /// The rule read as paths: Q's data reaches R along shares s1: Q→Y1, …, sk: Y(k-1)→R,
    /// each taken by its receiver, all but the first redistribute, all but the last onward,
    /// and no receiver on the way blocked Q. Simple paths suffice (a cycle can be cut out).
    fn naive(g: &Graph, channel: &str) -> HashMap<UserId, BTreeSet<UserId>> {
        fn walk(
            g: &Graph,
            on_c: &[&Share],
            q: UserId,
            at: UserId,
            first: bool,
            seen: &mut Vec<UserId>,
        ) -> bool {
            // Is there a path from q ending in `at`, with `at` the final receiver if `first`?
            on_c.iter().any(|s| {
                let to_at = g.reaches(s, at) && (first || s.onward) && !g.blocked(at, q);
                if !to_at {
                    return false;
                }
                if s.from == q {
                    return true;
                }
                if s.kind != Redistribute || seen.contains(&s.from) {
                    return false;
                }
                seen.push(s.from);
                let found = walk(g, on_c, q, s.from, false, seen);
                seen.pop();
                found
            })
        }
        let users: Vec<UserId> = g.users.keys().copied().collect();
        let on_c: Vec<&Share> = g
            .shares
            .iter()
            .filter(|s| s.channel.as_str() == channel)
            .collect();
        users
            .iter()
            .map(|&r| {
                let mut set = BTreeSet::from([r]);
                set.extend(
                    users
                        .iter()
                        .copied()
                        .filter(|&q| q != r && walk(g, &on_c, q, r, true, &mut vec![r])),
                );
                (r, set)
            })
            .collect()
    }

    fn arb_graph() -> impl Strategy<Value = Graph> {
        let users = 1..=6i64;
        let share = (
            1..=6i64,
            prop_oneof![
                (1..=6i64).prop_map(|u| Grantee::User(UserId(u))),
                (1..=2i64).prop_map(|g| Grantee::Group(GroupId(g))),
                Just(Grantee::Everyone),
            ],
            prop_oneof![Just(Own), Just(Redistribute)],
            prop_oneof![
                Just(Accepted),
                Just(Accepted),
                Just(Offered),
                Just(Revoked),
                Just(Left)
            ],
            prop_oneof![Just("c"), Just("d")],
            any::<bool>(),
        );
        (
            proptest::collection::vec(any::<bool>(), 7),
            proptest::collection::vec(proptest::collection::hash_set(users, 0..4), 2),
            proptest::collection::vec(share, 0..14),
            proptest::collection::hash_set((1..=14i64, 1..=6i64), 0..12),
            proptest::collection::hash_set((1..=6i64, 1..=6i64), 0..4),
        )
            .prop_map(|(enabled, groups, shares, follows, blocks)| Graph {
                users: (1..=6i64)
                    .zip(&enabled)
                    .map(|(u, e)| (UserId(u), *e || u <= 2))
                    .collect(),
                groups: groups
                    .into_iter()
                    .zip(1i64..)
                    .map(|(m, g)| (GroupId(g), m.into_iter().map(UserId).collect()))
                    .collect(),
                shares: shares
                    .into_iter()
                    .zip(1i64..)
                    .map(|((from, to, kind, state, c, onward), i)| Share {
                        id: ShareId(i),
                        from: UserId(from),
                        channel: ch(c),
                        to,
                        kind,
                        state,
                        onward,
                    })
                    .collect(),
                keys: (1..=6).map(|u| key(u, UserId(u), &["c", "d"])).collect(),
                follows: follows
                    .into_iter()
                    .map(|(s, u)| (ShareId(s), UserId(u)))
                    .collect(),
                blocks: blocks
                    .into_iter()
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| (UserId(a), UserId(b)))
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn derivation_matches_the_naive_fixpoint(g in arb_graph()) {
            let table = derive(&g, Mode::Social);
            for c in ["c", "d"] {
                let reference = naive(&g, c);
                for k in &g.keys {
                    let explained: BTreeSet<UserId> = explain(&g, k.owner, c).into_iter().map(|(u, _)| u).collect();
                    prop_assert_eq!(&explained, &reference[&k.owner]);
                    let got = table.get(&k.ident).map(|acl| acl.sources(c).cloned());
                    if g.enabled(k.owner) {
                        prop_assert_eq!(got, Some(Some(Sources::Users(Arc::new(reference[&k.owner].clone())))));
                    } else {
                        prop_assert_eq!(got, None);
                    }
                    let reached: BTreeSet<UserId> = reach(&g, k.owner, c).into_iter().map(|(u, _)| u).collect();
                    let expected: BTreeSet<UserId> = reference
                        .iter()
                        .filter(|(r, s)| **r != k.owner && s.contains(&k.owner))
                        .map(|(r, _)| *r)
                        .collect();
                    prop_assert_eq!(reached, expected);
                }
            }
        }
    }
}
