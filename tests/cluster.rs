//! Several nodes serving one community: three `hpfriends serve` processes started by
//! `deploy/local-cluster.sh`, on one scratch PostgreSQL database and the machine's NATS
//! server (127.0.0.1:4222). Publishes cross
//! nodes in order and once, by the same ACL as on one node, with PyPI hpfeeds 3.1.0 clients;
//! a share flows across nodes only once accepted and stops before a revoke made on another
//! node's website answers; a node that loses NATS serves its own clients and rejoins.
//!
//! Under `CI=true` an unreachable PostgreSQL or NATS fails these tests; locally they skip
//! with a loud message (and are counted as skipped).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::Browser;
use common::pki::{Pki, pki};
use common::python::{python, record_skip, script};
use common::raw::Event;
use common::{Db, Raw, wait_for};
use hpfriends::store::scratch::ScratchDb;
use serde_json::Value;
use tempfile::TempDir;

/// The PostgreSQL server the nodes share (a fresh database on it per test).
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/";
/// The NATS server of the machine.
const NATS: &str = "127.0.0.1:4222";

/// Whether PostgreSQL and NATS answer; under `CI=true` a missing one fails the test.
fn services() -> bool {
    let missing: Vec<&str> = [("PostgreSQL", "127.0.0.1:5432"), ("NATS", NATS)]
        .into_iter()
        .filter(|(_, addr)| {
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err()
        })
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "cluster tests need {} on 127.0.0.1",
        missing.join(" and ")
    );
    eprintln!(
        "\n!!!!!!!! SKIPPING CLUSTER TEST: {} not reachable on 127.0.0.1\n",
        missing.join(" and ")
    );
    record_skip();
    false
}

/// One node of a cluster: its endpoints and its log.
struct Node {
    addr: SocketAddr,
    web: Option<SocketAddr>,
    dir: PathBuf,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// Three nodes on one scratch database, started and stopped by `deploy/local-cluster.sh`
/// itself (on free ports, in a directory of the test's, with NATS subjects of its own).
struct Cluster {
    nodes: Vec<Node>,
    dir: TempDir,
    prefix: String,
    db: Db,
}

impl Cluster {
    /// Node `i` (1-3) reaches NATS at `url` for each `(i, url)` of `nats`, and PostgreSQL
    /// at `addr` for each `(i, addr)` of `postgres`; the others straight.
    /// Every node gets the settings of `env`.
    fn start(nats: &[(usize, String)], postgres: &[(usize, SocketAddr)], env: &[(&str, &str)]) -> Cluster {
        let db = Db::Scratch(Arc::new(ScratchDb::on(POSTGRES).unwrap()));
        // Subjects of this cluster alone: tests (and communities) share the NATS server.
        let mut tag = [0u8; 6];
        getrandom::getrandom(&mut tag).unwrap();
        let mut c = Cluster {
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("hpftest.{}", hex::encode(tag)),
            db,
        };
        let mut start = c.script("start");
        for (i, url) in nats {
            start.env(format!("CLUSTER_NATS_{i}"), url);
        }
        for (i, addr) in postgres {
            let url = c.db.url().replacen("127.0.0.1:5432", &addr.to_string(), 1);
            assert_ne!(url, c.db.url());
            start.env(format!("CLUSTER_DB_{i}"), url);
        }
        start.envs(env.iter().copied());
        let out = start.output().unwrap();
        assert!(
            out.status.success(),
            "deploy/local-cluster.sh start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        c.nodes = (1..=3)
            .map(|i| {
                let dir = c.dir.path().join(format!("node{i}"));
                let ready = std::fs::read_to_string(dir.join("out")).unwrap();
                let after = |marker: &str| -> Option<SocketAddr> {
                    let rest = ready.split(marker).nth(1)?;
                    rest.split_whitespace().next()?.trim_end_matches(',').parse().ok()
                };
                Node {
                    addr: after("hpfeeds tcp://").expect(&ready),
                    web: after("website http://"),
                    dir,
                }
            })
            .collect();
        c
    }

    /// The script with this cluster's settings.
    fn script(&self, what: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local-cluster.sh"))
            .arg(what)
            .env("HPFRIENDS_BIN", common::bin())
            .env("CLUSTER_DB", self.db.url())
            .env("CLUSTER_NATS", format!("nats://{NATS}"))
            .env("CLUSTER_PREFIX", &self.prefix)
            .env("CLUSTER_DIR", self.dir.path())
            .env("CLUSTER_PORTS", "0 0 0")
            .env("CLUSTER_WEB_PORTS", "0 0 0")
            .env("RUST_LOG", "info")
            // Tests poll for keys with failed auths.
            .env("HPFRIENDS_AUTH_FREE_FAILURES", "1000000")
            .stdin(Stdio::null());
        cmd
    }

    /// Three nodes straight on NATS.
    fn of_three() -> Cluster {
        Self::start(&[], &[], &[])
    }

    /// Runs the CLI on the shared database; a changing command returns once every node
    /// applied it.
    fn cli(&self, args: &[&str]) -> String {
        let o = common::cli_with_db(&self.db, args);
        assert!(
            o.status.success(),
            "hpfriends {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn user(&self, name: &str) {
        self.cli(&["user", "add", name, "--email", &format!("{name}@example.org")]);
    }

    fn key(&self, owner: &str, ident: &str, publish: &str, subscribe: &str) {
        let mut args = vec![
            "authkey", "add", "--owner", owner, "--ident", ident, "--secret", "s3cret",
        ];
        if !publish.is_empty() {
            args.extend(["--publish", publish]);
        }
        if !subscribe.is_empty() {
            args.extend(["--subscribe", subscribe]);
        }
        self.cli(&args);
    }

    /// Offers `channel` from `from` to `to` and has `to` accept it; the share's id.
    fn share(&self, from: &str, channel: &str, to: &str) -> String {
        let id = self.offer(from, channel, to);
        self.cli(&["share", "accept", &id, "--as", to]);
        id
    }

    fn offer(&self, from: &str, channel: &str, to: &str) -> String {
        let out = self.cli(&[
            "share",
            "offer",
            "--channel",
            channel,
            "--to-user",
            to,
            "--as",
            from,
        ]);
        out.split_whitespace().nth(1).unwrap().to_owned()
    }

    fn login(&self, node: usize, ident: &str) -> Raw {
        Raw::login(self.nodes[node].addr, ident, "s3cret")
    }

    /// A user with a website account (password `password`) and an API token: node 1's
    /// website and the token's `Authorization` header.
    fn account(&self, name: &str, password: &str) -> (SocketAddr, String) {
        (self.nodes[0].web.unwrap(), self.bearer(name, password))
    }

    /// A user with a website account (password `password`): an API token's
    /// `Authorization` header.
    fn bearer(&self, name: &str, password: &str) -> String {
        let store = hpfriends::store::Store::open(self.db.url()).unwrap();
        let hash = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(hpfriends::web::password::hash(password.to_owned()))
            .unwrap();
        let user = store
            .create_account(name, &format!("{name}@example.org"), &hash)
            .unwrap();
        store.confirm_email(user.id, &user.email).unwrap();
        let token = store
            .create_token(
                hpfriends::store::models::accounts::TokenKind::Api,
                user.id,
                "",
                None,
            )
            .unwrap();
        format!("Authorization: Bearer {token}")
    }

    /// A session of `ident` on `node` subscribed to `channel`, and live: its own marker on
    /// `sync` came back with nothing before it.
    fn subscriber(&self, node: usize, ident: &str, channel: &str) -> Raw {
        let mut r = self.login(node, ident);
        r.subscribe(channel);
        let early = r.barrier("sync");
        assert!(early.is_empty(), "{ident} on node {}: {early:?}", node + 1);
        r
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, n) in self.nodes.iter().enumerate() {
                let log = n.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- node {} log (last 40 lines, newest first) ----", i + 1);
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
        // Stopped through the script too (SIGTERM, then SIGKILL after 20 s), before the
        // scratch database goes.
        let _ = self.script("stop").stdout(Stdio::null()).status();
        // The JetStream stream of this cluster's prefix goes too (on the machine's NATS;
        // a test's own server takes its store with it).
        delete_stream(&format!("nats://{NATS}"), &self.prefix);
    }
}

/// Deletes the backplane's stream of `prefix` on the NATS server at `url`, if there is one.
fn delete_stream(url: &str, prefix: &str) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    rt.block_on(async {
        let connected = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url)).await;
        if let Ok(Ok(client)) = connected {
            let js = async_nats::jetstream::new(client);
            let name = hpfriends::cluster::jetstream::stream_name(prefix);
            let _ = tokio::time::timeout(Duration::from_secs(5), js.delete_stream(&name)).await;
        }
    });
}

/// A PyPI hpfeeds 3.1.0 subscriber on `node` printing the first `count` messages after its
/// subscription is live (its own marker came back).
fn python_sub(
    c: &Cluster,
    node: usize,
    ident: &str,
    channel: &str,
    count: usize,
) -> Option<(Child, std::sync::mpsc::Receiver<Value>)> {
    let py = python()?;
    let port = c.nodes[node].addr.port().to_string();
    let mut child = Command::new(py)
        .arg(script())
        .args([
            "sub",
            "127.0.0.1",
            &port,
            ident,
            "s3cret",
            channel,
            &count.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { return };
            if tx.send(serde_json::from_str::<Value>(&l).unwrap()).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first["ready"], true, "{first}");
    Some((child, rx))
}

fn python_pub(c: &Cluster, node: usize, ident: &str, channel: &str, payloads: &[String]) {
    let py = python().unwrap();
    let port = c.nodes[node].addr.port().to_string();
    let hex: Vec<String> = payloads.iter().map(hex::encode).collect();
    let status = Command::new(py)
        .arg(script())
        .args(["pub", "127.0.0.1", &port, ident, "s3cret", channel])
        .args(&hex)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The payloads a Python subscriber printed, as text, until it exits.
fn received(mut child: Child, rx: &std::sync::mpsc::Receiver<Value>, count: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        let v = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            panic!("only {} of {count} messages arrived: {got:?}", got.len());
        });
        assert!(v.get("error").is_none(), "subscriber got an error: {v}");
        let payload = String::from_utf8(hex::decode(v["payload"].as_str().unwrap()).unwrap()).unwrap();
        got.push((v["ident"].as_str().unwrap().to_owned(), payload));
    }
    let status = wait_for("the python subscriber to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    assert!(status.success());
    got
}

#[test]
fn a_publisher_on_one_node_reaches_subscribers_on_the_others_in_order_and_once() {
    if !services() || python().is_none() {
        return;
    }
    let c = Cluster::of_three();
    for u in ["alice", "bob", "carol"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    // Subscribers also publish on c: their own marker tells them they are live.
    c.key("alice", "a-reader", "c", "c");
    c.key("bob", "b-reader", "c", "c");
    c.key("carol", "c-reader", "c", "c");
    c.share("alice", "c", "bob");
    c.share("alice", "c", "carol");

    const N: usize = 200;
    let mut payloads: Vec<String> = (0..N).map(|i| format!("m{i:04}")).collect();
    payloads.push("end".into());
    // Alice's own reader on the publisher's node first: its marker is alice's data, which
    // bob and carol would receive too if they were already listening.
    let local = python_sub(&c, 0, "a-reader", "c", N + 1).unwrap();
    let bob = python_sub(&c, 1, "b-reader", "c", N + 1).unwrap();
    let carol = python_sub(&c, 2, "c-reader", "c", N + 1).unwrap();
    python_pub(&c, 0, "a-sensor", "c", &payloads);
    let expected: Vec<(String, String)> = payloads
        .iter()
        .map(|p| ("a-sensor".to_owned(), p.clone()))
        .collect();
    for (who, (child, rx)) in [
        ("alice on node 1", local),
        ("bob on node 2", bob),
        ("carol on node 3", carol),
    ] {
        let got = received(child, &rx, N + 1);
        assert_eq!(got, expected, "{who}: every message, in order, once");
    }
    // Each node relayed what its clients published (markers and the feed) and nothing came back.
    let log = c.nodes[0].log();
    assert!(log.contains("NATS connected"), "{log}");
}

#[test]
fn a_share_crosses_nodes_only_once_accepted_and_stops_before_a_revoke_on_another_node_answers() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    // Alice has a website account (on the shared database), to revoke through node 3.
    let password = "alice-long-passphrase";
    let store = hpfriends::store::Store::open(c.db.url()).unwrap();
    let hash = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(hpfriends::web::password::hash(password.to_owned()))
        .unwrap();
    let alice = store.create_account("alice", "alice@example.org", &hash).unwrap();
    store.confirm_email(alice.id, &alice.email).unwrap();
    for u in ["bob", "carol"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.key("carol", "c-reader", "", "c");
    c.share("alice", "c", "carol");

    // Bob (node 1) subscribes; alice publishes on node 2 while the offer is open.
    let mut bob = c.subscriber(0, "b-reader", "c");
    let mut carol = c.login(0, "c-reader");
    carol.subscribe("c");
    let mut sensor = c.login(1, "a-sensor");
    let id = c.offer("alice", "c", "bob");
    sensor.publish("c", b"while-offered");
    assert_eq!(carol.expect_publish().2, b"while-offered");
    c.cli(&["share", "accept", &id, "--as", "bob"]);
    sensor.publish("c", b"accepted");
    // One publisher, one channel: had the first crossed, it would come first.
    assert_eq!(
        bob.expect_publish().2,
        b"accepted",
        "nothing flowed before acceptance"
    );
    assert_eq!(carol.expect_publish().2, b"accepted");

    // Alice revokes on node 3's website; when the page answers, node 1 no longer routes
    // her data to bob.
    let mut browser = Browser::login(c.nodes[2].web.unwrap(), "alice", password);
    let r = browser.post_form("/shares", &format!("/shares/{id}/revoke"), &[("confirm", "yes")]);
    assert_eq!(r.status, 303, "{}", r.body);
    // Live on every node when it answered: the page says nothing of nodes behind.
    let to = r.header("location").unwrap();
    assert!(!to.contains("behind"), "{to}");
    sensor.publish("c", b"after-revoke");
    sensor.publish("c", b"probe");
    // Carol, on bob's node, gets both in order: node 1 has handled "after-revoke" by then…
    assert_eq!(carol.expect_publish().2, b"after-revoke");
    assert_eq!(carol.expect_publish().2, b"probe");
    // …and bob's outbox, read up to a marker queued after that, holds nothing of it.
    assert!(bob.barrier("sync").is_empty(), "a revoked share still delivered");
}

/// A TCP relay between a node and NATS that a test can cut and restore.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// While set, bytes are read and thrown away both ways, the sockets kept open: a
    /// silent partition (packets lost, nothing reset).
    hole: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let hole = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (to, cut2, open2, hole2) = (
            to.to_owned(),
            Arc::clone(&cut),
            Arc::clone(&open),
            Arc::clone(&hole),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    drop(client); // refused while cut
                    continue;
                }
                let Ok(server) = TcpStream::connect(&to) else {
                    continue;
                };
                open2
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Arc::clone(&hole2),
                );
                pipe(server, client, Arc::clone(&hole2));
            }
        });
        Proxy {
            addr,
            cut,
            hole,
            open,
        }
    }

    /// Loses every byte from now on, both ways, without closing anything.
    fn blackhole(&self) {
        self.hole.store(true, Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Ends a cut or a blackhole. The connections a blackhole swallowed bytes of are
    /// closed (their streams lost bytes no TCP would lose; the node had given them up after
    /// its unanswered pings), so the node comes back on a new one.
    fn restore(&self) {
        if self.hole.swap(false, Ordering::SeqCst) {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, hole: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if hole.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_node_that_loses_nats_serves_its_own_clients_and_rejoins() {
    if !services() {
        return;
    }
    let proxy = Proxy::start(NATS);
    let c = Cluster::start(&[(2, format!("nats://{}", proxy.addr))], &[], &[]);
    for u in ["alice", "bob"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("alice", "a-reader", "sync", "c,sync");
    c.key("bob", "b-sensor", "d", "");
    c.key("bob", "b-reader", "sync", "c,d,sync");
    c.key("alice", "a-d-reader", "sync", "d,sync");
    c.share("alice", "c", "bob");
    c.share("bob", "d", "alice");

    // Alice's sensor and reader on node 2 (behind the proxy), bob's reader on node 1.
    let mut sensor = c.login(1, "a-sensor");
    let mut local = c.subscriber(1, "a-reader", "c");
    let mut remote = c.subscriber(0, "b-reader", "c");
    sensor.publish("c", b"before");
    assert_eq!(local.expect_publish().2, b"before");
    assert_eq!(remote.expect_publish().2, b"before");

    // Node 2 loses NATS: its own subscriber misses nothing.
    proxy.cut();
    wait_for("node 2 to notice", Duration::from_secs(30), || {
        c.nodes[1].log().contains("NATS connection lost").then_some(())
    });
    for i in 0..50 {
        sensor.publish("c", format!("during-{i}").as_bytes());
    }
    for i in 0..50 {
        assert_eq!(
            local.expect_publish().2,
            format!("during-{i}").as_bytes(),
            "local delivery lost"
        );
    }

    // Back: node 2's traffic reaches node 1 again, and node 1's reaches node 2 (it
    // subscribed again by itself).
    proxy.restore();
    wait_for("node 2 to reconnect", Duration::from_secs(30), || {
        (c.nodes[1].log().matches("NATS connected").count() >= 2).then_some(())
    });
    let mut d_reader = c.subscriber(1, "a-d-reader", "d");
    let mut b_sensor = c.login(0, "b-sensor");
    wait_for(
        "node 1's publishes to reach node 2",
        Duration::from_secs(30),
        || {
            b_sensor.publish("d", b"from-node-1");
            match d_reader.next(Duration::from_millis(300)) {
                common::raw::Event::Frame(hpfriends::wire::Frame::Publish { payload, .. }) => {
                    (payload.as_ref() == b"from-node-1").then_some(())
                }
                _ => None,
            }
        },
    );
    sensor.publish("c", b"after");
    // What node 2 published during the outage reaches node 1 late (it waited for the
    // stream's confirmation), but every one of it, in order, once, and before "after".
    let mut seen = Vec::new();
    loop {
        let p = String::from_utf8(remote.expect_publish().2).unwrap();
        if p == "after" {
            break;
        }
        seen.push(p);
    }
    let expected: Vec<String> = (0..50).map(|i| format!("during-{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(local.expect_publish().2, b"after");
    // The outage is counted where operators look.
    let m = common::http::samples(&common::http::get(c.nodes[1].web.unwrap(), "/metrics", &[]).body);
    assert!(m["hpfriends_cluster_nats_disconnects_total"] >= 1.0, "{m:?}");
    assert!(
        (m["hpfriends_cluster_nats_connected"] - 1.0).abs() < f64::EPSILON,
        "{m:?}"
    );
    assert!(m["hpfriends_cluster_relayed_total"] >= 1.0, "{m:?}");
    assert!(m["hpfriends_cluster_remote_received_total"] >= 1.0, "{m:?}");
    assert!(m["hpfriends_cluster_subjects"] >= 2.0, "{m:?}");
}

#[test]
fn a_node_without_nats_delivers_its_own_traffic_at_full_speed() {
    if !services() {
        return;
    }
    let proxy = Proxy::start(NATS);
    let c = Cluster::start(&[(2, format!("nats://{}", proxy.addr))], &[], &[]);
    c.user("alice");
    c.key("alice", "a-sensor", "c", "");
    c.key("alice", "a-reader", "sync", "c,sync");
    let mut sensor = c.login(1, "a-sensor");
    let mut local = c.subscriber(1, "a-reader", "c");
    proxy.cut();
    wait_for("node 2 to notice", Duration::from_secs(30), || {
        c.nodes[1].log().contains("NATS connection lost").then_some(())
    });
    // More than the relay queue holds (64 MiB, 65,536 frames): once it is full, copies for
    // the other nodes are dropped and counted, and the node's own reader gets everything
    // without waiting on NATS (each publish used to wait out the stall timeout).
    const N: u32 = 70_000;
    let writer = std::thread::spawn(move || {
        let body = vec![b'x'; 1_000];
        for i in 0..N {
            let payload = [&i.to_be_bytes()[..], &body].concat();
            sensor.publish("c", &payload);
        }
        sensor
    });
    for i in 0..N {
        let (_, _, payload) = local.expect_publish();
        assert_eq!(
            u32::from_be_bytes(payload[..4].try_into().unwrap()),
            i,
            "local delivery lost or reordered"
        );
    }
    drop(writer.join().unwrap());
    let m = common::http::samples(&common::http::get(c.nodes[1].web.unwrap(), "/metrics", &[]).body);
    assert!(m["hpfriends_cluster_relay_dropped_total"] >= 1.0, "{m:?}");
    assert!(
        m["hpfriends_cluster_nats_connected"].abs() < f64::EPSILON,
        "{m:?}"
    );
}

#[test]
fn a_silent_nats_partition_is_seen_within_a_few_pings() {
    if !services() {
        return;
    }
    let proxy = Proxy::start(NATS);
    let c = Cluster::start(
        &[(2, format!("nats://{}", proxy.addr))],
        &[],
        &[("HPFRIENDS_NATS_PING_INTERVAL_SECS", "1")],
    );
    let connected = |c: &Cluster| {
        let m = common::http::samples(&common::http::get(c.nodes[1].web.unwrap(), "/metrics", &[]).body);
        m["hpfriends_cluster_nats_connected"]
    };
    wait_for("node 2 on NATS", Duration::from_secs(30), || {
        ((connected(&c) - 1.0).abs() < f64::EPSILON).then_some(())
    });
    // Packets lost, nothing reset: the link looks open. Three unanswered pings (1 s apart
    // here) and the node says so, then reconnects through the proxy's new connections
    // (which the hole keeps silent too) until the partition ends.
    proxy.blackhole();
    wait_for("node 2 to see the partition", Duration::from_secs(30), || {
        (connected(&c).abs() < f64::EPSILON).then_some(())
    });
    assert!(c.nodes[1].log().contains("NATS connection lost"));
}

/// Traffic flows both ways between node 1 and node 2 while node 2's NATS link is
/// blackholed for a few seconds (packets lost, nothing reset): once it is back, each side
/// has received every message of the other, once and in order.
#[test]
fn a_partitioned_node_loses_nothing_either_way_once_back() {
    if !services() {
        return;
    }
    let proxy = Proxy::start(NATS);
    let c = Cluster::start(
        &[(2, format!("nats://{}", proxy.addr))],
        &[],
        &[("HPFRIENDS_NATS_PING_INTERVAL_SECS", "1")],
    );
    c.user("alice");
    c.key("alice", "s1", "c1", "");
    c.key("alice", "s2", "c2", "");
    c.key("alice", "r1", "sync", "c2,sync");
    c.key("alice", "r2", "sync", "c1,sync");
    let readers = [
        (c.subscriber(0, "r1", "c2"), 1, "c2"),
        (c.subscriber(1, "r2", "c1"), 2, "c1"),
    ];
    const N: u32 = 3_000;
    let writers: Vec<_> = [(c.login(0, "s1"), "c1"), (c.login(1, "s2"), "c2")]
        .into_iter()
        .map(|(mut w, channel)| {
            std::thread::spawn(move || {
                for i in 0..N {
                    w.publish(channel, format!("{channel}-{i}").as_bytes());
                    std::thread::sleep(Duration::from_micros(1_500));
                }
                w
            })
        })
        .collect();
    let readers: Vec<_> = readers
        .into_iter()
        .map(|(mut r, node, channel)| {
            std::thread::spawn(move || {
                let mut got = Vec::with_capacity(N as usize);
                while got.len() < N as usize {
                    match r.next(Duration::from_secs(60)) {
                        common::raw::Event::Frame(hpfriends::wire::Frame::Publish {
                            payload,
                            channel: on,
                            ..
                        }) if on.as_str() == channel => {
                            got.push(String::from_utf8(payload.to_vec()).unwrap());
                        }
                        common::raw::Event::Frame(_) => {}
                        other => panic!("node {node}: {other:?} after {} messages", got.len()),
                    }
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    proxy.blackhole();
    let connected = |c: &Cluster| {
        let m = common::http::samples(&common::http::get(c.nodes[1].web.unwrap(), "/metrics", &[]).body);
        m["hpfriends_cluster_nats_connected"]
    };
    wait_for("node 2 to see the partition", Duration::from_secs(30), || {
        (connected(&c).abs() < f64::EPSILON).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    proxy.restore();
    for w in writers {
        drop(w.join().unwrap());
    }
    for ((r, channel), node) in readers.into_iter().zip(["c2", "c1"]).zip([1, 2]) {
        let got = r.join().unwrap();
        let expected: Vec<String> = (0..N).map(|i| format!("{channel}-{i}")).collect();
        assert!(
            got == expected,
            "node {node}: first difference at {:?}: {:?}",
            got.iter().zip(&expected).position(|(a, b)| a != b),
            got.iter().zip(&expected).find(|(a, b)| a != b)
        );
    }
    for (i, n) in c.nodes.iter().take(2).enumerate() {
        let m = common::http::samples(&common::http::get(n.web.unwrap(), "/metrics", &[]).body);
        assert_eq!(m["hpfriends_cluster_remote_lost_total"], 0.0, "node {}", i + 1);
        assert_eq!(m["hpfriends_cluster_relay_dropped_total"], 0.0, "node {}", i + 1);
    }
}

#[test]
fn a_database_that_stops_answering_gets_the_api_a_503_not_a_hang() {
    if !services() {
        return;
    }
    let proxy = Proxy::start("127.0.0.1:5432");
    let c = Cluster::start(&[], &[(2, proxy.addr)], &[]);
    let store = hpfriends::store::Store::open(c.db.url()).unwrap();
    let alice = store
        .create_account("alice", "alice@example.org", "not-a-hash")
        .unwrap();
    let token = store
        .create_token(
            hpfriends::store::models::accounts::TokenKind::Api,
            alice.id,
            "",
            None,
        )
        .unwrap();
    let bearer = format!("Authorization: Bearer {token}");
    let web = c.nodes[1].web.unwrap();
    assert_eq!(common::http::get(web, "/api/v1/me", &[&bearer]).status, 200);
    // The bytes to and from the database are swallowed, the connection stays open (TCP
    // timeouts never fire: the proxy acknowledges everything): a call is given up after
    // DB_CALL_TIMEOUT and answered 503, not left hanging for the outage.
    proxy.blackhole();
    let started = std::time::Instant::now();
    let r = common::http::get(web, "/api/v1/me", &[&bearer]);
    eprintln!(
        "API answer {} after {:?} with the database not answering",
        r.status,
        started.elapsed()
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("database is unavailable"), "{}", r.body);
    assert!(c.nodes[1].log().contains("did not answer within"));
    // Its blocking threads stay with the swallowed calls: stopped hard, not waited for.
    let pid = std::fs::read_to_string(c.nodes[1].dir.join("pid")).unwrap();
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
}

/// A node that loses PostgreSQL fails closed (each user's own data only) until it has
/// caught up, and once the database is back it applies what changed meanwhile.
#[test]
fn a_node_that_loses_postgresql_fails_closed_and_catches_up() {
    if !services() {
        return;
    }
    let proxy = Proxy::start("127.0.0.1:5432");
    let c = Cluster::start(&[], &[(2, proxy.addr)], &[]);
    // Alice also uses the website and the API of node 1.
    let password = "alice-long-passphrase";
    let (web1, bearer) = c.account("alice", password);
    for u in ["bob", "carol", "dave"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("alice", "a-reader", "sync", "d,sync");
    c.key("bob", "b-sensor", "d", "");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.key("carol", "c-reader", "", "c");
    let revoked = c.share("alice", "c", "bob");
    c.share("alice", "c", "carol");
    c.share("bob", "d", "alice");

    // Bob and carol read on node 2 (behind the proxy), alice on node 1.
    let mut sensor = c.login(0, "a-sensor");
    let mut bob = c.subscriber(1, "b-reader", "c");
    let mut carol = c.login(1, "c-reader");
    carol.subscribe("c");
    let mut alice = c.subscriber(0, "a-reader", "d");
    // A subscriber waits at most WANT_WAIT for its node's NATS subscription, so on a loaded
    // machine the first messages may go before it is in place: probe until one crosses.
    let mut n = 0;
    wait_for(
        "messages from node 1 to reach node 2",
        Duration::from_secs(30),
        || {
            n += 1;
            sensor.publish("c", format!("probe-{n}").as_bytes());
            matches!(bob.next(Duration::from_secs(1)), Event::Frame(_)).then_some(())
        },
    );
    sensor.publish("c", b"before");
    let until = |r: &mut Raw, want: &[u8]| loop {
        let got = r.expect_publish().2;
        if got == want {
            break;
        }
        assert!(got.starts_with(b"probe-"), "{got:?}");
    };
    until(&mut bob, b"before");
    until(&mut carol, b"before");

    // With every node current, an API change answers where it is live: on all three.
    let api = |method: &str, path: &str, body: &str| -> Value {
        let r = common::http::request(
            web1,
            method,
            path,
            &[&bearer, "Content-Type: application/json"],
            body,
        );
        assert!(matches!(r.status, 200 | 201), "{path}: {} {}", r.status, r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let v = api("POST", "/api/v1/shares", r#"{"channel": "c", "to_user": "dave"}"#);
    assert_eq!(
        v["applied_on"],
        serde_json::json!(["node1", "node2", "node3"]),
        "{v}"
    );
    assert_eq!(v["behind"], serde_json::json!([]), "{v}");
    let to_dave = v["id"].as_i64().unwrap();

    // Node 2 loses the database. Past graph_stale_after_secs without reading the change
    // log it fails closed: each user's own data still flows there, and its publishes still
    // reach the other nodes (which decide by their own, current ACLs), but nothing crosses
    // between users on it, so a revoke it cannot read is not outlived.
    proxy.cut();
    wait_for("node 2 to fail closed", Duration::from_secs(30), || {
        c.nodes[1].log().contains("failing closed").then_some(())
    });
    sensor.publish("c", b"during");
    assert!(
        bob.barrier("sync").is_empty(),
        "bob's own barrier came back alone"
    );
    assert!(matches!(carol.next(Duration::from_millis(500)), Event::Quiet));
    let mut b_sensor = c.login(1, "b-sensor");
    b_sensor.publish("d", b"from node 2 during the outage");
    assert_eq!(alice.expect_publish().2, b"from node 2 during the outage");
    let m = common::http::samples(&common::http::get(c.nodes[1].web.unwrap(), "/metrics", &[]).body);
    assert!(
        (m["hpfriends_graph_fail_closed"] - 1.0).abs() < f64::EPSILON,
        "{m:?}"
    );
    assert!(m["hpfriends_dropped_stale_graph_total"] >= 2.0, "{m:?}");

    // A change made on node 1 now answers (after cluster_apply_wait_ms) naming node 2 as
    // behind, in the API…
    // (Behind while its heartbeat is fresh, silent once it is older than LIVE_WITHIN.)
    let v = api("POST", &format!("/api/v1/shares/{to_dave}/revoke"), "");
    assert_eq!(v["applied_on"], serde_json::json!(["node1", "node3"]), "{v}");
    let lagging = [v["behind"].clone(), v["silent"].clone()];
    assert!(
        lagging.contains(&serde_json::json!(["node2"])) && lagging.contains(&serde_json::json!([])),
        "{v}"
    );
    assert_eq!(v["confirmed"], serde_json::json!(true), "{v}");
    // …and on the page the form leads to, which says what node 2 does meanwhile.
    let mut browser = Browser::login(web1, "alice", password);
    let r = browser.post_form(
        "/shares",
        "/shares",
        &[
            ("channel", "c"),
            ("to_kind", "user"),
            ("to", "dave"),
            ("kind", "own"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap();
    assert!(to.contains("behind=1"), "{to}");
    let page = browser.get(&to);
    assert!(
        page.body.contains("not yet on node2") || page.body.contains("Not applied on node2"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("only each user&#x27;s own data"),
        "{}",
        page.body
    );
    // The note comes from the signed cookie, never from the link alone.
    let forged = common::http::get(web1, "/shares?behind=1", &[]);
    assert!(!forged.body.contains("not yet on"), "{}", forged.body);

    // A revoke made meanwhile: node 2 cannot apply it, so the CLI says so after its wait,
    // naming the node, and exits 3 (saved, not yet live everywhere)…
    let o = common::cli_with_db(
        &c.db,
        &["share", "revoke", &revoked, "--as", "alice", "--live-wait", "3"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    // (A running server behind, or, once its heartbeat is older than LIVE_WITHIN, a
    // server not heard from lately: named either way.)
    assert!(
        err.contains("1 running server(s)") || err.contains("not heard from lately"),
        "{err}"
    );
    assert!(err.contains("node2"), "{err}");
    sensor.publish("c", b"stale");
    assert!(bob.barrier("sync").is_empty());
    assert!(matches!(carol.next(Duration::from_millis(500)), Event::Quiet));

    // …and applies it once the database is back, then delivers between users again.
    proxy.restore();
    wait_for("node 2 to catch up", Duration::from_secs(60), || {
        c.nodes[1]
            .log()
            .contains("deliveries between users resume")
            .then_some(())
    });
    let mut i = 0;
    wait_for("node 2 to apply the revoke", Duration::from_secs(30), || {
        i += 1;
        let probe = format!("after-{i}");
        sensor.publish("c", probe.as_bytes());
        // Carol, on bob's node, still has her share: once she has the probe, node 2 has
        // routed it, and bob's outbox read up to a marker says whether he got it too.
        assert_eq!(carol.expect_publish().2, probe.as_bytes());
        let got = bob.barrier("sync");
        if got.is_empty() {
            return Some(());
        }
        assert_eq!(got.len(), 1, "{got:?}");
        std::thread::sleep(Duration::from_millis(200));
        None
    });
    // And node 2's publishes still cross.
    b_sensor.publish("d", b"from node 2 after");
    assert_eq!(alice.expect_publish().2, b"from node 2 after");
}

/// The same with the database link blackholed (packets lost, nothing reset, the node's
/// connections left hanging): the node still fails closed within its bounds, a revoke made
/// meanwhile answers naming it, and once the link is back the revoke holds there too.
#[test]
fn a_node_whose_postgresql_link_goes_silent_fails_closed_too() {
    if !services() {
        return;
    }
    let proxy = Proxy::start("127.0.0.1:5432");
    let c = Cluster::start(&[], &[(2, proxy.addr)], &[]);
    for u in ["alice", "bob", "carol"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.key("carol", "c-reader", "sync", "c,sync");
    let revoked = c.share("alice", "c", "bob");
    c.share("alice", "c", "carol");
    // Both read on node 2 (behind the proxy), alice publishes on node 1.
    let mut sensor = c.login(0, "a-sensor");
    let mut bob = c.subscriber(1, "b-reader", "c");
    let mut carol = c.subscriber(1, "c-reader", "c");
    // What a reader got besides the probes sent while waiting for the link (late ones may
    // still come in any later read).
    let data = |got: Vec<(String, String, Vec<u8>)>| -> Vec<String> {
        got.into_iter()
            .map(|(_, _, p)| String::from_utf8(p).unwrap())
            .filter(|p| !p.starts_with("probe-"))
            .collect()
    };
    let mut n = 0;
    wait_for(
        "messages from node 1 to reach node 2",
        Duration::from_secs(30),
        || {
            n += 1;
            sensor.publish("c", format!("probe-{n}").as_bytes());
            let got = bob.barrier("sync");
            (!got.is_empty()).then_some(())
        },
    );

    proxy.blackhole();
    wait_for("node 2 to fail closed", Duration::from_secs(60), || {
        c.nodes[1].log().contains("failing closed").then_some(())
    });
    // Nothing crosses between users on node 2 while it cannot read the change log.
    carol.barrier("sync");
    sensor.publish("c", b"during");
    assert_eq!(data(bob.barrier("sync")), Vec::<String>::new());
    assert_eq!(data(carol.barrier("sync")), Vec::<String>::new());
    // A revoke made meanwhile answers naming node 2, exit 3.
    let o = common::cli_with_db(
        &c.db,
        &["share", "revoke", &revoked, "--as", "alice", "--live-wait", "3"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("node2"), "{err}");
    sensor.publish("c", b"stale");
    assert_eq!(data(bob.barrier("sync")), Vec::<String>::new());

    // Back: node 2 catches up and applies the revoke before it delivers between users again.
    proxy.restore();
    wait_for("node 2 to catch up", Duration::from_secs(90), || {
        c.nodes[1]
            .log()
            .contains("deliveries between users resume")
            .then_some(())
    });
    let mut i = 0;
    wait_for("carol to receive again", Duration::from_secs(30), || {
        i += 1;
        let probe = format!("after-{i}");
        sensor.publish("c", probe.as_bytes());
        let got = data(carol.barrier("sync"));
        // Bob never again, whatever carol gets (the frame reaches both in one routing).
        assert_eq!(
            data(bob.barrier("sync")),
            Vec::<String>::new(),
            "the revoke did not hold"
        );
        got.contains(&probe).then_some(())
    });
    assert_eq!(data(bob.barrier("sync")), Vec::<String>::new());
}

/// A JSON API call that must succeed; its answer.
fn api(web: SocketAddr, bearer: &str, method: &str, path: &str, body: &str) -> Value {
    let r = common::http::request(
        web,
        method,
        path,
        &[bearer, "Content-Type: application/json"],
        body,
    );
    assert!(matches!(r.status, 200 | 201), "{path}: {} {}", r.status, r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Changes made at once on two nodes' APIs and by the CLI, each answered only once every
/// node applied it: subscribers on the third node receive a share's data as soon as its
/// acceptance answers, and none once its revoke answers, whatever the others write
/// meanwhile (each writer's change log ids interleave with the others').
#[test]
fn concurrent_writers_on_two_nodes_and_the_cli_each_answer_only_once_live_everywhere() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    let password = "a-long-enough-passphrase";
    let alice = c.bearer("alice", password);
    // Writer k: 0 through node 1's API, 1 through node 2's, 2 with the CLI; each on a
    // channel and with a grantee of its own.
    let grantees: Vec<Option<String>> = (0..3)
        .map(|k| {
            let name = format!("g{k}");
            if k < 2 {
                Some(c.bearer(&name, password))
            } else {
                c.user(&name);
                None
            }
        })
        .collect();
    c.key("alice", "a-sensor", "c0,c1,c2", "");
    for k in 0..3 {
        c.key("alice", &format!("a-witness{k}"), "sync", &format!("c{k},sync"));
        c.key(
            &format!("g{k}"),
            &format!("g{k}-reader"),
            "sync",
            &format!("c{k},sync"),
        );
    }
    const ROUNDS: usize = 8;
    std::thread::scope(|scope| {
        for (k, grantee) in grantees.iter().enumerate() {
            let (c, alice) = (&c, &alice);
            scope.spawn(move || {
                let (channel, g) = (format!("c{k}"), format!("g{k}"));
                // Everything is read on node 3; alice's own witness proves node 3 has
                // routed a message before the grantee's outbox is read up to a marker.
                let mut sensor = c.login(2, "a-sensor");
                let mut witness = c.subscriber(2, &format!("a-witness{k}"), &channel);
                let mut reader = c.subscriber(2, &format!("g{k}-reader"), &channel);
                let web = c.nodes[k.min(1)].web.unwrap();
                for round in 0..ROUNDS {
                    let id = match grantee {
                        Some(token) => {
                            let body = format!(r#"{{"channel": "{channel}", "to_user": "{g}"}}"#);
                            let v = api(web, alice, "POST", "/api/v1/shares", &body);
                            let id = v["id"].as_i64().unwrap().to_string();
                            let v = api(web, token, "POST", &format!("/api/v1/shares/{id}/accept"), "");
                            assert_eq!(v["behind"], serde_json::json!([]), "{v}");
                            assert_eq!(v["applied_on"].as_array().unwrap().len(), 3, "{v}");
                            id
                        }
                        None => c.share("alice", &channel, &g),
                    };
                    let on = format!("on-{round}");
                    sensor.publish(&channel, on.as_bytes());
                    assert_eq!(witness.expect_publish().2, on.as_bytes());
                    assert_eq!(
                        reader.expect_publish().2,
                        on.as_bytes(),
                        "writer {k}: not delivered after the acceptance answered"
                    );
                    if grantee.is_some() {
                        let v = api(web, alice, "POST", &format!("/api/v1/shares/{id}/revoke"), "");
                        assert_eq!(v["behind"], serde_json::json!([]), "{v}");
                        assert_eq!(v["silent"], serde_json::json!([]), "{v}");
                    } else {
                        c.cli(&["share", "revoke", &id, "--as", "alice"]);
                    }
                    let off = format!("off-{round}");
                    sensor.publish(&channel, off.as_bytes());
                    assert_eq!(witness.expect_publish().2, off.as_bytes());
                    let leaked = reader.barrier("sync");
                    assert!(
                        leaked.is_empty(),
                        "writer {k} round {round}: delivered after the revoke answered: {leaked:?}"
                    );
                }
            });
        }
    });
    // No answer came before every node had applied its change.
    for (i, n) in c.nodes.iter().enumerate() {
        assert!(
            !n.log().contains("node(s) behind"),
            "node {} answered before every node applied a change",
            i + 1
        );
    }
}

/// A nats-server of the test's own on a free port, with the configuration `conf` (its
/// `listen` line added); stopped when dropped.
/// The nats-server binary the tests run servers of their own with; `None` (a loud skip)
/// when the machine has none, a failure under `CI=true`.
fn nats_server_bin() -> Option<&'static str> {
    let bin = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if bin.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "this test runs nats-servers of its own: install nats-server (Debian package nats-server)"
        );
        eprintln!("\n!!!!!!!! SKIPPING A TEST WITH ITS OWN NATS SERVERS: no nats-server binary\n");
        record_skip();
    }
    bin
}

struct OwnNats {
    child: Child,
    bin: &'static str,
    port: u16,
    _dir: TempDir,
}

impl OwnNats {
    /// `None` when there is no nats-server to run (fails under `CI=true`).
    fn start(conf: &str) -> Option<OwnNats> {
        let bin = nats_server_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = dir.path().join("nats.conf");
        // With JetStream (the backplane's default), its store in the test's directory.
        std::fs::write(
            &file,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\n{conf}\n",
                dir.path().join("js")
            ),
        )
        .unwrap();
        let mut own = OwnNats {
            child: Self::spawn(bin, &file),
            bin,
            port,
            _dir: dir,
        };
        own.wait_up();
        Some(own)
    }

    fn spawn(bin: &str, conf: &std::path::Path) -> Child {
        Command::new(bin)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_up(&mut self) {
        let port = self.port;
        wait_for("the test's nats-server", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
    }

    /// Kills the server (SIGKILL: no goodbye to its clients), leaves it down for `down`,
    /// and starts it again on the same port and store.
    fn crash_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = Self::spawn(self.bin, &self._dir.path().join("nats.conf"));
        self.wait_up();
    }

    fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    fn plain_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The NATS link over TLS, the server checked against the operator's CA, authenticated by
/// user and password, by token or by NKey: messages cross nodes on each. A wrong password
/// or a server certificate from another CA never connects, and the log says why.
#[test]
fn the_nats_link_runs_over_tls_with_each_kind_of_credentials() {
    if !services() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let Pki { ca, cert, key } = pki(certs.path(), "nats");
    let other = pki(certs.path(), "other");
    let tls = format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, timeout: 2 }}",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    let nkey = nkeys::KeyPair::new_user();
    let seed_file = certs.path().join("node.nk");
    std::fs::write(&seed_file, nkey.seed().unwrap()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let seed = seed_file.to_str().unwrap().to_owned();
    // (What, the server's authorization block, the nodes' settings.)
    type Variant<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let variants: Vec<Variant> = vec![
        (
            "user and password",
            "authorization { user: hpf, password: \"pw-0f-the-link\" }".into(),
            vec![
                ("HPFRIENDS_NATS_USER", "hpf"),
                ("HPFRIENDS_NATS_PASSWORD", "pw-0f-the-link"),
            ],
        ),
        (
            "token",
            "authorization { token: \"t0ken-of-the-link\" }".into(),
            vec![("HPFRIENDS_NATS_TOKEN", "t0ken-of-the-link")],
        ),
        (
            "NKey",
            format!(
                "authorization {{ users = [ {{ nkey: {} }} ] }}",
                nkey.public_key()
            ),
            vec![("HPFRIENDS_NATS_NKEY_SEED_FILE", seed.as_str())],
        ),
    ];
    for (what, auth, creds) in &variants {
        let Some(nats) = OwnNats::start(&format!("{tls}\n{auth}")) else {
            return;
        };
        let mut env = creds.clone();
        env.push(("HPFRIENDS_NATS_TLS_CA", ca.as_str()));
        let url = nats.url();
        let all: Vec<(usize, String)> = (1..=3).map(|i| (i, url.clone())).collect();
        let c = Cluster::start(&all, &[], &env);
        for n in &c.nodes {
            wait_for(
                &format!("{what}: NATS connected"),
                Duration::from_secs(20),
                || n.log().contains("NATS connected").then_some(()),
            );
        }
        c.user("alice");
        c.user("bob");
        c.key("alice", "a-sensor", "c", "");
        c.key("bob", "b-reader", "sync", "c,sync");
        c.share("alice", "c", "bob");
        let mut bob = c.subscriber(2, "b-reader", "c");
        let mut sensor = c.login(0, "a-sensor");
        let mut n = 0;
        wait_for(
            &format!("{what}: a message across nodes"),
            Duration::from_secs(30),
            || {
                n += 1;
                sensor.publish("c", format!("m-{n}").as_bytes());
                matches!(bob.next(Duration::from_secs(1)), Event::Frame(_)).then_some(())
            },
        );
    }

    // A wrong password, and a server whose certificate another CA signed: the node serves
    // its own clients, never connects to NATS, and says why.
    let Some(nats) = OwnNats::start(&format!(
        "{tls}\nauthorization {{ user: hpf, password: right-one }}"
    )) else {
        return;
    };
    let url = nats.url();
    let one = [(1, url.clone()), (2, url.clone()), (3, url.clone())];
    let wrong = Cluster::start(
        &one,
        &[],
        &[
            ("HPFRIENDS_NATS_TLS_CA", ca.as_str()),
            ("HPFRIENDS_NATS_USER", "hpf"),
            ("HPFRIENDS_NATS_PASSWORD", "wrong-one"),
        ],
    );
    wait_for("the refusal in the log", Duration::from_secs(20), || {
        wrong.nodes[0]
            .log()
            .to_lowercase()
            .contains("authorization")
            .then_some(())
    });
    let log = wrong.nodes[0].log();
    eprintln!(
        "wrong password: {}",
        log.lines().find(|l| l.contains("NATS:")).unwrap_or_default()
    );
    assert!(!log.contains("NATS connected"), "{log}");
    assert!(!log.contains("wrong-one"), "the password is never logged");
    drop(wrong);
    let other_ca = other.ca.to_str().unwrap().to_owned();
    let untrusted = Cluster::start(
        &one,
        &[],
        &[
            ("HPFRIENDS_NATS_TLS_CA", other_ca.as_str()),
            ("HPFRIENDS_NATS_USER", "hpf"),
            ("HPFRIENDS_NATS_PASSWORD", "right-one"),
        ],
    );
    wait_for(
        "the untrusted certificate in the log",
        Duration::from_secs(20),
        || {
            let log = untrusted.nodes[0].log().to_lowercase();
            (log.contains("certificate") || log.contains("tls")).then_some(())
        },
    );
    let log = untrusted.nodes[0].log();
    eprintln!(
        "other CA: {}",
        log.lines().find(|l| l.contains("NATS:")).unwrap_or_default()
    );
    assert!(!log.contains("NATS connected"), "{log}");
}

/// A node reaches PostgreSQL over TLS with the server's certificate checked against the
/// operator's CA and its name against the host (`sslmode=verify-full`): the session is
/// encrypted, the CLI works the same way, and a server certificate from another CA is
/// refused with libpq's reason.
#[test]
fn postgresql_is_reached_over_verified_tls() {
    use diesel::prelude::*;
    if !services() {
        return;
    }
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let plain = ScratchDb::on(POSTGRES).unwrap();
    let mut conn = diesel::PgConnection::establish(plain.url()).unwrap();
    let setting = |conn: &mut diesel::PgConnection, sql: &str| -> String {
        diesel::sql_query(sql).get_result::<Setting>(conn).unwrap().value
    };
    // The machine's PostgreSQL serves TLS with its own (self-signed) certificate.
    let ssl = setting(&mut conn, "SELECT current_setting('ssl') AS value");
    let cert = setting(&mut conn, "SELECT current_setting('ssl_cert_file') AS value");
    assert_eq!(ssl, "on", "the local PostgreSQL must have ssl = on for this test");
    let ca = std::path::Path::new(&cert);
    let ca = if ca.is_absolute() {
        ca.to_path_buf()
    } else {
        let data = setting(&mut conn, "SELECT current_setting('data_directory') AS value");
        std::path::Path::new(&data).join(ca)
    };
    // Its certificate names localhost (Debian's snakeoil), and is its own CA.
    assert!(
        ca.exists(),
        "cannot read the server's certificate {}",
        ca.display()
    );
    let tls = |root: &std::path::Path| {
        let url = plain.url().replacen("127.0.0.1", "localhost", 1);
        format!("{url}?sslmode=verify-full&sslrootcert={}", root.display())
    };
    let url = tls(&ca);
    let store = hpfriends::store::Store::open(&url).unwrap();
    store.add_user("alice", "alice@example.org", "").unwrap();
    let mut conn = diesel::PgConnection::establish(&url).unwrap();
    let encrypted = setting(
        &mut conn,
        "SELECT CASE WHEN ssl THEN 'yes' ELSE 'no' END AS value FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert_eq!(encrypted, "yes", "the session is not over TLS");
    let o = common::cli_with_db(&url, &["user", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("alice"));

    // Another CA: refused, and libpq says why.
    let dir = tempfile::tempdir().unwrap();
    let other = pki(dir.path(), "other");
    let o = common::cli_with_db(tls(&other.ca), &["user", "list"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "connected with a certificate another CA signed"
    );
    assert!(err.contains("certificate verify failed"), "{err}");
}

/// Presence crosses nodes: a watcher of `c..broker` on node 3 hears alice's key join and
/// leave `c` on node 1 (alice shares `c` with the watcher's owner), exactly as on one node,
/// and nothing of a key whose owner shares nothing with it.
#[test]
fn presence_notices_reach_watchers_on_other_nodes() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    for u in ["alice", "bob", "carol"] {
        c.user(u);
    }
    c.key("alice", "a-reader", "sync", "c,sync");
    c.key("bob", "b-watch", "sync", "c,sync");
    c.key("carol", "c-reader", "sync", "c,sync");
    c.share("alice", "c", "bob");
    let mut watch = c.subscriber(2, "b-watch", "c..broker");
    // Carol shares nothing with bob: her key joins first, so a leak would be the first
    // notice he reads.
    let _carol = c.subscriber(0, "c-reader", "c");
    let mut a = c.subscriber(0, "a-reader", "c");
    a.unsubscribe("c");
    a.barrier("sync");
    let notice = |w: &mut Raw| {
        let (ident, channel, payload) = w.expect_publish();
        (ident, channel, String::from_utf8(payload).unwrap())
    };
    let n = |what: &str| ("a-reader".to_owned(), "c..broker".to_owned(), what.to_owned());
    assert_eq!(notice(&mut watch), n("join"));
    assert_eq!(notice(&mut watch), n("leave"));
    assert!(watch.barrier("sync").is_empty());
}

/// A subscriber on another node that stops reading never holds up the publisher or its
/// node: it is cut after the stall timeout on its own node, like a local one.
#[test]
fn a_stalled_subscriber_on_another_node_never_holds_up_the_publisher() {
    if !services() {
        return;
    }
    let c = Cluster::start(
        &[],
        &[],
        &[
            ("HPFRIENDS_OUTBOX_BYTES", "65536"),
            ("HPFRIENDS_MAX_PAYLOAD", "65000"),
            ("HPFRIENDS_STALL_TIMEOUT_MS", "1000"),
        ],
    );
    for u in ["alice", "bob"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("alice", "a-reader", "sync", "c,sync");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.share("alice", "c", "bob");
    let mut local = c.subscriber(0, "a-reader", "c");
    // Bob, on node 2, subscribes and never reads again.
    let mut stalled = c.subscriber(1, "b-reader", "c");
    socket2::SockRef::from(&stalled.stream)
        .set_recv_buffer_size(128 * 1024)
        .unwrap();

    // 20 MB flat out on node 1: far more than bob's outbox and socket hold.
    const N: u32 = 20_000;
    let mut sensor = c.login(0, "a-sensor");
    let publisher = std::thread::spawn(move || {
        let body = vec![b'x'; 1000];
        for i in 0..N {
            sensor.publish("c", &[&i.to_be_bytes()[..], &body].concat());
        }
        sensor
    });
    // Node 1's own subscriber gets everything, in order: nothing waits on node 2.
    for i in 0..N {
        let payload = local.expect_publish().2;
        assert_eq!(payload[..4], i.to_be_bytes(), "lost or reordered");
    }
    drop(publisher.join().unwrap());
    // Node 2 cuts bob once his outbox stayed full for the stall timeout (he reads nothing
    // until then: reading would empty the outbox)…
    wait_for(
        "node 2 to cut the stalled reader",
        Duration::from_secs(60),
        || {
            c.nodes[1]
                .log()
                .contains("slow consumer: outbox full for the whole stall timeout, disconnecting")
                .then_some(())
        },
    );
    // …and what was queued before ends in a close.
    loop {
        match stalled.next(Duration::from_secs(30)) {
            common::raw::Event::Closed => break,
            common::raw::Event::Frame(_) => {}
            common::raw::Event::Quiet => panic!("the stalled reader on node 2 was not closed"),
        }
    }
}

/// Two running nodes of one name would ignore each other's traffic (the node header stops
/// loops): a second `node2` refuses to start, and says why.
#[test]
fn subscribes_on_a_cluster_node_cost_a_round_trip_not_seconds() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    c.user("alice");
    let channels: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    let list = format!("{},sync", channels.join(","));
    c.key("alice", "many", &list, &list);
    // 50 subscribes to channels no node carries yet, in one write, then a marker on sync:
    // every one is answered before the marker comes back (each used to wait 2 s for a
    // barrier message that `no_echo` never delivered: 100 s here).
    let mut r = c.login(1, "many");
    let mut burst = Vec::new();
    for ch in &channels {
        let f = hpfriends::wire::Frame::Subscribe {
            ident: hpfriends::wire::Ident::new("many").unwrap(),
            channel: hpfriends::wire::Channel::new(ch).unwrap(),
        };
        burst.extend_from_slice(&f.to_bytes().unwrap());
    }
    std::io::Write::write_all(&mut r.stream, &burst).unwrap();
    let started = std::time::Instant::now();
    let early = r.barrier("sync");
    assert!(early.is_empty(), "{early:?}");
    eprintln!(
        "50 pipelined subscribes and a marker on a cluster node: {:?}",
        started.elapsed()
    );
    // Each subscription is live across nodes once answered: a publish on node 1 arrives.
    let mut p = c.login(0, "many");
    p.publish("s49", b"across");
    assert_eq!(r.expect_publish().2, b"across");
    // And a channel the node carries already is answered at once too.
    let mut again = c.login(1, "many");
    again.subscribe("s0");
    assert!(again.barrier("sync").is_empty());
}

/// A NATS server killed and started again while a node publishes steadily: the other
/// nodes' subscribers receive every message, once and in order (the backplane is carried on
/// JetStream: a batch the stream did not confirm is sent again, and a node's reader resumes
/// after the last message it saw), and nothing is counted as lost.
#[test]
fn a_nats_restart_loses_nothing_between_nodes() {
    if !services() {
        return;
    }
    let Some(mut nats) = OwnNats::start("") else {
        return;
    };
    let url = nats.plain_url();
    let c = Cluster::start(&[(1, url.clone()), (2, url.clone()), (3, url)], &[], &[]);
    for u in ["alice", "bob"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("alice", "a-reader", "sync", "c,sync");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.share("alice", "c", "bob");
    let mine = c.subscriber(1, "a-reader", "c");
    let theirs = c.subscriber(2, "b-reader", "c");

    // 4,000 messages at about 1,000 a second from node 1; NATS is killed after 1,000 and
    // is back 3 s later.
    const N: u32 = 4_000;
    let mut sensor = c.login(0, "a-sensor");
    let publisher = std::thread::spawn(move || {
        for i in 0..N {
            sensor.publish("c", format!("m-{i}").as_bytes());
            std::thread::sleep(Duration::from_micros(1_000));
        }
        sensor
    });
    let readers: Vec<_> = [(mine, 2), (theirs, 3)]
        .into_iter()
        .map(|(mut r, node)| {
            std::thread::spawn(move || {
                let mut got = Vec::with_capacity(N as usize);
                while got.len() < N as usize {
                    match r.next(Duration::from_secs(60)) {
                        common::raw::Event::Frame(hpfriends::wire::Frame::Publish { payload, .. }) => {
                            got.push(String::from_utf8(payload.to_vec()).unwrap());
                        }
                        common::raw::Event::Frame(_) => {}
                        other => panic!("node {node}: {other:?} after {} messages", got.len()),
                    }
                }
                got
            })
        })
        .collect();
    wait_for("1,000 messages out", Duration::from_secs(30), || {
        let m = common::http::samples(&common::http::get(c.nodes[0].web.unwrap(), "/metrics", &[]).body);
        (m.get("hpfriends_cluster_relayed_total").copied().unwrap_or(0.0) >= 1000.0).then_some(())
    });
    nats.crash_and_restart(Duration::from_secs(3));
    drop(publisher.join().unwrap());
    let expected: Vec<String> = (0..N).map(|i| format!("m-{i}")).collect();
    for (i, r) in readers.into_iter().enumerate() {
        let got = r.join().unwrap();
        assert!(
            got == expected,
            "node {}: {} messages, first difference at {:?}",
            i + 2,
            got.len(),
            got.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
    for (i, n) in c.nodes.iter().enumerate() {
        let m = common::http::samples(&common::http::get(n.web.unwrap(), "/metrics", &[]).body);
        assert_eq!(m["hpfriends_cluster_jetstream"], 1.0, "node {}", i + 1);
        assert_eq!(m["hpfriends_cluster_remote_lost_total"], 0.0, "node {}", i + 1);
        assert_eq!(m["hpfriends_cluster_relay_dropped_total"], 0.0, "node {}", i + 1);
        assert!(
            m["hpfriends_cluster_nats_disconnects_total"] >= 1.0,
            "node {}",
            i + 1
        );
    }
}

/// A node cut off from NATS for longer than the stream keeps messages: what expired
/// meanwhile cannot come back, and the node says so, with the count (metric and log); what
/// it receives is still in order and once.
#[test]
fn what_an_outage_longer_than_the_retention_loses_is_counted_and_logged() {
    if !services() {
        return;
    }
    let proxy = Proxy::start(NATS);
    let c = Cluster::start(
        &[(3, format!("nats://{}", proxy.addr))],
        &[],
        &[("HPFRIENDS_NATS_RETENTION_SECS", "1")],
    );
    for u in ["alice", "bob"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.share("alice", "c", "bob");
    let mut reader = c.subscriber(2, "b-reader", "c");
    let mut sensor = c.login(0, "a-sensor");
    sensor.publish("c", b"before");
    assert_eq!(reader.expect_publish().2, b"before");

    proxy.cut();
    wait_for("node 3 to notice", Duration::from_secs(30), || {
        c.nodes[2].log().contains("NATS connection lost").then_some(())
    });
    for i in 0..100 {
        sensor.publish("c", format!("during-{i}").as_bytes());
    }
    // Stored, then expired: the stream keeps them 1 s.
    std::thread::sleep(Duration::from_secs(4));
    proxy.restore();
    wait_for("node 3 to reconnect", Duration::from_secs(30), || {
        (c.nodes[2].log().matches("NATS connected").count() >= 2).then_some(())
    });
    let seen = wait_for("node 3 to receive again", Duration::from_secs(30), || {
        sensor.publish("c", b"after");
        let mut seen = Vec::new();
        loop {
            match reader.next(Duration::from_millis(500)) {
                common::raw::Event::Frame(hpfriends::wire::Frame::Publish { payload, .. }) => {
                    let p = String::from_utf8(payload.to_vec()).unwrap();
                    if p == "after" {
                        return Some(seen);
                    }
                    seen.push(p);
                }
                common::raw::Event::Frame(_) => {}
                _ => return None,
            }
        }
    });
    let during: Vec<String> = (0..100).map(|i| format!("during-{i}")).collect();
    assert!(is_ordered_subset(&seen, &during), "{seen:?}");
    let m = common::http::samples(&common::http::get(c.nodes[2].web.unwrap(), "/metrics", &[]).body);
    let lost = m["hpfriends_cluster_remote_lost_total"];
    assert_eq!(
        lost,
        f64::from(100 - u32::try_from(seen.len()).unwrap()),
        "{seen:?} {m:?}"
    );
    assert!(lost > 0.0, "nothing expired: {m:?}");
    assert!(
        c.nodes[2]
            .log()
            .contains("messages from another node were lost for good"),
        "{}",
        c.nodes[2].log()
    );
}

/// A NATS server that takes smaller messages than the broker's frames: batches are cut to
/// what it takes, so small publishes all cross; a single frame larger than it takes stays
/// on its node, counted in `relay_dropped` and logged, and the channel goes on after it.
#[test]
fn batches_fit_the_nats_servers_max_payload_and_a_larger_frame_is_counted_not_retried() {
    if !services() {
        return;
    }
    let Some(nats) = OwnNats::start("max_payload: 65536") else {
        return;
    };
    let url = nats.plain_url();
    let c = Cluster::start(&[(1, url.clone()), (2, url.clone()), (3, url)], &[], &[]);
    for u in ["alice", "bob"] {
        c.user(u);
    }
    c.key("alice", "a-sensor", "c", "");
    c.key("bob", "b-reader", "sync", "c,sync");
    c.share("alice", "c", "bob");
    let mut reader = c.subscriber(1, "b-reader", "c");
    let mut sensor = c.login(0, "a-sensor");
    // 200 publishes of 3 KiB sent at once: 600 KiB, far past one NATS message.
    let filler = "x".repeat(3 << 10);
    for i in 0..200 {
        sensor.publish("c", format!("small-{i}-{filler}").as_bytes());
    }
    sensor.publish("c", &vec![b'y'; 100 << 10]);
    sensor.publish("c", b"after");
    let mut got = Vec::new();
    loop {
        let (_, _, payload) = reader.expect_publish();
        let p = String::from_utf8(payload).unwrap();
        if p == "after" {
            break;
        }
        got.push(p.split('-').take(2).collect::<Vec<_>>().join("-"));
    }
    let want: Vec<String> = (0..200).map(|i| format!("small-{i}")).collect();
    assert_eq!(got, want);
    let m = common::http::samples(&common::http::get(c.nodes[0].web.unwrap(), "/metrics", &[]).body);
    assert_eq!(m["hpfriends_cluster_relay_dropped_total"], 1.0, "{m:?}");
    assert!(c.nodes[0].log().contains("max_payload"), "{}", c.nodes[0].log());
}

/// Reads `n` publishes on `channel` from `r` (other channels' frames skipped), in a
/// thread; panics naming `who` when nothing comes for a minute.
fn collect(mut r: Raw, channel: &'static str, n: usize, who: String) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match r.next(Duration::from_secs(60)) {
                common::raw::Event::Frame(hpfriends::wire::Frame::Publish {
                    payload, channel: on, ..
                }) if on.as_str() == channel => {
                    got.push(String::from_utf8(payload.to_vec()).unwrap());
                }
                common::raw::Event::Frame(_) => {}
                other => panic!("{who}: {other:?} after {} messages", got.len()),
            }
        }
        got
    })
}

/// Publishes `n` messages `<channel>-<i>` on `channel` from `w`, one every `every`, in a
/// thread.
fn steady(mut w: Raw, channel: &'static str, n: u32, every: Duration) -> std::thread::JoinHandle<Raw> {
    std::thread::spawn(move || {
        for i in 0..n {
            w.publish(channel, format!("{channel}-{i}").as_bytes());
            std::thread::sleep(every);
        }
        w
    })
}

/// Asserts `got` is `<channel>-0 .. <channel>-(n-1)`, each once and in order.
fn assert_all(got: &[String], channel: &str, n: u32, who: &str) {
    let expected: Vec<String> = (0..n).map(|i| format!("{channel}-{i}")).collect();
    assert!(
        got == expected,
        "{who}: {} messages, first difference at {:?}",
        got.len(),
        got.iter().zip(&expected).position(|(a, b)| a != b)
    );
}

/// A node killed with SIGKILL while traffic flows through the cluster: the live nodes lose
/// nothing between them (once and in order), and the node started again takes part again.
#[test]
fn a_node_killed_mid_stream_costs_the_live_nodes_nothing() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    c.user("alice");
    c.key("alice", "s1", "c", "");
    c.key("alice", "r", "sync", "c,sync");
    const N: u32 = 3_000;
    let reader2 = collect(c.subscriber(1, "r", "c"), "c", N as usize, "node 2".into());
    // Node 3 carries the channel too when it is killed.
    let doomed = c.subscriber(2, "r", "c");
    let writer = steady(c.login(0, "s1"), "c", N, Duration::from_micros(1_500));
    std::thread::sleep(Duration::from_secs(1));
    let pid = std::fs::read_to_string(c.nodes[2].dir.join("pid")).unwrap();
    let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());
    drop(doomed);
    drop(writer.join().unwrap());
    assert_all(&reader2.join().unwrap(), "c", N, "node 2");
    // Started again, node 3 is back in the traffic.
    let out = c.script("start").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ready = std::fs::read_to_string(c.nodes[2].dir.join("out")).unwrap();
    let addr: SocketAddr = ready
        .rsplit("hpfeeds tcp://")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.trim_end_matches(',').parse().ok())
        .expect(&ready);
    let mut back = Raw::login(addr, "r", "s3cret");
    back.subscribe("c");
    assert!(back.barrier("sync").is_empty());
    let mut s1 = c.login(0, "s1");
    s1.publish("c", b"after");
    assert_eq!(back.expect_publish().2, b"after");
}

/// A NATS cluster of three servers (routes, JetStream with the stream on all three); the
/// nodes know all three. The server a publishing node is connected to is killed while it
/// publishes: the other nodes' subscribers receive every message once and in order.
#[test]
fn a_nats_cluster_server_killed_mid_stream_loses_nothing() {
    if !services() {
        return;
    }
    let Some(mut servers) = NatsCluster::start() else {
        return;
    };
    // Each node is given its own server first (clients shuffle the list; order kept here).
    let urls = servers.urls();
    let c = Cluster::start(
        &[(1, urls.clone()), (2, urls.clone()), (3, urls)],
        &[],
        &[("HPFRIENDS_NATS_REPLICAS", "3")],
    );
    c.user("alice");
    c.key("alice", "s1", "c", "");
    c.key("alice", "r", "sync", "c,sync");
    const N: u32 = 4_000;
    let readers: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| {
            collect(
                c.subscriber(i, "r", "c"),
                "c",
                N as usize,
                format!("node {}", i + 1),
            )
        })
        .collect();
    let writer = steady(c.login(0, "s1"), "c", N, Duration::from_micros(1_000));
    std::thread::sleep(Duration::from_secs(1));
    // The server node 1 is connected to goes (and with it, maybe, the stream's leader).
    let port = servers.client_port_of(&c.nodes[0]);
    servers.kill(port);
    drop(writer.join().unwrap());
    for (i, r) in readers.into_iter().enumerate() {
        assert_all(&r.join().unwrap(), "c", N, &format!("node {}", i + 2));
    }
    for (i, n) in c.nodes.iter().enumerate() {
        let m = common::http::samples(&common::http::get(n.web.unwrap(), "/metrics", &[]).body);
        assert_eq!(m["hpfriends_cluster_remote_lost_total"], 0.0, "node {}", i + 1);
        assert_eq!(m["hpfriends_cluster_relay_dropped_total"], 0.0, "node {}", i + 1);
    }
}

/// Three nats-servers of the test's own joined by routes, JetStream clustered.
struct NatsCluster {
    servers: Vec<(Child, u16)>,
    _dir: TempDir,
}

impl NatsCluster {
    fn start() -> Option<NatsCluster> {
        let bin = nats_server_bin()?;
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free(), free())).collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, (client, route))| {
                let routes: Vec<String> = ports
                    .iter()
                    .filter(|(_, r)| r != route)
                    .map(|(_, r)| format!("nats-route://127.0.0.1:{r}"))
                    .collect();
                let conf = dir.path().join(format!("n{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{client}\n\
                         jetstream {{ store_dir: {:?} }}\n\
                         cluster {{ name: hpftest, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                        dir.path().join(format!("js{i}")),
                        routes.join(", ")
                    ),
                )
                .unwrap();
                let child = Command::new(bin)
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (child, *client)
            })
            .collect();
        let c = NatsCluster { servers, _dir: dir };
        for (_, port) in &c.servers {
            let port = *port;
            wait_for("the test's NATS cluster", Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
            });
        }
        Some(c)
    }

    fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client port of the server `node` is connected to now (from the node's open
    /// sockets).
    fn client_port_of(&self, node: &Node) -> u16 {
        let pid = std::fs::read_to_string(node.dir.join("pid")).unwrap();
        let out = Command::new("ss")
            .args(["-tnpH", "state", "established"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let me = format!("pid={},", pid.trim());
        self.servers
            .iter()
            .map(|(_, p)| *p)
            .find(|p| {
                text.lines()
                    .any(|l| l.contains(&me) && l.contains(&format!("127.0.0.1:{p} ")))
            })
            .unwrap_or_else(|| panic!("node not connected to any of the cluster's servers:\n{text}"))
    }

    /// SIGKILL to the server on `port`.
    fn kill(&mut self, port: u16) {
        for (child, p) in &mut self.servers {
            if *p == port {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_node_id_in_use_is_refused() {
    if !services() {
        return;
    }
    let c = Cluster::of_three();
    let out = Command::new(common::bin())
        .args(["--db", c.db.url(), "serve", "--listen", "127.0.0.1:0"])
        .args([
            "--web-listen",
            "127.0.0.1:0",
            "--nats-url",
            &format!("nats://{NATS}"),
        ])
        .args(["--node-id", "node2"])
        .env("HPFRIENDS_NATS_PREFIX", &c.prefix)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("node_id \"node2\" is in use by another running node"),
        "{err}"
    );
    // The running node2 serves on.
    c.user("alice");
    c.key("alice", "k", "c", "c");
    let mut k = c.login(1, "k");
    k.subscribe("c");
    k.publish("c", b"still here");
    assert_eq!(k.expect_publish().2, b"still here");
}

/// Whether `seen` is `all` with some left out, in `all`'s order, none twice.
fn is_ordered_subset(seen: &[String], all: &[String]) -> bool {
    let mut rest = all.iter();
    seen.iter().all(|s| rest.any(|a| a == s))
}
