//! Each authkey's effective ACL, derived as a pure function of the social [`Graph`].
//!
//! The broker never asks the database: it holds an immutable [`KeyTable`] snapshot, and a
//! session checks a publish or subscribe against its key's `Arc<KeyAcl>`. The rule is
//! ARCHITECTURE.md's:
//!
//! ```text
//! sources(R, c) = {R} ∪ {P : P shares c with R, a group R is in, or everyone; accepted}
//!               ∪ ⋃ sources(X, c) for each X that shares c with R that way as `redistribute`
//! deliver(c, published by a key of P, to key k) = k enabled, owner(k) enabled,
//!                                                 k subscribes c, P ∈ sources(owner(k), c)
//! ```
//!
//! Unfolded, `sources(R, c)` is every user reachable from R over redistribute edges (R
//! included) plus everyone who shares `c` directly with one of them, so a breadth-first
//! search with a visited set computes the fixpoint and terminates on cycles.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::model::{Graph, Share, ShareKind};
use super::{AuthkeyId, UserId};
use crate::wire::{Channel, Ident, Secret};

/// Whose messages a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Every publisher on the channel (open mode).
    Everyone,
    /// Only messages published by keys of these users.
    Users(BTreeSet<UserId>),
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
    pub publish: HashSet<Channel>,
    /// Channels it may subscribe to, each with whose messages it receives there.
    pub subscribe: HashMap<Channel, Sources>,
}

impl KeyAcl {
    /// Whether the key may publish on `channel`.
    pub fn may_publish(&self, channel: &str) -> bool {
        self.publish.contains(channel)
    }

    /// Whose messages the key receives on `channel`; `None` when it may not subscribe.
    pub fn sources(&self, channel: &str) -> Option<&Sources> {
        self.subscribe.get(channel)
    }
}

/// Every usable key by ident: the immutable snapshot sessions authenticate against.
pub type KeyTable = HashMap<Ident, Arc<KeyAcl>>;

/// An authkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Database id.
    pub id: AuthkeyId,
    /// Public name.
    pub ident: Ident,
    /// Shared secret.
    pub secret: Secret,
    /// Owning user.
    pub owner: UserId,
    /// Whether the key itself is enabled.
    pub enabled: bool,
    /// Channels listed for publish.
    pub publish: Vec<Channel>,
    /// Channels listed for subscribe.
    pub subscribe: Vec<Channel>,
}

/// How receivers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// hpfriends: delivery follows the share graph.
    #[default]
    Social,
    /// Plain hpfeeds: a key receives every publisher on the channels it lists.
    Open,
}

/// The accepted shares of each channel, so a search scans only its channel's edges.
struct ShareIndex<'g> {
    by_channel: HashMap<&'g str, Vec<&'g Share>>,
}

impl<'g> ShareIndex<'g> {
    fn new(graph: &'g Graph) -> Self {
        let mut by_channel: HashMap<&str, Vec<&Share>> = HashMap::new();
        for s in &graph.shares {
            if s.state == super::model::ShareState::Accepted && graph.enabled(s.from) {
                by_channel.entry(s.channel.as_str()).or_default().push(s);
            }
        }
        Self { by_channel }
    }
}

/// `sources(user, channel)`: the fixpoint, by breadth-first search over redistribute edges.
pub fn sources(graph: &Graph, user: UserId, channel: &str) -> BTreeSet<UserId> {
    sources_indexed(graph, &ShareIndex::new(graph), user, channel)
}

fn sources_indexed(graph: &Graph, index: &ShareIndex<'_>, user: UserId, channel: &str) -> BTreeSet<UserId> {
    let mut result = BTreeSet::from([user]);
    let Some(shares) = index.by_channel.get(channel) else {
        return result;
    };
    let mut reached = HashSet::from([user]);
    let mut queue = VecDeque::from([user]);
    while let Some(y) = queue.pop_front() {
        for s in shares.iter().filter(|s| graph.reaches(s, y)) {
            result.insert(s.from);
            if s.kind == ShareKind::Redistribute && reached.insert(s.from) {
                queue.push_back(s.from);
            }
        }
    }
    result
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
        share: super::ShareId,
        /// Who that share is offered to.
        to: super::model::Grantee,
        /// Subscriber first, then each redistributor on the way.
        chain: Vec<UserId>,
    },
}

/// Every source of `user` on `channel` with the (shortest) reason it is one; the same set
/// as [`sources`].
pub fn explain(graph: &Graph, user: UserId, channel: &str) -> Vec<(UserId, Why)> {
    let index = ShareIndex::new(graph);
    let mut out = vec![(user, Why::Own)];
    let Some(shares) = index.by_channel.get(channel) else {
        return out;
    };
    let mut chains: HashMap<UserId, Vec<UserId>> = HashMap::from([(user, vec![user])]);
    let mut queue = VecDeque::from([user]);
    while let Some(y) = queue.pop_front() {
        let chain = chains[&y].clone();
        for s in shares.iter().filter(|s| graph.reaches(s, y)) {
            if !out.iter().any(|(u, _)| *u == s.from) {
                out.push((
                    s.from,
                    Why::Share {
                        share: s.id,
                        to: s.to,
                        chain: chain.clone(),
                    },
                ));
            }
            if s.kind == ShareKind::Redistribute && !chains.contains_key(&s.from) {
                let mut next = chain.clone();
                next.push(s.from);
                chains.insert(s.from, next);
                queue.push_back(s.from);
            }
        }
    }
    out
}

/// Derives the key table: disabled keys and keys of disabled users are left out, so they
/// can neither authenticate nor keep a session.
pub fn derive(graph: &Graph, mode: Mode) -> KeyTable {
    let index = ShareIndex::new(graph);
    let mut memo: HashMap<(UserId, &str), BTreeSet<UserId>> = HashMap::new();
    graph
        .keys
        .iter()
        .filter(|k| k.enabled && graph.enabled(k.owner))
        .map(|k| {
            let subscribe = k
                .subscribe
                .iter()
                .map(|c| {
                    let s = match mode {
                        Mode::Open => Sources::Everyone,
                        Mode::Social => Sources::Users(
                            memo.entry((k.owner, c.as_str()))
                                .or_insert_with(|| sources_indexed(graph, &index, k.owner, c.as_str()))
                                .clone(),
                        ),
                    };
                    (c.clone(), s)
                })
                .collect();
            let acl = KeyAcl {
                id: k.id,
                ident: k.ident.clone(),
                secret: k.secret.clone(),
                owner: k.owner,
                publish: k.publish.iter().cloned().collect(),
                subscribe,
            };
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
    use crate::social::model::{Grantee, Share, ShareState};
    use crate::social::{GroupId, ShareId};
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
        }
    }

    fn graph(shares: Vec<Share>) -> Graph {
        Graph {
            users: [A, B, C, D, E].into_iter().map(|u| (u, true)).collect(),
            groups: HashMap::new(),
            shares,
            keys: vec![],
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
    fn own_does_not_pass_on_but_redistribute_does() {
        // A → B (own), B → C: C gets A's data only if B redistributes.
        let mut g = graph(vec![
            share(1, A, Grantee::User(B), Own, Accepted),
            share(2, B, Grantee::User(C), Own, Accepted),
        ]);
        assert_eq!(sources(&g, C, "c"), set(&[B, C]));
        g.shares[1].kind = Redistribute;
        assert_eq!(sources(&g, C, "c"), set(&[A, B, C]));
    }

    #[test]
    fn explain_names_the_chain() {
        let g = graph(vec![
            share(1, A, Grantee::User(B), Own, Accepted),
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
            share(1, A, Grantee::User(B), Redistribute, Accepted),
            share(2, B, Grantee::User(C), Redistribute, Accepted),
            share(3, C, Grantee::User(A), Redistribute, Accepted),
            share(4, D, Grantee::User(C), Own, Accepted),
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
    fn shares_to_everyone_reach_every_user() {
        let g = graph(vec![share(1, A, Grantee::Everyone, Own, Accepted)]);
        for u in [B, C, D, E] {
            assert!(sources(&g, u, "c").contains(&A));
        }
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
            Some(&Sources::Users(set(&[A])))
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

    /// The definition, applied literally until nothing changes.
    fn naive(g: &Graph, channel: &str) -> HashMap<UserId, BTreeSet<UserId>> {
        let users: Vec<UserId> = g.users.keys().copied().collect();
        let on_c: Vec<&Share> = g
            .shares
            .iter()
            .filter(|s| s.channel.as_str() == channel)
            .collect();
        let mut s: HashMap<UserId, BTreeSet<UserId>> = users
            .iter()
            .map(|&r| {
                let mut set = BTreeSet::from([r]);
                set.extend(on_c.iter().filter(|sh| g.reaches(sh, r)).map(|sh| sh.from));
                (r, set)
            })
            .collect();
        loop {
            let mut grew = false;
            for &r in &users {
                for sh in on_c
                    .iter()
                    .filter(|sh| g.reaches(sh, r) && sh.kind == Redistribute)
                {
                    let add: Vec<UserId> = s[&sh.from].iter().copied().collect();
                    let target = s.get_mut(&r).unwrap();
                    for x in add {
                        grew |= target.insert(x);
                    }
                }
            }
            if !grew {
                return s;
            }
        }
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
        );
        (
            proptest::collection::vec(any::<bool>(), 7),
            proptest::collection::vec(proptest::collection::hash_set(users, 0..4), 2),
            proptest::collection::vec(share, 0..14),
        )
            .prop_map(|(enabled, groups, shares)| Graph {
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
                    .map(|((from, to, kind, state, c), i)| Share {
                        id: ShareId(i),
                        from: UserId(from),
                        channel: ch(c),
                        to,
                        kind,
                        state,
                    })
                    .collect(),
                keys: (1..=6).map(|u| key(u, UserId(u), &["c", "d"])).collect(),
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
                        prop_assert_eq!(got, Some(Some(Sources::Users(reference[&k.owner].clone()))));
                    } else {
                        prop_assert_eq!(got, None);
                    }
                }
            }
        }
    }
}
