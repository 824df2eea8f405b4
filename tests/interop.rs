//! Interop with a client nobody here wrote: PyPI `hpfeeds` 3.1.0 (blocking `hpfeeds.new`
//! and `hpfeeds.asyncio.ClientSession`), in both directions and with our `pub`/`sub`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::python::{python, script};
use common::{TestServer, bin, wait_for};
use serde_json::Value;

/// Starts the Python driver; `None` (after a loud message) when hpfeeds is unavailable
/// outside CI.
fn py(args: &[&str]) -> Option<Child> {
    let py = python()?;
    Some(
        Command::new(py)
            .arg(script())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn json_lines(out: ChildStdout) -> impl Iterator<Item = Value> {
    BufReader::new(out)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
}

fn finish(mut child: Child) {
    let status = wait_for("the python client to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "python client failed: {status}");
}

fn server() -> TestServer {
    let s = TestServer::start();
    s.user("alice");
    s.key("alice", "pysub", "s1", &["chan"], &["chan"]);
    s.key("alice", "pypub", "s2", &["chan"], &[]);
    s
}

/// A Python subscriber expecting `count` messages, once its subscription is live.
fn python_subscriber(s: &TestServer, count: usize) -> Option<(Child, impl Iterator<Item = Value>)> {
    let port = s.addr.port().to_string();
    let mut child = py(&[
        "sub",
        "127.0.0.1",
        &port,
        "pysub",
        "s1",
        "chan",
        &count.to_string(),
    ])?;
    let mut lines = json_lines(child.stdout.take().unwrap());
    assert_eq!(lines.next().unwrap()["ready"], true);
    Some((child, lines))
}

#[test]
fn python_publisher_to_python_subscriber_every_byte() {
    let s = server();
    let Some((sub, mut lines)) = python_subscriber(&s, 2) else {
        return;
    };
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let port = s.addr.port().to_string();
    let publisher = py(&[
        "pub",
        "127.0.0.1",
        &port,
        "pypub",
        "s2",
        "chan",
        &hex::encode(&all_bytes),
        "6869",
    ])
    .unwrap();
    finish(publisher);
    let first = lines.next().unwrap();
    assert_eq!(first["ident"], "pypub");
    assert_eq!(first["channel"], "chan");
    assert_eq!(first["payload"], hex::encode(&all_bytes));
    assert_eq!(lines.next().unwrap()["payload"], "6869");
    finish(sub);
}

#[test]
fn our_pub_to_python_subscriber() {
    let s = server();
    let Some((sub, mut lines)) = python_subscriber(&s, 1) else {
        return;
    };
    let port = s.addr.port().to_string();
    let out = Command::new(bin())
        .args([
            "pub",
            "--port",
            &port,
            "--ident",
            "pypub",
            "--secret",
            "s2",
            "--channel",
            "chan",
            "from rust",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines.next().unwrap()["payload"], hex::encode("from rust"));
    finish(sub);
}

#[test]
fn python_publisher_to_our_sub() {
    let s = server();
    if python().is_none() {
        return;
    }
    let port = s.addr.port().to_string();
    let mut sub = Command::new(bin())
        .args([
            "sub",
            "--port",
            &port,
            "--ident",
            "pysub",
            "--secret",
            "s1",
            "--channel",
            "chan",
        ])
        .args(["--json", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let reader = std::thread::spawn(move || lines.map(Result::unwrap).collect::<Vec<_>>());
    // Our sub prints nothing before a message, so its subscribe cannot be awaited: publish
    // binary from Python until our sub has it.
    wait_for(
        "our sub to receive python's message",
        Duration::from_secs(20),
        || {
            finish(py(&["pub", "127.0.0.1", &port, "pypub", "s2", "chan", "00ff10"]).unwrap());
            reader.is_finished().then_some(())
        },
    );
    let got = reader.join().unwrap();
    let v: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["ident"], "pypub");
    assert_eq!(v["encoding"], "base64");
    assert_eq!(v["payload"], "AP8Q");
    finish(sub);
}

#[test]
fn python_client_sees_our_refusals() {
    let s = server();
    let port = s.addr.port().to_string();
    let cases = [
        (
            ["pysub", "wrong", "pub", "chan"],
            "Authentication failed for pysub",
        ),
        (
            ["pypub", "s2", "pub", "other"],
            "Authkey not allowed to pub here. ident=pypub, chan=other",
        ),
        (
            ["pypub", "s2", "sub", "chan"],
            "Authkey not allowed to sub here. ident=pypub, chan=chan",
        ),
    ];
    for (args, text) in cases {
        let Some(mut child) = py(&[&["error", "127.0.0.1", &port][..], &args[..]].concat()) else {
            return;
        };
        let mut lines = json_lines(child.stdout.take().unwrap());
        assert_eq!(lines.next().unwrap()["error"], text);
        finish(child);
    }
}

#[test]
fn python_asyncio_client_round_trip() {
    let s = server();
    let port = s.addr.port().to_string();
    let Some(mut child) = py(&["aio", "127.0.0.1", &port, "pysub", "s1", "chan"]) else {
        return;
    };
    let mut lines = json_lines(child.stdout.take().unwrap());
    let v = lines.next().unwrap();
    assert_eq!(v["ident"], "pysub");
    assert_eq!(v["payload"], hex::encode("aio-message"));
    finish(child);
}

#[test]
fn python_client_watches_a_presence_channel() {
    use common::raw::Raw;
    let s = TestServer::start();
    s.user("alice");
    s.user("bob");
    s.key("alice", "watch", "w", &["sync"], &["chan", "sync"]);
    s.key(
        "alice",
        "a2",
        "s",
        &["chan", "chan..broker", "sync"],
        &["chan", "sync"],
    );
    s.key("bob", "b1", "s", &["chan", "sync"], &["chan", "sync"]);
    let port = s.addr.port().to_string();
    let Some(mut watcher) = py(&["presence", "127.0.0.1", &port, "watch", "w", "chan", "3"]) else {
        return;
    };
    let mut lines = json_lines(watcher.stdout.take().unwrap());
    assert_eq!(lines.next().unwrap()["ready"], true);
    // Bob shares nothing with alice: his key joining is not for her watcher to know. It
    // joins first, so a leak would be the first notice she reads.
    let mut bob = Raw::live_subscriber(s.addr, "b1", "s", "chan");
    let mut a2 = Raw::live_subscriber(s.addr, "a2", "s", "chan");
    a2.unsubscribe("chan");
    a2.barrier("sync");
    a2.subscribe("chan");
    a2.barrier("sync");
    drop(a2);
    let notices: Vec<(String, String, String)> = (0..3)
        .map(|_| {
            let m = lines.next().unwrap();
            let payload = hex::decode(m["payload"].as_str().unwrap()).unwrap();
            (
                m["ident"].as_str().unwrap().to_owned(),
                m["channel"].as_str().unwrap().to_owned(),
                String::from_utf8(payload).unwrap(),
            )
        })
        .collect();
    let n = |i: &str, what: &str| (i.to_owned(), "chan..broker".to_owned(), what.to_owned());
    assert_eq!(notices, vec![n("a2", "join"), n("a2", "leave"), n("a2", "join")]);
    finish(watcher);
    bob.barrier("sync");
    // Only the broker speaks on a presence channel, whatever a key's publish list says.
    let mut forger = Raw::login(s.addr, "a2", "s");
    forger.publish("chan..broker", b"forged");
    assert_eq!(
        forger.expect_error(),
        "Authkey not allowed to pub here. ident=a2, chan=chan..broker"
    );
}

/// The configurations `authkey snippet` (and the key's page) hand out work as they are:
/// cowrie's section, read with Python's configparser, names this broker and the key; the
/// Python program, run unchanged with PyPI hpfeeds 3.1.0, publishes what a subscriber of the
/// owner's receives.
#[test]
fn generated_configurations_work_as_they_are() {
    let Some(py) = python() else { return };
    let s = TestServer::start();
    s.user("alice");
    s.key("alice", "sensor-1", "sekrit-1", &["cowrie.sessions"], &[]);
    s.key(
        "alice",
        "reader-1",
        "sekrit-2",
        &["sync"],
        &["cowrie.sessions", "sync"],
    );
    let listen = format!("127.0.0.1:{}", s.addr.port());
    let snippet = |target: &str| -> String {
        let o = Command::new(bin())
            .args(["--db", s.db().url()])
            .args(["authkey", "snippet", "sensor-1", "--for", target, "--with-secret"])
            .env("HPFRIENDS_LISTEN", &listen)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let run_python = |code: &str, stdin: &str| -> String {
        let mut child = Command::new(&py)
            .args(["-c", code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{code}");
        String::from_utf8(out.stdout).unwrap()
    };
    let parsed = run_python(
        "import configparser, json, sys\n\
         c = configparser.ConfigParser()\n\
         c.read_string(sys.stdin.read())\n\
         print(json.dumps(dict(c['output_hpfeeds3'])))",
        &snippet("cowrie"),
    );
    let v: Value = serde_json::from_str(parsed.trim()).unwrap();
    assert_eq!(v["enabled"], "true");
    assert_eq!(v["server"], "127.0.0.1");
    assert_eq!(v["port"], s.addr.port().to_string());
    assert_eq!(v["identifier"], "sensor-1");
    assert_eq!(v["secret"], "sekrit-1");
    assert_eq!(v["channel"], "cowrie.sessions");

    let mut reader = common::raw::Raw::login(s.addr, "reader-1", "sekrit-2");
    reader.subscribe("cowrie.sessions");
    reader.barrier("sync");
    run_python(&snippet("python"), "");
    match reader.next(Duration::from_secs(10)) {
        common::raw::Event::Frame(hpfriends::wire::Frame::Publish { ident, payload, .. }) => {
            assert_eq!(ident.as_str(), "sensor-1");
            assert_eq!(&payload[..], br#"{"hello": "hpfriends"}"#);
        }
        other => panic!("the generated program's message never came: {other:?}"),
    }
}
