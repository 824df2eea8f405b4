//! Micro-benchmarks of the data plane's pieces: frame decode and encode, the ACL check, and
//! router fan-out to 1/10/100 subscribers, open and with share-derived source sets.
//! Run: `cargo bench --bench broker`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hpfriends::broker::handle::{SessionHandle, SessionId};
use hpfriends::broker::outbox::Outbox;
use hpfriends::broker::router::{Route, RouteEditor, Router};
use hpfriends::broker::stats::Stats;
use hpfriends::config::SlowConsumerPolicy;
use hpfriends::domain::acl::{ChannelSet, KeyAcl, Sources};
use hpfriends::domain::{AuthkeyId, UserId};
use hpfriends::wire::{Channel, Frame, FrameCodec, Ident, Limits, Secret};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

fn publish_frame(size: usize) -> Bytes {
    Frame::Publish {
        ident: Ident::new("sensor-0001").unwrap(),
        channel: Channel::new("dionaea.capture").unwrap(),
        payload: Bytes::from(vec![b'x'; size]),
    }
    .to_bytes()
    .unwrap()
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    for size in [100usize, 65536] {
        let frame = publish_frame(size);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("decode", size), &frame, |b, frame| {
            let mut codec = FrameCodec::new(Limits::default());
            b.iter(|| {
                let mut buf = BytesMut::from(&frame[..]);
                codec.decode(&mut buf).unwrap().unwrap()
            });
        });
        let parsed = Frame::parse(&frame).unwrap();
        g.bench_with_input(BenchmarkId::new("encode", size), &parsed, |b, f| {
            b.iter(|| f.to_bytes().unwrap())
        });
    }
    g.finish();
}

fn acl(c: &mut Criterion) {
    let channels: ChannelSet = (0..50)
        .map(|i| Channel::new(&format!("chan.{i}")).unwrap())
        .collect();
    let acl = KeyAcl {
        id: AuthkeyId(1),
        ident: Ident::new("k").unwrap(),
        secret: Secret::new("s"),
        owner: UserId(1),
        publish: channels,
        subscribe: HashMap::new(),
    };
    c.bench_function("acl/may_publish (50 channels)", |b| {
        b.iter(|| acl.may_publish("chan.42"))
    });
}

fn handle(i: u64, sources: Sources) -> Arc<SessionHandle> {
    let channel = Channel::new("dionaea.capture").unwrap();
    let acl = KeyAcl {
        id: AuthkeyId(i64::try_from(i).unwrap()),
        ident: Ident::new(&format!("sub{i}")).unwrap(),
        secret: Secret::new("s"),
        owner: UserId(1000),
        publish: ChannelSet::default(),
        subscribe: HashMap::from([(channel, sources)]),
    };
    Arc::new(SessionHandle {
        id: SessionId(i),
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        ident: acl.ident.clone(),
        outbox: Arc::new(Outbox::new(usize::MAX)),
        acl: ArcSwapOption::from(Some(Arc::new(acl))),
        kill: CancellationToken::new(),
        usage: Default::default(),
    })
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("router/publish");
    let frame = publish_frame(100);
    for n in [1u64, 10, 100] {
        for social in [false, true] {
            let router = Router::new(SlowConsumerPolicy::Disconnect, Arc::new(Stats::default()));
            let mut editor = RouteEditor::default();
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    if social {
                        // Each subscriber receives 20 sources through shares, the publisher among them.
                        let users: BTreeSet<UserId> = (0..20)
                            .map(|u| UserId((u + i64::try_from(i).unwrap()) % 40))
                            .chain([UserId(7)])
                            .collect();
                        handle(i, Sources::Users(Arc::new(users)))
                    } else {
                        handle(i, Sources::Everyone)
                    }
                })
                .collect();
            for h in &handles {
                editor.place(
                    h,
                    h.acl.load().as_ref().unwrap().sources("dionaea.capture").unwrap(),
                );
            }
            let route = editor.snapshot();
            // 100 other channels, so the lookup is not in a table of one.
            for k in 0..100 {
                router.set_route(
                    Channel::new(&format!("other.{k}")).unwrap(),
                    Route {
                        everyone: vec![Arc::clone(&handles[0])].into(),
                        ..Route::default()
                    },
                );
            }
            router.set_route(Channel::new("dionaea.capture").unwrap(), route);
            let label = if social { "shares" } else { "open" };
            g.throughput(Throughput::Elements(n));
            g.bench_function(BenchmarkId::new(label, n), |b| {
                let mut sink = Vec::new();
                let mut stalled = Vec::new();
                let mut i = 0u32;
                b.iter(|| {
                    let delivered = router.publish(UserId(7), "dionaea.capture", &frame, &mut stalled);
                    stalled.clear();
                    i += 1;
                    if i.is_multiple_of(64) {
                        for h in &handles {
                            h.outbox.try_take(&mut sink);
                        }
                        sink.clear();
                    }
                    delivered
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, wire, acl, fanout);
criterion_main!(benches);
