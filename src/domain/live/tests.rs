use super::*;
use crate::domain::acl::{changed, derive};
use crate::domain::model::Graph;
use crate::wire::Secret;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn ch(s: &str) -> Channel {
    Channel::new(s).unwrap()
}

fn key(id: i64, enabled: bool, subscribe: &[&str]) -> KeyRecord {
    KeyRecord {
        id: AuthkeyId(id),
        ident: Ident::new(&format!("k{id}")).unwrap(),
        secret: Secret::new("s"),
        owner: UserId(id),
        enabled,
        publish: if subscribe.is_empty() {
            vec![ch("c")]
        } else {
            subscribe.iter().map(|c| ch(c)).collect()
        },
        subscribe: subscribe.iter().map(|c| ch(c)).collect(),
    }
}

/// The same change made to the plain graph `derive` reads.
pub(super) fn apply_to(g: &mut Graph, d: &Delta) {
    match d {
        Delta::User(u, e) => match e {
            Some(e) => {
                g.users.insert(*u, *e);
            }
            None => {
                g.users.remove(u);
            }
        },
        Delta::Key(id, k) => {
            g.keys.retain(|k| k.id != *id);
            g.keys.extend(k.clone());
        }
        Delta::Share(id, s) => {
            g.shares.retain(|s| s.id != *id);
            g.shares.extend(s.clone());
        }
        Delta::Member { group, user, active } => {
            let m = g.groups.entry(*group).or_default();
            if *active {
                m.insert(*user);
            } else {
                m.remove(user);
            }
        }
        Delta::Follow { share, user, on } => {
            if *on {
                g.follows.insert((*share, *user));
            } else {
                g.follows.remove(&(*share, *user));
            }
        }
        Delta::Block { blocker, blocked, on } => {
            if *on {
                g.blocks.insert((*blocker, *blocked));
            } else {
                g.blocks.remove(&(*blocker, *blocked));
            }
        }
    }
}

fn arb_share(id: i64) -> impl Strategy<Value = Share> {
    (
        1..=6i64,
        prop_oneof![
            (1..=6i64).prop_map(|u| Grantee::User(UserId(u))),
            (1..=2i64).prop_map(|g| Grantee::Group(GroupId(g))),
            Just(Grantee::Everyone),
        ],
        prop_oneof![
            Just(ShareKind::Own),
            Just(ShareKind::Redistribute),
            Just(ShareKind::Redistribute)
        ],
        prop_oneof![
            Just(ShareState::Accepted),
            Just(ShareState::Accepted),
            Just(ShareState::Offered),
            Just(ShareState::Revoked),
        ],
        prop_oneof![Just("c"), Just("d")],
        proptest::bool::weighted(0.7),
    )
        .prop_map(move |(from, to, kind, state, c, onward)| Share {
            id: ShareId(id),
            from: UserId(from),
            channel: ch(c),
            to,
            kind,
            state,
            onward,
        })
}

fn arb_delta() -> impl Strategy<Value = Delta> {
    let channels = prop_oneof![Just(vec!["c", "d"]), Just(vec!["c"]), Just(vec![])];
    prop_oneof![
        (1..=6i64, proptest::option::weighted(0.8, any::<bool>()))
            .prop_map(|(u, e)| Delta::User(UserId(u), e)),
        (1..=6i64, any::<bool>(), channels, any::<bool>())
            .prop_map(|(id, en, c, keep)| { Delta::Key(AuthkeyId(id), keep.then(|| key(id, en, &c))) }),
        (1..=14i64).prop_flat_map(|id| proptest::option::weighted(0.85, arb_share(id))
            .prop_map(move |s| Delta::Share(ShareId(id), s))),
        (1..=2i64, 1..=6i64, any::<bool>()).prop_map(|(g, u, active)| Delta::Member {
            group: GroupId(g),
            user: UserId(u),
            active
        }),
        (1..=14i64, 1..=6i64, any::<bool>()).prop_map(|(s, u, on)| Delta::Follow {
            share: ShareId(s),
            user: UserId(u),
            on
        }),
        (1..=6i64, 1..=5i64, any::<bool>()).prop_map(|(a, b, on)| Delta::Block {
            blocker: UserId(a),
            blocked: UserId(if b >= a { b + 1 } else { b }),
            on
        }),
    ]
}

fn start() -> Graph {
    Graph {
        users: (1..=6).map(|u| (UserId(u), true)).collect(),
        keys: (1..=6).map(|u| key(u, true, &["c", "d"])).collect(),
        ..Graph::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn incremental_changes_equal_a_full_derivation_after_every_step(
        first in proptest::collection::vec(arb_delta(), 0..20),
        then in proptest::collection::vec(proptest::collection::vec(arb_delta(), 1..3), 1..25),
    ) {
        let mut shadow = start();
        for d in &first {
            apply_to(&mut shadow, d);
        }
        let mut live = LiveGraph::new(shadow.clone(), Mode::Social);
        prop_assert_eq!(live.table(), &derive(&shadow, Mode::Social));
        for step in then {
            let before = live.table().clone();
            for d in &step {
                apply_to(&mut shadow, d);
            }
            let got = live.apply(step.clone());
            let reference = derive(&shadow, Mode::Social);
            prop_assert_eq!(live.table(), &reference, "after {:?}", step);
            let idents: Vec<Ident> = got.iter().map(|(i, _)| i.clone()).collect();
            prop_assert_eq!(idents, changed(&before, &reference));
            for (i, acl) in got {
                prop_assert_eq!(acl.as_ref(), reference.get(&i));
            }
            same_catalogue(&live, &shadow)?;
        }
    }
}

/// Runs `steps` on `shadow` and `live` as a server whose big changes are derived in
/// slices would: a step marked `true` is absorbed (its keys owed), one marked `false` is
/// applied at once (an operation going live between two slices), and after each step
/// `slices` keys of what is owed are derived. Whenever nothing is owed, and at the end, the
/// table is a full derivation's.
pub(super) fn sliced(
    shadow: &mut Graph,
    live: &mut LiveGraph,
    steps: Vec<(Vec<Delta>, bool, usize)>,
) -> Result<(), TestCaseError> {
    for (step, absorbed, slices) in steps {
        for d in &step {
            apply_to(shadow, d);
        }
        if absorbed {
            live.absorb(step.clone());
        } else {
            live.apply(step.clone());
        }
        for _ in 0..slices {
            // A slice that ends at once derives one key.
            live.derive_owed(Some(std::time::Instant::now()));
        }
        if !live.owing() {
            prop_assert_eq!(live.table(), &derive(shadow, Mode::Social), "after {:?}", step);
        }
    }
    while live.owing() {
        live.derive_owed(Some(std::time::Instant::now()));
    }
    prop_assert_eq!(live.table(), &derive(shadow, Mode::Social));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn changes_absorbed_and_derived_a_key_at_a_time_end_as_a_full_derivation(
        first in proptest::collection::vec(arb_delta(), 0..20),
        steps in proptest::collection::vec(
            (proptest::collection::vec(arb_delta(), 1..3), any::<bool>(), 0usize..4),
            1..25,
        ),
    ) {
        let mut shadow = start();
        for d in &first {
            apply_to(&mut shadow, d);
        }
        let mut live = LiveGraph::new(shadow.clone(), Mode::Social);
        sliced(&mut shadow, &mut live, steps)?;
    }
}

/// `graph` made change by change on an empty live graph: what the start-up path must give.
fn grown(graph: &Graph) -> LiveGraph {
    let mut live = LiveGraph::new(Graph::default(), Mode::Social);
    let mut deltas: Vec<Delta> = graph
        .users
        .iter()
        .map(|(u, e)| Delta::User(*u, Some(*e)))
        .collect();
    for (g, members) in &graph.groups {
        deltas.extend(members.iter().map(|u| Delta::Member {
            group: *g,
            user: *u,
            active: true,
        }));
    }
    deltas.extend(graph.follows.iter().map(|(s, u)| Delta::Follow {
        share: *s,
        user: *u,
        on: true,
    }));
    deltas.extend(graph.blocks.iter().map(|(a, b)| Delta::Block {
        blocker: *a,
        blocked: *b,
        on: true,
    }));
    deltas.extend(graph.shares.iter().map(|s| Delta::Share(s.id, Some(s.clone()))));
    deltas.extend(graph.keys.iter().map(|k| Delta::Key(k.id, Some(k.clone()))));
    // One at a time: each settles what the last left.
    for d in deltas {
        live.apply([d]);
    }
    live
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn a_graph_read_at_start_holds_what_the_changes_that_made_it_hold(
        made in proptest::collection::vec(arb_delta(), 0..40),
    ) {
        let mut shadow = start();
        for d in &made {
            apply_to(&mut shadow, d);
        }
        let read = LiveGraph::new(shadow.clone(), Mode::Social);
        let grown = grown(&shadow);
        prop_assert_eq!(read.table(), grown.table());
        let forward = |live: &LiveGraph| -> BTreeMap<String, BTreeMap<UserId, Vec<UserId>>> {
            live.channels
                .iter()
                .map(|(c, s)| (c.as_str().to_owned(), s.forward.iter().map(|(x, f)| (*x, f.clone())).collect()))
                .filter(|(_, f): &(String, BTreeMap<UserId, Vec<UserId>>)| !f.is_empty())
                .collect()
        };
        prop_assert_eq!(forward(&read), forward(&grown));
    }
}

/// The catalogue from the live graph's index against one read off the plain graph: for
/// every viewer, the same channels with the same publishers.
fn same_catalogue(live: &LiveGraph, shadow: &Graph) -> Result<(), TestCaseError> {
    for viewer in (1..=7).map(UserId) {
        let mut want: std::collections::BTreeMap<Channel, Vec<UserId>> = Default::default();
        for k in shadow.keys.iter().filter(|k| k.enabled) {
            let u = k.owner;
            let shown = shadow.users.get(&u).copied().unwrap_or(false)
                && !shadow.blocks.contains(&(u, viewer))
                && !shadow.blocks.contains(&(viewer, u));
            for c in k.publish.iter().filter(|_| shown) {
                want.entry(c.clone()).or_default().push(u);
            }
        }
        for users in want.values_mut() {
            users.sort();
            users.dedup();
        }
        let (page, more) = live.catalogue(viewer, "", 0, 10, 10);
        prop_assert!(!more);
        let got: std::collections::BTreeMap<Channel, Vec<UserId>> = page
            .into_iter()
            .map(|e| {
                let mut all = live.publishers(viewer, &e.channel);
                all.sort();
                assert_eq!(e.count, all.len());
                (e.channel, all)
            })
            .collect();
        prop_assert_eq!(&got, &want, "viewer {:?}", viewer);
        // Paged one at a time, the same channels in order.
        let mut paged = Vec::new();
        for p in 0.. {
            let (page, more) = live.catalogue(viewer, "", p, 1, 0);
            paged.extend(page.into_iter().map(|e| e.channel));
            if !more {
                break;
            }
        }
        prop_assert_eq!(paged, want.keys().cloned().collect::<Vec<_>>());
        let (found, _) = live.catalogue(viewer, "D", 0, 10, 0);
        prop_assert!(found.iter().all(|e| e.channel.as_str() == "d"));
    }
    Ok(())
}

/// The live graph's reach of every user's data on `c` against the reference: the same
/// receivers, each by a path as short, and every path one the data can take.
fn same_reach(live: &LiveGraph, shadow: &Graph, c: &str) -> Result<(), TestCaseError> {
    use crate::domain::acl::{Why, reach};
    let channel = ch(c);
    for p in shadow.users.keys().copied().chain([UserId(99)]) {
        let got = live.reach(p, &channel);
        let want = reach(shadow, p, c);
        let len = |w: &Why| match w {
            Why::Own => 0,
            Why::Share { chain, .. } => chain.len(),
        };
        let got_len: Vec<(UserId, usize)> = got.iter().map(|(u, w)| (*u, len(w))).collect();
        let want_len: Vec<(UserId, usize)> = want.iter().map(|(u, w)| (*u, len(w))).collect();
        prop_assert_eq!(&got_len, &want_len, "publisher {:?}", p);
        for (r, why) in &got {
            let Why::Share { share, to, chain } = why else {
                return Err(TestCaseError::fail(format!("{r:?}: not through a share")));
            };
            let s = shadow.shares.iter().find(|s| s.id == *share).unwrap();
            prop_assert_eq!((s.from, s.to), (p, *to));
            prop_assert_eq!(chain.first(), Some(r));
            // Each user on the way gets it from the next through a live redistribute share.
            for pair in chain.windows(2) {
                let (down, up) = (pair[0], pair[1]);
                prop_assert!(
                    shadow.shares.iter().any(|s| s.from == up
                        && s.channel.as_str() == c
                        && s.kind == ShareKind::Redistribute
                        && shadow.reaches(s, down)),
                    "{:?} does not pass to {:?}",
                    up,
                    down
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn reach_from_the_live_graph_equals_the_reference_after_every_step(
        first in proptest::collection::vec(arb_delta(), 0..20),
        then in proptest::collection::vec(proptest::collection::vec(arb_delta(), 1..3), 1..10),
    ) {
        let mut shadow = start();
        for d in &first {
            apply_to(&mut shadow, d);
        }
        let mut live = LiveGraph::new(shadow.clone(), Mode::Social);
        same_reach(&live, &shadow, "c")?;
        for step in then {
            for d in &step {
                apply_to(&mut shadow, d);
            }
            live.apply(step.clone());
            same_reach(&live, &shadow, "c")?;
            same_reach(&live, &shadow, "d")?;
        }
    }
}

#[test]
fn a_revoke_re_derives_only_the_keys_downstream() {
    let mut g = start();
    let share = |id, from, to, kind| Share {
        id: ShareId(id),
        from: UserId(from),
        channel: ch("c"),
        to: Grantee::User(UserId(to)),
        kind,
        state: ShareState::Accepted,
        onward: true,
    };
    g.shares = vec![
        share(1, 1, 2, ShareKind::Own),
        share(2, 2, 3, ShareKind::Redistribute),
        share(3, 5, 6, ShareKind::Own),
    ];
    let mut live = LiveGraph::new(g, Mode::Social);
    let mut revoked = share(1, 1, 2, ShareKind::Own);
    revoked.state = ShareState::Revoked;
    let changes = live.apply([Delta::Share(ShareId(1), Some(revoked))]);
    let idents: Vec<&str> = changes.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        idents,
        ["k2", "k3"],
        "bob and, through bob's redistribution, carol"
    );
    assert!(!live.table()["k3"].sources("c").unwrap().admits(UserId(1)));
}

/// Redistribution chains and the shapes around them.
mod chains {
    use super::*;

    /// A chain of redistributors, each allowing onward travel: the fixpoint must carry the
    /// first user's data to the last whatever order the users are visited in (hash order
    /// differs for every map, so each round visits them differently).
    #[test]
    fn long_redistribution_chains_reach_the_end_in_any_visiting_order() {
        let ch = Channel::new("c").unwrap();
        for round in 0..40 {
            let n = 8i64;
            let graph = Graph {
                users: (1..=n).map(|u| (UserId(u), true)).collect(),
                keys: (1..=n).map(|u| key(u, true, &["c"])).collect(),
                shares: (1..n)
                    .map(|u| Share {
                        id: ShareId(u),
                        from: UserId(u),
                        channel: ch.clone(),
                        to: Grantee::User(UserId(u + 1)),
                        kind: ShareKind::Redistribute,
                        state: if round % 2 == 0 || u != 1 {
                            ShareState::Accepted
                        } else {
                            ShareState::Offered
                        },
                        onward: true,
                    })
                    .collect(),
                ..Graph::default()
            };
            let mut live = LiveGraph::new(graph.clone(), Mode::Social);
            assert_eq!(live.table(), &derive(&graph, Mode::Social), "round {round}");
            // Accept (or revoke) the first link: everyone downstream changes.
            let mut first = graph.shares[0].clone();
            first.state = if round % 2 == 0 {
                ShareState::Revoked
            } else {
                ShareState::Accepted
            };
            let mut after = graph.clone();
            after.shares[0] = first.clone();
            let changes = live.apply([Delta::Share(ShareId(1), Some(first))]);
            assert_eq!(changes.len(), usize::try_from(n - 1).unwrap(), "round {round}");
            assert_eq!(live.table(), &derive(&after, Mode::Social), "round {round}");
        }
    }

    /// Long chains, a cycle and a wide group on one channel: the shapes where a change
    /// deletes facts far downstream and re-derives them through other paths.
    mod shapes {
        use super::*;

        const N: i64 = 14;

        fn link(i: i64, state: ShareState, onward: bool) -> Share {
            // i → i+1, and the last back to the third (a cycle through the tail).
            let to = if i == N { 3 } else { i + 1 };
            Share {
                id: ShareId(i),
                from: UserId(i),
                channel: Channel::new("c").unwrap(),
                to: Grantee::User(UserId(to)),
                kind: ShareKind::Redistribute,
                state,
                onward,
            }
        }

        fn group_share(state: ShareState) -> Share {
            Share {
                id: ShareId(100),
                from: UserId(2),
                channel: Channel::new("c").unwrap(),
                to: Grantee::Group(GroupId(1)),
                kind: ShareKind::Redistribute,
                state,
                onward: true,
            }
        }

        fn start() -> Graph {
            Graph {
                users: (1..=N).map(|u| (UserId(u), true)).collect(),
                keys: (1..=N).map(|u| key(u, true, &["c"])).collect(),
                shares: (1..=N)
                    .map(|i| link(i, ShareState::Accepted, true))
                    .chain([group_share(ShareState::Accepted)])
                    .collect(),
                groups: [(GroupId(1), (6..=N).map(UserId).collect())].into(),
                ..Graph::default()
            }
        }

        fn arb_change() -> impl Strategy<Value = Delta> {
            let state = prop_oneof![
                Just(ShareState::Accepted),
                Just(ShareState::Accepted),
                Just(ShareState::Revoked),
            ];
            prop_oneof![
                (1..=N, state.clone(), proptest::bool::weighted(0.8))
                    .prop_map(|(i, s, o)| Delta::Share(ShareId(i), Some(link(i, s, o)))),
                state.prop_map(|s| Delta::Share(ShareId(100), Some(group_share(s)))),
                (1..=N, 1..=N, any::<bool>()).prop_filter_map("self", |(a, b, on)| {
                    (a != b).then_some(Delta::Block {
                        blocker: UserId(a),
                        blocked: UserId(b),
                        on,
                    })
                }),
                (1..=N, any::<bool>()).prop_map(|(u, active)| Delta::Member {
                    group: GroupId(1),
                    user: UserId(u),
                    active,
                }),
                (1..=N, any::<bool>()).prop_map(|(u, on)| Delta::User(UserId(u), Some(on))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn chains_cycles_and_wide_groups_equal_a_full_derivation(
                steps in proptest::collection::vec(proptest::collection::vec(arb_change(), 1..4), 1..30),
            ) {
                let mut shadow = start();
                let mut live = LiveGraph::new(shadow.clone(), Mode::Social);
                prop_assert_eq!(live.table(), &derive(&shadow, Mode::Social));
                for step in steps {
                    for d in &step {
                        super::super::apply_to(&mut shadow, d);
                    }
                    live.apply(step.clone());
                    prop_assert_eq!(live.table(), &derive(&shadow, Mode::Social), "after {:?}", step);
                    super::super::same_reach(&live, &shadow, "c")?;
                }
            }

            #[test]
            fn chains_cycles_and_wide_groups_absorbed_and_derived_in_slices_end_as_a_full_derivation(
                steps in proptest::collection::vec(
                    (proptest::collection::vec(arb_change(), 1..4), any::<bool>(), 0usize..8),
                    1..30,
                ),
            ) {
                let mut shadow = start();
                let mut live = LiveGraph::new(shadow.clone(), Mode::Social);
                super::super::sliced(&mut shadow, &mut live, steps)?;
            }
        }
    }
}
