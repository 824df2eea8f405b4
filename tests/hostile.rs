//! Hostile clients against a real broker over TCP: broken length prefixes, slowloris before
//! and after auth, auth before the info frame is read, a replayed auth hash, 10,000 wrong
//! secrets, another key's ident, 100,000 subscriptions, 5,000 connections from one address,
//! invalid UTF-8, and small frames for a stopped reader interleaved with large ones for
//! nobody. After each, a normal client is served and the broker's memory is back
//! near where it was (each case prints its RSS before and after).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use common::raw::Event;
use common::{Raw, TestServer, wait_for};
use hpfriends::wire::{AuthHash, Frame, Ident, Nonce, Secret};

/// Another client address on the loopback network.
fn from(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn server(env: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start_with(&[], env);
    s.user("alice");
    s.user("mallory");
    s.key(
        "alice",
        "alice",
        "alice-secret",
        &["sync", "data"],
        &["sync", "data"],
    );
    s.key(
        "mallory",
        "mallory",
        "mallory-secret",
        &["sync", "m"],
        &["sync", "m"],
    );
    s
}

/// A normal client still gets in, publishes and receives its own message.
fn still_serves(s: &TestServer, from_addr: IpAddr) {
    let mut c = Raw::connect_from(s.addr, from_addr);
    c.auth("alice", "alice-secret");
    c.subscribe("data");
    c.barrier("sync");
    c.publish("data", b"still here");
    assert_eq!(c.expect_publish().2, b"still here");
}

/// Waits until the broker's memory is within `slack_kib` of `baseline`; returns it.
fn memory_settles(s: &TestServer, case: &str, baseline: u64, slack_kib: u64) -> u64 {
    let mut last = 0;
    let settled = (0..100).any(|_| {
        last = s.rss_kib();
        if last <= baseline + slack_kib {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    eprintln!("hostile {case}: RSS before {baseline} KiB, after {last} KiB");
    assert!(
        settled,
        "{case}: RSS {last} KiB did not return near {baseline} KiB"
    );
    last
}

fn header(len: u32, op: u8) -> Vec<u8> {
    let mut b = len.to_be_bytes().to_vec();
    b.push(op);
    b
}

#[test]
fn broken_length_prefixes_are_refused_before_anything_is_buffered() {
    let s = server(&[]);
    still_serves(&s, from(1));
    let baseline = s.rss_kib();
    for (len, what) in [(0u32, "0"), (4, "4"), (u32::MAX, "2^32-1")] {
        for op in [2u8, 3, 4] {
            let mut c = Raw::connect(s.addr);
            c.send_raw(&header(len, op));
            let e = c.expect_error();
            assert!(
                e.starts_with("Protocol error:"),
                "length {what}, opcode {op}: {e}"
            );
            c.expect_closed();
        }
    }
    still_serves(&s, from(1));
    memory_settles(&s, "length prefixes", baseline, 8 * 1024);
}

#[test]
fn slowloris_before_and_after_auth_is_closed() {
    let s = server(&[
        ("HPFRIENDS_AUTH_TIMEOUT_SECS", "2"),
        ("HPFRIENDS_FRAME_TIMEOUT_SECS", "2"),
    ]);
    let baseline = s.rss_kib();
    // Before auth: an auth frame one byte a second never completes in time.
    let mut pre = Raw::connect(s.addr);
    let auth = Frame::Auth {
        ident: Ident::new("alice").unwrap(),
        hash: AuthHash::compute(&pre.nonce, &Secret::new("alice-secret")),
    }
    .to_bytes()
    .unwrap();
    // After auth: a publish frame one byte a second.
    let mut post = Raw::login(s.addr, "alice", "alice-secret");
    let publish = post.publish_frame("data", &[b'x'; 64]);
    let started = Instant::now();
    let (mut pre_done, mut post_done) = (None, None);
    for i in 0..auth.len().max(publish.len()) {
        if pre_done.is_none() {
            pre.send_raw(&auth[i..=i]);
            if let Event::Frame(Frame::Error(e)) = pre.next(Duration::from_millis(500)) {
                pre_done = Some(e);
            }
        }
        if post_done.is_none() {
            post.send_raw(&publish[i..=i]);
            if let Event::Frame(Frame::Error(e)) = post.next(Duration::from_millis(500)) {
                post_done = Some(e);
            }
        }
        if pre_done.is_some() && post_done.is_some() {
            break;
        }
    }
    assert_eq!(pre_done.unwrap(), "Authentication timeout: no AUTH within 2 s");
    assert_eq!(
        post_done.unwrap(),
        "Frame timeout: a frame was not completed within 2 s"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    pre.expect_closed();
    post.expect_closed();
    still_serves(&s, from(1));
    memory_settles(&s, "slowloris", baseline, 8 * 1024);
}

#[test]
fn auth_before_the_info_frame_and_a_replayed_hash_fail() {
    let s = server(&[]);
    // A client that does not wait for the nonce cannot know it: its hash is wrong.
    let mut blind = TcpStream::connect(s.addr).unwrap();
    let guess = Frame::Auth {
        ident: Ident::new("alice").unwrap(),
        hash: AuthHash::compute(&Nonce([0; 4]), &Secret::new("alice-secret")),
    }
    .to_bytes()
    .unwrap();
    blind.write_all(&guess).unwrap();
    let mut c = Raw::over(blind);
    c.expect_refusal("Authentication failed for alice");

    // A hash seen on one connection is worth nothing on the next (a fresh nonce each time).
    let mut first = Raw::connect(s.addr);
    let hash = AuthHash::compute(&first.nonce, &Secret::new("alice-secret"));
    let captured = Frame::Auth {
        ident: Ident::new("alice").unwrap(),
        hash,
    }
    .to_bytes()
    .unwrap();
    first.ident = "alice".into();
    first.send_raw(&captured);
    let first_nonce = first.nonce;
    assert!(first.authenticated(), "the real client got in");
    let mut replay = Raw::connect(s.addr);
    assert_ne!(replay.nonce, first_nonce);
    replay.send_raw(&captured);
    replay.expect_refusal("Authentication failed for alice");
    still_serves(&s, from(1));
}

#[test]
fn ten_thousand_wrong_secrets_are_throttled_logged_and_the_real_user_gets_in() {
    let _ = rlimit::increase_nofile_limit(20_000);
    // Default throttling (the test harness turns it off unless asked).
    let mut s = server(&[("HPFRIENDS_AUTH_FREE_FAILURES", "5")]);
    let baseline = s.rss_kib();
    // Ten attacker addresses, 1,000 guesses each, fired without waiting for the answers.
    let (attackers, per) = (10u8, 1000);
    let started = Instant::now();
    let counts = std::sync::Arc::new([(); 2].map(|()| std::sync::atomic::AtomicUsize::new(0)));
    let workers: Vec<_> = (0..attackers)
        .map(|t| {
            let addr = s.addr;
            let counts = counts.clone();
            std::thread::spawn(move || {
                let add = |i: usize| counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for i in 0..per {
                    let Ok(stream) = Raw::tcp_from(addr, from(10 + t)) else {
                        continue;
                    };
                    let Ok(mut c) = Raw::try_over(stream) else {
                        add(1); // over the per-address connection limit
                        continue;
                    };
                    c.auth("alice", &format!("guess-{t}-{i}"));
                    add(0);
                }
            })
        })
        .collect();
    // While the attack runs, the real user (another address) gets in at once, every time.
    for _ in 0..5 {
        let mut real = Raw::connect_from(s.addr, from(1));
        real.auth("alice", "alice-secret");
        assert!(real.authenticated(), "the real user was refused");
        std::thread::sleep(Duration::from_millis(200));
    }
    for w in workers {
        w.join().unwrap();
    }
    let load = |i: usize| counts[i].load(std::sync::atomic::Ordering::Relaxed);
    let (sent, limited) = (load(0), load(1));
    // The broker's own count of the failures it answered late (not a timing guess).
    let throttled = wait_for("the throttle's count", Duration::from_secs(30), || {
        let m = common::http::samples(&common::http::get(s.web.unwrap(), "/metrics", &[]).body);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = *m.get("hpfriends_auth_throttled_total")? as usize;
        (n + 100 >= sent).then_some(n)
    });
    eprintln!(
        "hostile 10,000 wrong secrets from 10 addresses: {sent} sent in {:?}; {throttled} answered late \
         by the throttle; {limited} refused by the per-address connection limit",
        started.elapsed()
    );
    assert!(
        sent + limited >= 9_900,
        "the attack ran ({sent} sent, {limited} refused)"
    );
    assert!(
        throttled >= sent * 9 / 10,
        "most failures must be answered late ({throttled} of {sent} were)"
    );
    still_serves(&s, from(1));
    memory_settles(&s, "10,000 wrong secrets", baseline, 32 * 1024);
    // Logged for alice, within the key log's bound: 20 entries a minute per key and kind,
    // the rest as a "suppressed" count, written at the latest when the broker stops.
    assert_eq!(s.stop().code(), Some(0));
    let log = s.cli_ok(&["log", "--as", "alice", "--json", "--limit", "1000"]);
    let failed = log.lines().filter(|l| l.contains("auth-failed")).count();
    assert!((1..=40).contains(&failed), "{failed} auth-failed entries");
    assert!(
        log.contains("suppressed") && log.contains("more auth-failed"),
        "{log}"
    );
    assert!(
        (10..20).any(|i| log.contains(&format!("127.0.0.{i}:"))),
        "the attackers' addresses are logged: {log}"
    );
}

#[test]
fn another_keys_ident_and_invalid_utf8_are_refused() {
    let s = server(&[]);
    let mut c = Raw::login(s.addr, "mallory", "mallory-secret");
    c.publish_as("alice", "data", b"forged");
    c.expect_refusal("Invalid authkey in message, ident=alice");
    let mut c = Raw::login(s.addr, "mallory", "mallory-secret");
    c.subscribe_as("alice", "data");
    c.expect_refusal("Invalid authkey in message, ident=alice");

    // Invalid UTF-8 in an ident (auth) and in a channel (subscribe, publish): refused
    // with a clear error, never passed on.
    let mut bad_auth = Raw::connect(s.addr);
    let mut f = header(5 + 1 + 2 + 20, 2);
    f.extend([2, 0xff, 0xfe]);
    f.extend([0u8; 20]);
    bad_auth.send_raw(&f);
    let e = bad_auth.expect_error();
    assert!(e.contains("UTF-8"), "{e}");
    let mut c = Raw::login(s.addr, "mallory", "mallory-secret");
    let mut f = header(5 + 1 + 7 + 2, 4);
    f.push(7);
    f.extend(b"mallory");
    f.extend([0xc3, 0x28]);
    c.send_raw(&f);
    let e = c.expect_error();
    assert!(e.contains("UTF-8"), "{e}");
    c.expect_closed();
    let mut c = Raw::login(s.addr, "mallory", "mallory-secret");
    let mut f = header(5 + 1 + 7 + 1 + 2 + 1, 3);
    f.push(7);
    f.extend(b"mallory");
    f.extend([2, 0xed, 0xa0]);
    f.push(b'x');
    c.send_raw(&f);
    let e = c.expect_error();
    assert!(e.contains("UTF-8"), "{e}");
    still_serves(&s, from(1));
}

#[test]
fn a_hundred_thousand_subscriptions_hit_the_limits() {
    let s = server(&[("HPFRIENDS_MAX_SUBSCRIPTIONS_PER_KEY", "1500")]);
    let channels: Vec<String> = (0..2000).map(|i| format!("c{i}")).collect();
    let list = channels.join(",");
    s.cli_ok(&[
        "authkey",
        "add",
        "--owner",
        "mallory",
        "--ident",
        "many",
        "--secret",
        "many-secret",
        "--subscribe",
        &format!("{list},sync"),
        "--publish",
        "sync",
    ]);
    s.wait_key("many", "many-secret");
    let baseline = s.rss_kib();
    // 100,000 subscribe frames pipelined on one connection: cut at 1,000 (per connection).
    let mut c = Raw::login(s.addr, "many", "many-secret");
    let mut burst = Vec::new();
    for i in 0..100_000 {
        let f = Frame::Subscribe {
            ident: Ident::new("many").unwrap(),
            channel: hpfriends::wire::Channel::new(&channels[i % channels.len()]).unwrap(),
        };
        burst.extend_from_slice(&f.to_bytes().unwrap());
    }
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&burst);
        })
    };
    c.expect_refusal("Too many subscriptions on one connection (limit 1000)");
    writer.join().unwrap();
    // Over several connections, the key is cut at its own limit.
    let mut first = Raw::login(s.addr, "many", "many-secret");
    for ch in &channels[..999] {
        first.subscribe(ch);
    }
    first.barrier("sync");
    let mut second = Raw::login(s.addr, "many", "many-secret");
    for ch in &channels[1000..1600] {
        second.subscribe(ch);
    }
    let e = second.expect_error();
    assert_eq!(
        e,
        "Too many subscriptions for this authkey over all its connections (limit 1500)"
    );
    drop((first, second));
    still_serves(&s, from(1));
    memory_settles(&s, "100,000 subscriptions", baseline, 16 * 1024);
}

#[test]
fn a_hundred_thousand_unsubscribes_queue_nothing_in_the_broker() {
    let s = server(&[]);
    let baseline = s.rss_kib();
    // 100,000 unsubscribe frames with 200-byte channel names (21 MB), pipelined: each is
    // handed to the broker and awaited before the next is read, so the broker's mailbox
    // holds at most one per connection and memory does not follow the flood, however busy
    // the broker is meanwhile.
    let mut c = Raw::login(s.addr, "mallory", "mallory-secret");
    c.subscribe("m");
    c.barrier("sync");
    let long = "u".repeat(200);
    // The first takes "m" away (a real change); the rest name channels it never held.
    c.send(&Frame::Unsubscribe {
        ident: Ident::new("mallory").unwrap(),
        channel: hpfriends::wire::Channel::new("m").unwrap(),
    });
    let one = Frame::Unsubscribe {
        ident: Ident::new("mallory").unwrap(),
        channel: hpfriends::wire::Channel::new(&long).unwrap(),
    }
    .to_bytes()
    .unwrap();
    let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 10_000).collect();
    let mut peak = baseline;
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..10 {
                w.write_all(&chunk).unwrap();
            }
        })
    };
    while !writer.is_finished() {
        peak = peak.max(s.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    // Everything was read in order: the barrier comes back after them, and "m" is gone.
    assert!(c.barrier("sync").is_empty());
    let mut p = Raw::login(s.addr, "mallory", "mallory-secret");
    p.publish("m", b"not for the unsubscribed");
    p.barrier("sync");
    assert!(c.barrier("sync").is_empty(), "the unsubscribe of m was lost");
    peak = peak.max(s.rss_kib());
    eprintln!("hostile 100,000 unsubscribes: RSS {baseline} KiB before, peak {peak} KiB");
    assert!(
        peak < baseline + 32 * 1024,
        "RSS rose {} KiB during the flood",
        peak - baseline
    );
    still_serves(&s, from(1));
    memory_settles(&s, "100,000 unsubscribes", baseline, 16 * 1024);
}

#[test]
fn five_thousand_connections_from_one_address() {
    let _ = rlimit::increase_nofile_limit(20_000);
    let s = server(&[]);
    still_serves(&s, from(1));
    let baseline = s.rss_kib();
    let attacker = from(3);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..5000 {
        let Ok(mut c) = Raw::tcp_from(s.addr, attacker) else {
            refused += 1;
            continue;
        };
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 5];
        if c.read_exact(&mut head).is_ok() && head[4] == 0 {
            refused += 1; // an error frame first: over the per-address limit
        } else {
            held.push(c);
        }
    }
    eprintln!(
        "hostile 5,000 connections from one address: {} held, {refused} refused",
        held.len()
    );
    assert_eq!(held.len(), 1000, "the per-address limit (default 1,000)");
    // Others are served meanwhile.
    still_serves(&s, from(1));
    let peak = s.rss_kib();
    drop(held);
    eprintln!("hostile 5,000 connections: RSS peak {peak} KiB");
    // Once they are gone, the address may connect again.
    wait_for(
        "the attacker's slots to be released",
        Duration::from_secs(10),
        || {
            let mut c = Raw::tcp_from(s.addr, attacker).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = [0u8; 5];
            c.read_exact(&mut head).ok()?;
            (head[4] == 1).then_some(())
        },
    );
    memory_settles(&s, "5,000 connections", baseline, 24 * 1024);
}

#[test]
fn a_slow_subscribers_outbox_holds_its_bound_in_real_memory_against_an_interleaving_publisher() {
    // Drop-oldest keeps the stopped reader's outbox full (at 1 MiB) without cutting it or
    // holding up the publisher, so the attack can run as long as it likes.
    let s = server(&[
        ("HPFRIENDS_SLOW_CONSUMER", "drop-oldest"),
        ("HPFRIENDS_OUTBOX_BYTES", "1048576"),
        ("HPFRIENDS_MAX_PAYLOAD", "262144"),
    ]);
    s.key(
        "alice",
        "alice-void",
        "void-secret",
        &["sync", "data", "void"],
        &["sync"],
    );
    let stopped = Raw::live_subscriber(s.addr, "alice", "alice-secret", "data");
    let mut p = Raw::login(s.addr, "alice-void", "void-secret");
    // Fill the stopped reader's socket buffers and its outbox with frames it never reads.
    let filler = vec![b'f'; 64 * 1024];
    for _ in 0..640 {
        p.publish("data", &filler);
    }
    p.barrier("sync");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = s.rss_kib();
    // Each round: a small frame for the stopped reader (queued, counted ~100 bytes) and a
    // large one for nobody, in one write: the reader's buffer is handed over to the large
    // frame's successor while the small frame still points into it. Shared with the read
    // buffer, every small frame kept a whole read buffer (~256 KiB) alive behind the
    // outbox's back: +40 to +72 MB RSS for these 2,000 rounds (debug build); a copy of
    // each leaves it flat.
    let big = vec![b'v'; 200 * 1024];
    for i in 0u32..2000 {
        let round = [
            p.publish_frame("data", &i.to_be_bytes()),
            p.publish_frame("void", &big),
        ]
        .concat();
        p.send_raw(&round);
    }
    p.barrier("sync");
    std::thread::sleep(Duration::from_millis(300));
    let after = s.rss_kib();
    eprintln!(
        "hostile interleave: RSS before {baseline} KiB, after 2,000 rounds {after} KiB (+{} KiB)",
        after.saturating_sub(baseline)
    );
    assert!(
        after <= baseline + 16 * 1024,
        "a 1 MiB outbox pinned {} KiB of read buffers",
        after.saturating_sub(baseline)
    );
    // What was copied arrives intact: every over-the-wire backpressure test reads numbered
    // payloads through backed-up outboxes. Here, the broker serves on.
    drop(stopped);
    still_serves(&s, from(1));
}
