//! The control plane's worst cases, in process: a change at the head of long redistribute
//! chains (10 chains of 300 users below one head, every link an accepted redistribute
//! share allowing onward travel, the chains woven into a background community that also
//! redistributes onward on the same channel) and a group of 10,000 members accepting a
//! redistribute share. Each iteration makes a change and undoes it, so the graph is the
//! same at every step; and the head's reach (who receives its data, by which path) read
//! from the live graph. Run: `cargo bench --bench graph` (`GRAPH_USERS` sets the
//! background community's size, default 20,000; the shape is 100,000).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use hpfriends::domain::acl::{KeyRecord, Mode};
use hpfriends::domain::live::{Delta, LiveGraph};
use hpfriends::domain::model::{Grantee, Graph, Share, ShareKind, ShareState};
use hpfriends::domain::{AuthkeyId, GroupId, ShareId, UserId};
use hpfriends::wire::{Channel, Ident, Secret};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

fn uid(i: usize) -> UserId {
    UserId(i64::try_from(i).unwrap() + 1)
}

/// The community, the first link of the first chain (user, share) and the big group's
/// share.
struct Shape {
    graph: Graph,
    head: UserId,
    first: (UserId, Share),
    group_share: Share,
}

fn shape(users: usize) -> Shape {
    let channels: Vec<Channel> = (0..50)
        .map(|i| Channel::new(&format!("sensor.{i}")).unwrap())
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut shares = Vec::new();
    let mut next = 0i64;
    let mut share = |from: UserId, channel: &Channel, to: Grantee, kind: ShareKind| {
        next += 1;
        Share {
            id: ShareId(next),
            from,
            channel: channel.clone(),
            to,
            kind,
            state: ShareState::Accepted,
            onward: true,
        }
    };
    let mine: Vec<Vec<usize>> = (0..users)
        .map(|_| (0..5).map(|_| rng.below(50)).collect())
        .collect();
    let n_groups = users / 100;
    let mut groups: HashMap<GroupId, HashSet<UserId>> = HashMap::new();
    for g in 0..n_groups {
        let size = 20 + rng.below(180);
        let m = groups.entry(GroupId(i64::try_from(g).unwrap() + 1)).or_default();
        for _ in 0..size {
            m.insert(uid(rng.below(users)));
        }
    }
    let mut offers = Vec::new();
    for (u, chans) in mine.iter().enumerate() {
        for _ in 0..5 {
            let c = &channels[chans[rng.below(5)]];
            let roll = rng.below(100);
            let to = if roll < 85 {
                Grantee::User(uid(rng.below(users)))
            } else if roll < 95 {
                Grantee::Group(GroupId(i64::try_from(rng.below(n_groups)).unwrap() + 1))
            } else {
                Grantee::Everyone
            };
            let kind = if rng.below(100) < 20 {
                ShareKind::Redistribute
            } else {
                ShareKind::Own
            };
            let s = share(uid(u), c, to, kind);
            if to == Grantee::Everyone {
                offers.push(s.id);
            }
            shares.push(s);
        }
    }
    let mut follows = HashSet::new();
    for _ in 0..users * 6 {
        follows.insert((offers[rng.below(offers.len())], uid(rng.below(users))));
    }
    // The chains, on the first channel, through users of the community.
    let c0 = channels[0].clone();
    let head = uid(0);
    let mut first = None;
    for _ in 0..10 {
        let mut prev = head;
        for _ in 0..300 {
            let u = uid(1 + rng.below(users - 1));
            let s = share(prev, &c0, Grantee::User(u), ShareKind::Redistribute);
            first.get_or_insert((u, s.clone()));
            shares.push(s);
            prev = u;
        }
    }
    // A group of 10,000 (or everyone) with a redistribute share offered to it.
    let big = GroupId(i64::try_from(n_groups).unwrap() + 1);
    groups.insert(big, (1..users.min(10_001)).map(uid).collect());
    let mut group_share = share(head, &c0, Grantee::Group(big), ShareKind::Redistribute);
    group_share.state = ShareState::Offered;
    shares.push(group_share.clone());
    let graph = Graph {
        users: (0..users).map(|u| (uid(u), true)).collect(),
        keys: (0..users)
            .map(|u| KeyRecord {
                id: AuthkeyId(uid(u).0),
                ident: Ident::new(&format!("k{u}")).unwrap(),
                secret: Secret::new("s"),
                owner: uid(u),
                enabled: true,
                publish: vec![c0.clone()],
                subscribe: mine[u]
                    .iter()
                    .map(|c| channels[*c].clone())
                    .chain([c0.clone()])
                    .collect(),
            })
            .collect(),
        shares,
        groups,
        follows,
        ..Graph::default()
    };
    Shape {
        graph,
        head,
        first: first.unwrap(),
        group_share,
    }
}

fn graph(c: &mut Criterion) {
    let users = std::env::var("GRAPH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let s = shape(users);
    let started = Instant::now();
    let mut live = LiveGraph::new(s.graph, Mode::Social);
    eprintln!(
        "graph: {users} users, {} shares: derived in {:.2?}",
        live.share_count(),
        started.elapsed()
    );
    let mut g = c.benchmark_group("graph");
    g.sample_size(10);
    let (link, first) = s.first;
    g.bench_function("chain head blocked and unblocked", |b| {
        b.iter(|| {
            let block = |on| Delta::Block {
                blocker: link,
                blocked: s.head,
                on,
            };
            live.apply([block(true)]);
            live.apply([block(false)]);
        })
    });
    g.bench_function("chain head revokes and re-grants", |b| {
        b.iter(|| {
            let mut revoked = first.clone();
            revoked.state = ShareState::Revoked;
            live.apply([Delta::Share(first.id, Some(revoked))]);
            live.apply([Delta::Share(first.id, Some(first.clone()))]);
        })
    });
    let c0 = first.channel.clone();
    eprintln!(
        "graph: the head's reach on {c0}: {} receivers",
        live.reach(s.head, &c0).len()
    );
    g.bench_function("reach of the chain head", |b| b.iter(|| live.reach(s.head, &c0)));
    g.bench_function("group of 10,000 accepts and leaves", |b| {
        b.iter(|| {
            let mut accepted = s.group_share.clone();
            accepted.state = ShareState::Accepted;
            live.apply([Delta::Share(accepted.id, Some(accepted))]);
            live.apply([Delta::Share(s.group_share.id, Some(s.group_share.clone()))]);
        })
    });
    g.finish();
}

criterion_group!(benches, graph);
criterion_main!(benches);
