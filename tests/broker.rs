//! The broker over real TCP: auth, fan-out, limits, ACL refusals, malformed frames, live
//! key changes, load and slow consumers. Each test starts its own `hpfriends serve`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::raw::Event;
use common::{Raw, TestServer, wait_for};
use hpfriends::wire::Frame;

/// A server with users alice and bob and keys:
/// a1 (alice; publish+subscribe c, sync), a2 (alice; subscribe c, sync; publish sync),
/// b1 (bob; publish+subscribe c, sync).
fn two_users() -> TestServer {
    let s = TestServer::start();
    s.user("alice");
    s.user("bob");
    s.key("alice", "a1", "sa1", &["c", "sync"], &["c", "sync"]);
    s.key("alice", "a2", "sa2", &["sync"], &["c", "sync"]);
    s.key("bob", "b1", "sb1", &["c", "sync"], &["c", "sync"]);
    s
}

#[test]
fn auth_ok_wrong_secret_unknown_ident() {
    let s = two_users();
    let mut ok = Raw::login(s.addr, "a1", "sa1");
    // A good auth gets no answer: the marker comes back with nothing before it.
    assert!(ok.barrier("sync").is_empty());

    let mut bad = Raw::login(s.addr, "a1", "wrong");
    bad.expect_refusal("Authentication failed for a1");
    let mut unknown = Raw::login(s.addr, "nobody", "x");
    unknown.expect_refusal("Authentication failed for nobody");

    // A hash made for another connection's nonce does not authenticate (no replay).
    let first = Raw::connect(s.addr);
    let mut second = Raw::connect(s.addr);
    let replayed = hpfriends::wire::AuthHash::compute(&first.nonce, &hpfriends::wire::Secret::new("sa1"));
    second.send(&Frame::Auth {
        ident: hpfriends::wire::Ident::new("a1").unwrap(),
        hash: replayed,
    });
    second.expect_refusal("Authentication failed for a1");
    assert!(s.log().contains("Authentication failed for a1"));
}

#[test]
fn wrong_secrets_are_throttled_but_the_real_user_gets_in() {
    let s = TestServer::start_with(&[], &[("HPFRIENDS_AUTH_FREE_FAILURES", "2")]);
    s.user("alice");
    s.cli_ok(&[
        "authkey",
        "add",
        "--owner",
        "alice",
        "--ident",
        "a1",
        "--secret",
        "sa1",
        "--publish",
        "sync",
    ]);
    s.cli_ok(&[
        "authkey",
        "add",
        "--owner",
        "alice",
        "--ident",
        "a1x",
        "--secret",
        "x",
        "--subscribe",
        "sync",
    ]);
    // Wait for the keys without failing auths: the log says when they are applied.
    wait_for("the keys to be applied", Duration::from_secs(10), || {
        s.log().contains("keys=2").then_some(())
    });
    for _ in 0..6 {
        Raw::login(s.addr, "a1", "guess").expect_refusal("Authentication failed for a1");
    }
    // Successful auths are never delayed: the real key works at once.
    let mut real = Raw::login(s.addr, "a1", "sa1");
    real.unsubscribe_as("zz", "x");
    assert_eq!(real.expect_error(), "Invalid authkey in message, ident=zz");
    assert!(s.log().contains("Authentication failed for a1"));
}

#[test]
fn misuse_is_in_the_owners_key_log_and_bounded() {
    let s = two_users();
    for _ in 0..30 {
        Raw::login(s.addr, "a1", "wrong").expect_refusal("Authentication failed for a1");
    }
    let mut c = Raw::login(s.addr, "a2", "sa2");
    c.publish("c", b"x");
    c.expect_refusal("Authkey not allowed to pub here. ident=a2, chan=c");
    let entries = wait_for("the key log", Duration::from_secs(10), || {
        let out = s.cli_ok(&["log", "--as", "alice", "--json", "--limit", "100"]);
        let v: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        v.iter().any(|e| e["event"] == "publish-denied").then_some(v)
    });
    // (Setup may add a few for keys polled before they were live: count a1's only.)
    let auth: Vec<_> = entries
        .iter()
        .filter(|e| e["event"] == "auth-failed" && e["ident"] == "a1")
        .collect();
    assert_eq!(auth.len(), 20, "at most 20 a minute per key and event");
    assert!(auth[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let denied = entries.iter().find(|e| e["event"] == "publish-denied").unwrap();
    assert_eq!(
        (denied["ident"].as_str(), denied["channel"].as_str()),
        (Some("a2"), Some("c"))
    );
    // bob sees only his own keys' entries, none of alice's.
    let bobs = s.cli_ok(&["log", "--as", "bob", "--json", "--limit", "100"]);
    assert!(bobs.lines().all(|l| l.contains(r#""ident":"b1""#)), "{bobs}");
}

#[test]
fn a_forged_ident_is_logged_against_the_key_that_sent_it() {
    let s = two_users();
    // bob's key publishes claiming alice's ident a1.
    let mut b = Raw::login(s.addr, "b1", "sb1");
    b.publish_as("a1", "c", b"forged");
    b.expect_refusal("Invalid authkey in message, ident=a1");
    let bobs = wait_for("bob's key log", Duration::from_secs(10), || {
        let out = s.cli_ok(&["log", "--as", "bob", "--json", "--limit", "100"]);
        out.contains("ident-mismatch").then_some(out)
    });
    let entry: serde_json::Value = bobs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "ident-mismatch")
        .unwrap();
    assert_eq!(entry["ident"], "b1", "recorded against the acting key");
    assert!(
        entry["detail"].as_str().unwrap().contains("claimed ident a1"),
        "{entry}"
    );
    // Written in the same batch: alice's log holds nothing about it.
    let alices = s.cli_ok(&["log", "--as", "alice", "--json", "--limit", "100"]);
    assert!(!alices.contains("ident-mismatch"), "{alices}");
}

#[test]
fn channel_names_that_pass_for_others_are_refused_on_the_wire() {
    let s = two_users();
    for (channel, code) in [
        ("invoice\u{202e}fdp.exe", "U+202E"),
        ("c\nBcc: x", "U+000A"),
        ("c\u{200b}", "U+200B"),
    ] {
        let mut c = Raw::login(s.addr, "a1", "sa1");
        c.publish(channel, b"x");
        c.expect_refusal(&format!(
            "Protocol error: publish frame: channel contains the control or format character {code}"
        ));
        let mut c = Raw::login(s.addr, "a1", "sa1");
        c.subscribe(channel);
        c.expect_refusal(&format!(
            "Protocol error: subscribe frame: channel contains the control or format character {code}"
        ));
    }
    let mut c = Raw::login(s.addr, "a1", "sa1");
    c.publish(" c", b"x");
    c.expect_refusal("Protocol error: publish frame: channel begins or ends with whitespace");
    // The CLI refuses them as key channels too.
    let o = s.cli(&[
        "authkey",
        "add",
        "--owner",
        "alice",
        "--publish",
        "bad\u{202e}txt.exe",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("U+202E"));
}

#[test]
fn first_frame_must_be_auth() {
    let s = two_users();
    let mut c = Raw::connect(s.addr);
    c.subscribe_as("a1", "c");
    c.expect_refusal("First message was not AUTH");
}

#[test]
fn publish_reaches_one_and_ten_subscribers_unchanged() {
    let s = two_users();
    let mut subs: Vec<Raw> = (0..10)
        .map(|_| Raw::live_subscriber(s.addr, "a2", "sa2", "c"))
        .collect();
    let mut p = Raw::login(s.addr, "a1", "sa1");
    for i in 0..100u32 {
        p.publish("c", format!("msg {i}").as_bytes());
    }
    for sub in &mut subs {
        for i in 0..100u32 {
            let (ident, channel, payload) = sub.expect_publish();
            assert_eq!((ident.as_str(), channel.as_str()), ("a1", "c"));
            assert_eq!(payload, format!("msg {i}").as_bytes());
        }
    }
    // The publisher subscribed too receives its own messages, as hpfeeds 3.1.0 does.
    let mut me = Raw::live_subscriber(s.addr, "a1", "sa1", "c");
    me.publish("c", b"echo");
    assert_eq!(me.expect_publish().2, b"echo");
}

#[test]
fn every_byte_value_survives() {
    let s = two_users();
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let payload: Vec<u8> = (0..=255u8).cycle().take(256 * 4 + 3).collect();
    let mut p = Raw::login(s.addr, "a1", "sa1");
    p.publish("c", &payload);
    p.publish("c", b"");
    assert_eq!(sub.expect_publish().2, payload);
    assert_eq!(sub.expect_publish().2, b"");
}

#[test]
fn payload_at_the_limit_passes_and_one_byte_more_is_refused() {
    let s = two_users();
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    // 3.1.0 counts the whole frame: 5 + 1 MiB, ident and channel included.
    let max_frame = 5 + 1024 * 1024;
    let at_limit = vec![7u8; max_frame - 5 - (1 + 2) - (1 + 1)];
    let mut p = Raw::login(s.addr, "a1", "sa1");
    let frame = p.publish_frame("c", &at_limit);
    assert_eq!(frame.len(), max_frame);
    p.send_raw(&frame);
    assert_eq!(sub.expect_publish().2.len(), at_limit.len());

    let mut over = at_limit.clone();
    over.push(7);
    p.publish("c", &over);
    p.expect_refusal(&format!(
        "Protocol error: publish frame of {} bytes exceeds the limit of {max_frame} bytes",
        max_frame + 1
    ));
    // Everyone else keeps working.
    let mut p2 = Raw::login(s.addr, "a1", "sa1");
    p2.publish("c", b"still here");
    assert_eq!(sub.expect_publish().2, b"still here");
}

#[test]
fn unsubscribe_stops_delivery() {
    let s = two_users();
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let mut p = Raw::login(s.addr, "a1", "sa1");
    p.publish("c", b"one");
    assert_eq!(sub.expect_publish().2, b"one");
    sub.unsubscribe("c");
    sub.unsubscribe("never-subscribed");
    sub.barrier("sync");
    p.publish("c", b"two");
    p.barrier("sync");
    assert!(sub.barrier("sync").is_empty(), "nothing after unsubscribe");
}

#[test]
fn acl_refusals_use_the_reference_texts() {
    let s = two_users();
    let mut c = Raw::login(s.addr, "a2", "sa2");
    c.publish("c", b"x");
    c.expect_refusal("Authkey not allowed to pub here. ident=a2, chan=c");

    let mut c = Raw::login(s.addr, "a1", "sa1");
    c.subscribe("elsewhere");
    c.expect_refusal("Authkey not allowed to sub here. ident=a1, chan=elsewhere");

    let mut c = Raw::login(s.addr, "a1", "sa1");
    c.publish_as("b1", "c", b"x");
    c.expect_refusal("Invalid authkey in message, ident=b1");

    let mut c = Raw::login(s.addr, "a1", "sa1");
    c.subscribe_as("b1", "c");
    c.expect_refusal("Invalid authkey in message, ident=b1");
}

#[test]
fn delivery_follows_the_owner_until_shares_exist() {
    let s = two_users();
    // alice's second key receives alice's messages but not bob's.
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let mut bob = Raw::login(s.addr, "b1", "sb1");
    bob.publish("c", b"from bob");
    bob.barrier("sync");
    let mut alice = Raw::login(s.addr, "a1", "sa1");
    alice.publish("c", b"from alice");
    let (ident, _, payload) = sub.expect_publish();
    assert_eq!((ident.as_str(), payload.as_slice()), ("a1", &b"from alice"[..]));
}

#[test]
fn open_mode_delivers_every_publisher() {
    let s = TestServer::start_with(&["--open"], &[]);
    s.user("alice");
    s.user("bob");
    s.key("alice", "a2", "sa2", &["sync"], &["c", "sync"]);
    s.key("bob", "b1", "sb1", &["c"], &[]);
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let mut bob = Raw::login(s.addr, "b1", "sb1");
    bob.publish("c", b"from bob");
    assert_eq!(sub.expect_publish().0, "b1");
}

#[test]
fn malformed_frames_get_a_clear_error_and_the_broker_serves_on() {
    let s = two_users();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![0, 0, 0, 0, 3],
            "Protocol error: frame length 0 is shorter than the 5-byte header",
        ),
        (
            vec![0, 0, 0, 4, 3],
            "Protocol error: frame length 4 is shorter than the 5-byte header",
        ),
        (vec![0, 0, 0, 5, 9], "Protocol error: unknown opcode 9"),
        (
            vec![0xff, 0xff, 0xff, 0xff, 3],
            "Protocol error: publish frame of 4294967295 bytes exceeds the limit of 1048581 bytes",
        ),
        (
            vec![0, 0, 0, 8, 3, 9, b'a', b'b'],
            "Protocol error: publish frame: the ident length runs past the end of the frame",
        ),
        (
            vec![0, 0, 0, 10, 4, 2, b'a', b'1', 0xff, 0xfe],
            "Protocol error: subscribe frame: channel is not valid UTF-8",
        ),
        (
            [&[0u8, 0, 0, 9, 1, 0][..], b"abc"].concat(),
            "Protocol error: info frame: nonce must be exactly 4 bytes, got 3",
        ),
    ];
    for (bytes, text) in cases {
        let mut c = Raw::login(s.addr, "a1", "sa1");
        c.send_raw(&bytes);
        c.expect_refusal(text);
    }
    // Before auth too.
    let mut c = Raw::connect(s.addr);
    c.send_raw(&[0, 0, 0, 2, 2]);
    c.expect_refusal("Protocol error: frame length 2 is shorter than the 5-byte header");
    // Frames a client may not send.
    let mut c = Raw::login(s.addr, "a1", "sa1");
    c.send(&Frame::Error("hi".into()));
    c.expect_refusal("Protocol error: clients may not send error frames");

    let mut ok = Raw::login(s.addr, "a1", "sa1");
    assert!(ok.barrier("sync").is_empty());
}

#[test]
fn pipelined_frames_before_eof_are_all_processed() {
    let s = two_users();
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    // Like libhpfeeds: auth and publish in one write, then close at once.
    let mut c = Raw::connect(s.addr);
    let hash = hpfriends::wire::AuthHash::compute(&c.nonce, &hpfriends::wire::Secret::new("sa1"));
    let auth = Frame::Auth {
        ident: hpfriends::wire::Ident::new("a1").unwrap(),
        hash,
    }
    .to_bytes()
    .unwrap();
    let mut all = auth.to_vec();
    for i in 0..3 {
        all.extend_from_slice(&Raw::publish_frame_as("a1", "c", format!("p{i}").as_bytes()));
    }
    c.stream.write_all(&all).unwrap();
    c.shutdown_write();
    for i in 0..3 {
        assert_eq!(sub.expect_publish().2, format!("p{i}").as_bytes());
    }
    c.expect_closed();
}

#[test]
fn keys_changed_by_the_cli_apply_to_the_running_broker() {
    let s = two_users();
    // A new key works without a restart (TestServer::key waits for it).
    s.key("bob", "b2", "sb2", &["sync"], &["sync"]);
    let mut live = Raw::login(s.addr, "b2", "sb2");
    assert!(live.barrier("sync").is_empty());
    // Removing it closes its live session with a clear error.
    s.cli_ok(&["authkey", "rm", "b2"]);
    assert_eq!(live.expect_error(), "Authkey revoked or disabled, ident=b2");
    live.expect_closed();
    Raw::login(s.addr, "b2", "sb2").expect_refusal("Authentication failed for b2");

    // A channel taken off a live key's subscribe list: `accessfail`, the connection stays.
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    s.cli_ok(&["authkey", "set", "a2", "--publish", "sync", "--subscribe", "sync"]);
    assert_eq!(sub.expect_error(), "accessfail: c");
    assert!(sub.barrier("sync").is_empty(), "the connection stays");
    let mut p = Raw::login(s.addr, "a1", "sa1");
    p.publish("c", b"not for a2 any more");
    p.barrier("sync");
    assert!(sub.barrier("sync").is_empty());

    // Disabling a key closes its sessions.
    s.cli_ok(&["authkey", "disable", "a2"]);
    assert_eq!(sub.expect_error(), "Authkey revoked or disabled, ident=a2");
    sub.expect_closed();

    // Disabling a user cuts all their keys; enabling restores them.
    let mut bob = Raw::login(s.addr, "b1", "sb1");
    bob.barrier("sync");
    s.cli_ok(&["user", "disable", "bob"]);
    assert_eq!(bob.expect_error(), "Authkey revoked or disabled, ident=b1");
    bob.expect_closed();
    s.cli_ok(&["user", "enable", "bob"]);
    s.wait_key("b1", "sb1");
}

#[test]
fn rotating_a_secret_ends_every_session_that_used_the_old_one() {
    // A thief holding a2's secret publishes and subscribes; the owner rotates it.
    let s = two_users();
    let mut thief_sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let mut thief_pub = Raw::login(s.addr, "a2", "sa2");
    assert!(thief_pub.barrier("sync").is_empty());
    let out = s.cli_ok(&["authkey", "rotate", "a2"]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the new secret is printed")
        .to_owned();
    // Both sessions are told and closed: the CLI answered only once that was so.
    let told = "Authkey secret changed, ident=a2: authenticate again with the new secret";
    assert_eq!(thief_sub.expect_error_past_publishes(), told);
    thief_sub.expect_closed();
    assert_eq!(thief_pub.expect_error_past_publishes(), told);
    thief_pub.expect_closed();
    // Nothing published after the answer reaches the old secret; the new one works.
    Raw::login(s.addr, "a2", "sa2").expect_refusal("Authentication failed for a2");
    let mut owner = Raw::login(s.addr, "a2", &secret);
    assert!(owner.barrier("sync").is_empty());
    // Other keys of the same user are untouched.
    let mut other = Raw::login(s.addr, "a1", "sa1");
    assert!(other.barrier("sync").is_empty());
}

#[test]
fn two_hundred_concurrent_clients() {
    let s = TestServer::start();
    s.user("alice");
    s.key("alice", "k", "s", &["load", "sync"], &["load", "sync"]);
    const CLIENTS: usize = 200;
    const EACH: usize = 5;
    let ready = Arc::new(Barrier::new(CLIENTS));
    let addr = s.addr;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                let mut c = Raw::login(addr, "k", "s");
                c.subscribe("load");
                c.barrier("sync");
                ready.wait();
                for i in 0..EACH {
                    c.publish("load", format!("{n}:{i}").as_bytes());
                }
                let mut got = 0;
                while got < CLIENTS * EACH {
                    let (_, ch, _) = c.expect_publish();
                    if ch == "load" {
                        got += 1;
                    }
                }
                got
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), CLIENTS * EACH);
    }
}

#[test]
fn with_disconnect_a_stalled_subscriber_does_not_slow_the_others() {
    // A 1 MiB outbox; 20 MB are published, far more than it and the kernel buffers hold.
    // (Backpressure, the default, is tested in tests/backpressure.rs.)
    let s = TestServer::start_with(
        &[],
        &[
            ("HPFRIENDS_OUTBOX_BYTES", "1048576"),
            // An outbox must hold one largest frame: 5 + max_payload.
            ("HPFRIENDS_MAX_PAYLOAD", "1048000"),
            ("HPFRIENDS_SLOW_CONSUMER", "disconnect"),
        ],
    );
    s.user("alice");
    s.key("alice", "k", "s", &["c", "sync"], &["c", "sync"]);
    let mut stalled = Raw::login(s.addr, "k", "s");
    socket2::SockRef::from(&stalled.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    stalled.subscribe("c");
    stalled.barrier("sync");
    let mut fast = Raw::live_subscriber(s.addr, "k", "s", "c");
    let mut p = Raw::login(s.addr, "k", "s");
    let payload = vec![b'x'; 1024];
    const N: usize = 20_000;
    let received = Arc::new(AtomicUsize::new(0));
    let reader = {
        let received = Arc::clone(&received);
        thread::spawn(move || {
            for _ in 0..N {
                assert_eq!(fast.expect_publish().2.len(), 1024);
                received.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for sent in 0..N {
        // Keep the fast subscriber within 256 KiB of the publisher: it keeps up by design,
        // so only the stalled one can fill its outbox.
        wait_for("the fast subscriber to keep up", Duration::from_secs(30), || {
            (sent - received.load(Ordering::Relaxed) < 256).then_some(())
        });
        p.publish("c", &payload);
    }
    reader.join().unwrap();
    // The stalled one was cut off (policy: disconnect) and the broker said so.
    wait_for("the slow-consumer log line", Duration::from_secs(10), || {
        s.log().contains("slow consumer").then_some(())
    });
    // What it still reads is what was in flight; then the connection is reset.
    let mut in_flight = 0;
    loop {
        match stalled.next(Duration::from_secs(10)) {
            Event::Closed => break,
            Event::Frame(_) => in_flight += 1,
            Event::Quiet => panic!("the stalled subscriber was not disconnected"),
        }
    }
    assert!(
        in_flight < N,
        "it was cut off before the end ({in_flight} of {N})"
    );
}

#[test]
fn auth_timeout_and_connection_limits() {
    let s = TestServer::start_with(
        &[],
        &[
            ("HPFRIENDS_AUTH_TIMEOUT_SECS", "1"),
            ("HPFRIENDS_MAX_CONNECTIONS_PER_IP", "3"),
        ],
    );
    let mut idle = Raw::connect(s.addr);
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let mut refused = TcpStream::connect(s.addr).unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut refused, &mut buf).unwrap();
    let frame = Frame::decode(&buf, &hpfriends::wire::Limits::default())
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(
        frame,
        Frame::Error("Too many connections from your address; close some and try again".into())
    );
    drop(held);
    assert_eq!(idle.expect_error(), "Authentication timeout: no AUTH within 1 s");
    idle.expect_closed();
}

#[test]
fn shutdown_flushes_what_is_queued() {
    let mut s = TestServer::start_with(&[], &[("HPFRIENDS_SHUTDOWN_GRACE_SECS", "30")]);
    s.user("alice");
    s.key("alice", "k", "s", &["c", "sync"], &["c", "sync"]);
    let mut sub = Raw::live_subscriber(s.addr, "k", "s", "c");
    // 12 MB while the subscriber does not read: more than the kernel's socket buffers hold,
    // less than its 16 MiB outbox, so part of it waits in the outbox at shutdown.
    let mut p = Raw::login(s.addr, "k", "s");
    const N: usize = 12_000;
    for i in 0..N {
        p.publish("c", format!("{i:0>1000}").as_bytes());
    }
    p.barrier("sync");
    let stopper = thread::spawn(move || {
        let status = s.stop();
        (status, s)
    });
    for i in 0..N {
        assert_eq!(sub.expect_publish().2, format!("{i:0>1000}").as_bytes());
    }
    sub.expect_closed();
    let (status, _s) = stopper.join().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_closes_sessions_cleanly_and_exits_zero() {
    let mut s = two_users();
    let mut sub = Raw::live_subscriber(s.addr, "a2", "sa2", "c");
    let status = s.stop();
    assert!(status.success(), "{status}");
    sub.expect_closed();
    assert!(s.log().contains("stopped:"));
}
