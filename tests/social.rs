//! The researchers' story over real TCP, with the PyPI hpfeeds 3.1.0 client as subscriber:
//! delivery follows shares, groups and redistribution, and every change reaches live
//! connections without reconnecting.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::python::{python, script};
use common::{Raw, TestServer};
use serde_json::Value;

const CH: &str = "dionaea.capture";

/// A long-lived PyPI hpfeeds subscriber and the messages it prints.
struct PySub {
    child: Child,
    lines: Receiver<Value>,
    /// Marker publisher: a key of the same user, whose own data the subscriber receives.
    marker: Raw,
}

impl PySub {
    fn start(s: &TestServer, ident: &str, secret: &str, marker: Raw) -> Option<PySub> {
        let py = python()?;
        let port = s.addr.port().to_string();
        let mut child = Command::new(py)
            .arg(script())
            .args(["stream", "127.0.0.1", &port, ident, secret, CH])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut sub = PySub { child, lines, marker };
        sub.sync(); // the subscription is live once a marker comes through
        Some(sub)
    }

    /// Publishes a marker as the subscriber's own user until it arrives; returns the
    /// (ident, payload) of every other message received before it. Publishes routed before
    /// this call are either among them or were never going to arrive.
    fn sync(&mut self) -> Vec<(String, String)> {
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).unwrap();
        let marker = format!("mark-{}", hex::encode(nonce));
        let mut before = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.marker.publish(CH, marker.as_bytes());
            let resend = Instant::now() + Duration::from_millis(300);
            while Instant::now() < resend {
                let Ok(v) = self.lines.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                assert!(v.get("error").is_none(), "subscriber got an error: {v}");
                let payload =
                    String::from_utf8(hex::decode(v["payload"].as_str().unwrap()).unwrap()).unwrap();
                if payload == marker {
                    return before;
                }
                if !payload.starts_with("mark-") {
                    before.push((v["ident"].as_str().unwrap().to_owned(), payload));
                }
            }
            assert!(Instant::now() < deadline, "the marker never arrived");
        }
    }

    /// Payloads received from `ident` before the next marker.
    fn from(&mut self, ident: &str) -> Vec<String> {
        self.sync()
            .into_iter()
            .filter(|(i, _)| i == ident)
            .map(|(_, p)| p)
            .collect()
    }
}

impl Drop for PySub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sensor: publishes on the channel, and can wait until the broker has routed what it sent.
struct Sensor(Raw);

impl Sensor {
    fn publish(&mut self, payload: &str) {
        self.0.publish(CH, payload.as_bytes());
        self.0.barrier("sync");
    }
}

/// Publishes `payload` from `sensor` until `sub` receives it (a change made with the CLI
/// reaches the broker at its next poll).
fn until_received(sub: &mut PySub, sensor: &mut Sensor, ident: &str, payload: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sensor.publish(payload);
        if sub.from(ident).iter().any(|p| p == payload) {
            return;
        }
        assert!(Instant::now() < deadline, "{payload} from {ident} never arrived");
    }
}

#[test]
fn the_researchers_story() {
    let s = TestServer::start();
    for u in ["alice", "bob", "carol", "dave", "erin"] {
        s.user(u);
    }
    s.key("alice", "a-sensor", "sa", &[CH, "sync"], &["sync"]);
    s.key("carol", "c-sensor", "sc", &[CH, "sync"], &["sync"]);
    for (user, k) in [("bob", "b"), ("dave", "d"), ("erin", "e")] {
        s.key(user, &format!("{k}-sub"), "secret", &[], &[CH]);
        s.key(user, &format!("{k}-mark"), "secret", &[CH], &[]);
    }
    let Some(mut bob) = PySub::start(&s, "b-sub", "secret", Raw::login(s.addr, "b-mark", "secret")) else {
        return;
    };
    let mut alice = Sensor(Raw::login(s.addr, "a-sensor", "sa"));
    let mut carol = Sensor(Raw::login(s.addr, "c-sensor", "sc"));

    // Nothing flows between strangers.
    alice.publish("a-before-share");
    assert!(bob.from("a-sensor").is_empty());

    // alice offers bob a share; nothing until bob accepts; then it flows on the same connection.
    assert_eq!(
        s.cli_ok(&[
            "share",
            "offer",
            "--as",
            "alice",
            "--channel",
            CH,
            "--to-user",
            "bob",
            "--onward"
        ])
        .trim(),
        format!("share 1 ({CH}, own) offered")
    );
    // Changes apply in order: once a later one is live, the offer has been applied too,
    // and must not flow.
    s.key("alice", "a-probe", "sp", &[], &[]);
    alice.publish("a-offered");
    assert!(bob.from("a-sensor").is_empty());
    // The answer names the keys that receive it (b-mark publishes only).
    let out = s.cli_ok(&["share", "accept", "1", "--as", "bob"]);
    assert_eq!(
        out.trim(),
        format!("share 1 accepted: {CH} reaches bob's key(s) b-sub now")
    );
    until_received(&mut bob, &mut alice, "a-sensor", "a-accepted");

    // carol publishes on the same channel: bob gets none of it.
    carol.publish("c-1");
    alice.publish("a-2");
    assert_eq!(bob.from("c-sensor"), Vec::<String>::new());

    // A group: bob owns "trusted" and invites dave; alice shares with the group.
    s.cli_ok(&["group", "create", "trusted", "--as", "bob"]);
    s.cli_ok(&["group", "invite", "trusted", "dave", "--as", "bob"]);
    s.cli_ok(&[
        "share",
        "offer",
        "--as",
        "alice",
        "--channel",
        CH,
        "--to-group",
        "trusted",
    ]);
    s.cli_ok(&["share", "accept", "2", "--as", "bob"]);
    let Some(mut dave) = PySub::start(&s, "d-sub", "secret", Raw::login(s.addr, "d-mark", "secret")) else {
        return;
    };
    alice.publish("a-invited");
    assert!(
        dave.from("a-sensor").is_empty(),
        "an invitation alone carries nothing"
    );
    let out = s.cli_ok(&["group", "accept", "trusted", "--as", "dave"]);
    assert!(
        out.contains(&format!("{CH} reaches dave's key(s) d-sub now")),
        "{out}"
    );
    until_received(&mut dave, &mut alice, "a-sensor", "a-joined");

    // bob redistributes to erin: erin receives alice's data (and bob's own), not carol's.
    s.cli_ok(&[
        "share",
        "offer",
        "--as",
        "bob",
        "--channel",
        CH,
        "--to-user",
        "erin",
        "--redistribute",
    ]);
    s.cli_ok(&["share", "accept", "3", "--as", "erin"]);
    let Some(mut erin) = PySub::start(&s, "e-sub", "secret", Raw::login(s.addr, "e-mark", "secret")) else {
        return;
    };
    until_received(&mut erin, &mut alice, "a-sensor", "a-redistributed");
    carol.publish("c-2");
    assert!(erin.from("c-sensor").is_empty());
    let why = s.cli_ok(&["acl", "show", "e-sub"]);
    assert!(
        why.contains("share 1 to user bob, redistributed bob -> erin"),
        "{why}"
    );

    // dave leaves the group: he stops receiving, on the same connection.
    s.cli_ok(&["group", "leave", "trusted", "--as", "dave"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !{
        alice.publish("a-after-leave");
        dave.from("a-sensor").is_empty()
    } {
        assert!(Instant::now() < deadline, "dave still receives after leaving");
    }

    // alice revokes both shares reaching bob: bob (and erin through him) stop receiving
    // alice's messages on their live connections. Measure how soon.
    s.cli_ok(&["share", "revoke", "2", "--as", "alice"]);
    alice.publish("a-still-direct");
    assert!(!bob.from("a-sensor").is_empty(), "the direct share still carries");
    let revoked_at = Instant::now();
    s.cli_ok(&["share", "revoke", "1", "--as", "alice"]);
    let mut sent = Vec::new();
    while revoked_at.elapsed() < Duration::from_millis(600) {
        let tag = format!("late-{}", revoked_at.elapsed().as_millis());
        alice.publish(&tag);
        sent.push(tag);
        std::thread::sleep(Duration::from_millis(5));
    }
    let got: HashSet<String> = bob.from("a-sensor").into_iter().collect();
    let last_ms = sent
        .iter()
        .filter(|t| got.contains(*t))
        .filter_map(|t| t.strip_prefix("late-")?.parse::<u64>().ok())
        .max();
    eprintln!(
        "revocation: last message delivered {last_ms:?} ms after the revoke command returned \
         ({} of {} late messages delivered)",
        got.len(),
        sent.len()
    );
    assert!(
        !got.contains(sent.last().unwrap()),
        "bob still receives alice's data"
    );
    erin.sync(); // what reached erin before the revocation
    alice.publish("a-after-revoke");
    assert!(bob.from("a-sensor").is_empty());
    assert!(erin.from("a-sensor").is_empty());
    // bob's own data still reaches erin through the redistribute share. (It travels on
    // another connection than erin's markers, so it may come after the first one.)
    bob.marker.publish(CH, b"b-own");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !erin.sync().iter().any(|(i, p)| i == "b-mark" && p == "b-own") {
        assert!(Instant::now() < deadline, "bob's own data no longer reaches erin");
    }
}

/// Consent for every source and the sharer's say over onward travel, over real TCP with the
/// PyPI subscriber: a public offer flows only to those who take it up, a block cuts a user
/// off by every path at once, and redistribution carries a sharer's data only where the
/// sharer allowed it. Every CLI change is live when the command returns (it waits for the
/// running server), so a message published right after it is never delivered.
#[test]
fn consent_blocks_and_onward_travel() {
    let s = TestServer::start();
    for u in ["alice", "bob", "carol", "mallory"] {
        s.user(u);
    }
    s.key("alice", "a-sensor", "sa", &[CH, "sync"], &["sync"]);
    s.key("mallory", "m-sensor", "sm", &[CH, "sync"], &["sync"]);
    for (user, k) in [("bob", "b"), ("carol", "c")] {
        s.key(user, &format!("{k}-sub"), "secret", &[], &[CH]);
        s.key(user, &format!("{k}-mark"), "secret", &[CH], &[]);
    }
    let Some(mut bob) = PySub::start(&s, "b-sub", "secret", Raw::login(s.addr, "b-mark", "secret")) else {
        return;
    };
    let Some(mut carol) = PySub::start(&s, "c-sub", "secret", Raw::login(s.addr, "c-mark", "secret")) else {
        return;
    };
    let mut alice = Sensor(Raw::login(s.addr, "a-sensor", "sa"));
    let mut mallory = Sensor(Raw::login(s.addr, "m-sensor", "sm"));
    let offer = |args: &[&str]| -> String {
        let out = s.cli_ok(&[&["share", "offer", "--channel", CH][..], args].concat());
        out.split_whitespace().nth(1).unwrap().to_owned()
    };

    // A new user's public offer reaches nobody who did not take it up.
    let public = offer(&["--as", "mallory", "--to-everyone"]);
    mallory.publish("m-fabricated");
    assert!(
        bob.from("m-sensor").is_empty(),
        "a public offer flowed without consent"
    );
    assert!(carol.from("m-sensor").is_empty());
    s.cli_ok(&["share", "follow", &public, "--as", "bob"]);
    mallory.publish("m-taken-up");
    assert_eq!(bob.from("m-sensor"), vec!["m-taken-up".to_owned()]);
    assert!(carol.from("m-sensor").is_empty(), "only bob took it up");

    // bob redistributes to carol; mallory's public offer does not allow onward travel.
    let b2c = offer(&["--as", "bob", "--to-user", "carol", "--redistribute"]);
    s.cli_ok(&["share", "accept", &b2c, "--as", "carol"]);
    mallory.publish("m-via-bob");
    assert_eq!(bob.from("m-sensor"), vec!["m-via-bob".to_owned()]);
    assert!(
        carol.from("m-sensor").is_empty(),
        "travelled on without the sharer's leave"
    );

    // alice shares with bob without onward: carol gets bob's own data, not alice's.
    let a2b = offer(&["--as", "alice", "--to-user", "bob"]);
    s.cli_ok(&["share", "accept", &a2b, "--as", "bob"]);
    alice.publish("a-1");
    assert_eq!(bob.from("a-sensor"), vec!["a-1".to_owned()]);
    assert!(carol.from("a-sensor").is_empty());
    bob.marker.publish(CH, b"b-own");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !carol.sync().iter().any(|(i, p)| i == "b-mark" && p == "b-own") {
        assert!(Instant::now() < deadline, "bob's own data does not reach carol");
    }
    let reach = s.cli_ok(&["acl", "reach", "--as", "alice"]);
    assert!(reach.contains("bob") && !reach.contains("carol"), "{reach}");

    // alice re-offers with onward: now carol receives alice's data through bob, and alice
    // sees it in her reach.
    s.cli_ok(&["share", "revoke", &a2b, "--as", "alice"]);
    let a2b = offer(&["--as", "alice", "--to-user", "bob", "--onward"]);
    s.cli_ok(&["share", "accept", &a2b, "--as", "bob"]);
    alice.publish("a-onward");
    assert_eq!(carol.from("a-sensor"), vec!["a-onward".to_owned()]);
    assert_eq!(bob.from("a-sensor"), vec!["a-onward".to_owned()]);
    let reach = s.cli_ok(&["acl", "reach", "--as", "alice", "--json"]);
    assert!(
        reach.contains(r#""through":["bob"]"#) && reach.contains(r#""user":"carol""#),
        "{reach}"
    );
    assert!(reach.contains(r#""via":"your share to bob""#), "{reach}");
    let reach = s.cli_ok(&["acl", "reach", "--as", "alice"]);
    assert!(
        reach.contains(&format!("through bob, from your share to bob (share {a2b})")),
        "{reach}"
    );

    // carol blocks alice: nothing of alice's reaches carol, by any path, from the moment
    // the command returns; bob still receives.
    s.cli_ok(&["user", "block", "alice", "--as", "carol"]);
    alice.publish("a-after-block");
    assert!(
        carol.from("a-sensor").is_empty(),
        "delivered after the block answered"
    );
    assert_eq!(bob.from("a-sensor"), vec!["a-after-block".to_owned()]);
    // A new offer from alice to carol is declined on the spot.
    let refused = s.cli_ok(&[
        "share",
        "offer",
        "--channel",
        CH,
        "--as",
        "alice",
        "--to-user",
        "carol",
    ]);
    assert!(refused.trim().ends_with("declined"), "{refused}");

    // Revoked means revoked: the message published right after the command returns is
    // never delivered, on the same connection.
    s.cli_ok(&["share", "revoke", &a2b, "--as", "alice"]);
    alice.publish("a-right-after-revoke");
    assert!(
        bob.from("a-sensor").is_empty(),
        "delivered after the revoke answered"
    );
    s.cli_ok(&["share", "unfollow", &public, "--as", "bob"]);
    mallory.publish("m-right-after-unfollow");
    assert!(bob.from("m-sensor").is_empty());
}

/// `METHOD path` on the website with a bearer token, over real TCP; the status code.
fn api(web: std::net::SocketAddr, method: &str, path: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(web).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The API's answer means the change is live: a message published right after a revoke or
/// a block made through `/api/v1` is never delivered (PyPI 3.1.0 subscriber, real TCP).
#[test]
fn api_changes_are_live_when_they_answer() {
    let s = TestServer::start();
    for u in ["alice", "bob"] {
        s.user(u);
    }
    s.key("alice", "a-sensor", "sa", &[CH, "sync"], &["sync"]);
    s.key("bob", "b-sub", "secret", &[], &[CH]);
    s.key("bob", "b-mark", "secret", &[CH], &[]);
    let Some(mut bob) = PySub::start(&s, "b-sub", "secret", Raw::login(s.addr, "b-mark", "secret")) else {
        return;
    };
    let mut alice = Sensor(Raw::login(s.addr, "a-sensor", "sa"));
    let store = hpfriends::store::Store::open(s.db().url()).unwrap();
    let token = |name: &str| {
        let u = store.user_by_name(name).unwrap().unwrap();
        store
            .create_token(hpfriends::store::models::accounts::TokenKind::Api, u.id, "", None)
            .unwrap()
    };
    let (alice_t, bob_t) = (token("alice"), token("bob"));
    let web = s.web.expect("the website runs");
    let share = |s: &TestServer| -> String {
        let out = s.cli_ok(&[
            "share",
            "offer",
            "--channel",
            CH,
            "--as",
            "alice",
            "--to-user",
            "bob",
        ]);
        let id = out.split_whitespace().nth(1).unwrap().to_owned();
        s.cli_ok(&["share", "accept", &id, "--as", "bob"]);
        id
    };

    let id = share(&s);
    alice.publish("a-shared");
    assert_eq!(bob.from("a-sensor"), vec!["a-shared".to_owned()]);
    assert_eq!(
        api(web, "POST", &format!("/api/v1/shares/{id}/revoke"), &alice_t),
        200
    );
    alice.publish("a-right-after-api-revoke");
    assert!(
        bob.from("a-sensor").is_empty(),
        "delivered after the API answered"
    );

    share(&s);
    alice.publish("a-shared-again");
    assert_eq!(bob.from("a-sensor"), vec!["a-shared-again".to_owned()]);
    assert_eq!(api(web, "PUT", "/api/v1/blocks/alice", &bob_t), 200);
    alice.publish("a-right-after-api-block");
    assert!(
        bob.from("a-sensor").is_empty(),
        "delivered after the API block answered"
    );
}
