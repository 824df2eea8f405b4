//! hpfeeds over TLS with the PyPI hpfeeds 3.1.0 client (its `certfile` option), a client
//! that trusts another CA refused, plain TCP on the TLS port dropped, and the website
//! over HTTPS with Secure cookies and HSTS.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::{Pki, pki};
use common::python::{python, script};
use common::{Raw, TestServer, wait_for};
use serde_json::Value;

/// A server with a TLS listener on `p`'s certificate and the settings of `env`.
fn tls_server(p: &Pki, env: &[(&str, &str)]) -> TestServer {
    TestServer::start_with(
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            p.cert.to_str().unwrap(),
            "--tls-key",
            p.key.to_str().unwrap(),
        ],
        env,
    )
}

fn server(p: &Pki) -> TestServer {
    let s = tls_server(p, &[]);
    s.user("alice");
    s.key("alice", "tlssub", "s1", &["chan"], &["chan"]);
    s.key("alice", "tlspub", "s2", &["chan"], &[]);
    s
}

/// Runs the 3.1.0 driver over TLS trusting `ca`; its JSON lines.
fn py(ca: &Path, args: &[&str]) -> Option<Vec<Value>> {
    let py = python()?;
    let out = Command::new(py)
        .arg(script())
        .args(args)
        .env("HPFEEDS_CA", ca)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    )
}

#[test]
fn python_client_over_tls_and_a_wrong_certificate_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let other = pki(dir.path(), "other");
    let s = server(&good);
    let port = s.tls.expect("the TLS listener").port().to_string();

    // Publish and subscribe over TLS with the reference client, verifying the certificate.
    let Some(py_bin) = python() else { return };
    let mut sub = Command::new(py_bin)
        .arg(script())
        .args(["sub", "localhost", &port, "tlssub", "s1", "chan", "1"])
        .env("HPFEEDS_CA", &good.ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    let ready: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ready["ready"], true);
    let payload = hex::encode(b"over tls");
    py(
        &good.ca,
        &["pub", "localhost", &port, "tlspub", "s2", "chan", &payload],
    )
    .unwrap();
    let got: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(got["payload"], payload);
    assert_eq!(got["ident"], "tlspub");
    let st = wait_for("the subscriber to exit", Duration::from_secs(20), || {
        sub.try_wait().unwrap()
    });
    assert!(st.success());

    // A client that trusts another CA does not get in.
    let out = py(&other.ca, &["connect", "localhost", &port, "tlspub", "s2"]).unwrap();
    assert!(out[0]["error"].is_string(), "{out:?}");
    assert!(out[0]["logged"].to_string().contains("certificate"), "{out:?}");
    // Nor does plain hpfeeds on the TLS port; the failures are counted and the broker serves on.
    let mut plain = std::net::TcpStream::connect(s.tls.unwrap()).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    plain
        .write_all(b"\x00\x00\x00\x05\x01hello, plain hpfeeds here")
        .unwrap();
    let mut buf = [0u8; 256];
    // Dropped: EOF or reset, and certainly no info frame in clear text.
    match plain.read(&mut buf) {
        Ok(n) => assert!(n == 0 || buf[4] != 1, "answered in clear text"),
        Err(e) => assert!(e.kind() != std::io::ErrorKind::WouldBlock, "not dropped: {e}"),
    }
    wait_for("the TLS failure to be counted", Duration::from_secs(10), || {
        s.log().contains("TLS handshake failed").then_some(())
    });
    let ok = py(&good.ca, &["connect", "localhost", &port, "tlspub", "s2"]).unwrap();
    assert_eq!(ok[0]["connected"], true, "{ok:?}");
    // Plain TCP still works beside TLS.
    assert!(Raw::login(s.addr, "tlspub", "s2").authenticated());
}

#[test]
fn website_over_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "web");
    let s = server(&good);
    let web = s.web.expect("the website");
    let Some(py_bin) = python() else { return };
    let fetch = format!(
        "import ssl, urllib.request, json\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         r = urllib.request.urlopen('https://localhost:{port}/login', context=ctx, timeout=10)\n\
         print(json.dumps({{'status': r.status, 'cookie': r.headers.get('Set-Cookie'), 'hsts': r.headers.get('Strict-Transport-Security')}}))\n\
         try:\n    urllib.request.urlopen('http://127.0.0.1:{port}/login', timeout=10)\n    print(json.dumps({{'plain': 'answered'}}))\n\
         except Exception as e:\n    print(json.dumps({{'plain': 'refused'}}))\n",
        ca = good.ca.to_str().unwrap(),
        port = web.port()
    );
    let out = Command::new(py_bin).args(["-c", &fetch]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    let page = lines
        .next()
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(page["status"], 200);
    let cookie = page["cookie"].as_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(page["hsts"].as_str().unwrap().contains("max-age="));
    assert_eq!(lines.next().unwrap()["plain"], "refused");
}

#[test]
fn half_configured_tls_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let out = common::cli_with_db(&db, &["serve", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_cert and tls_key") && err.lines().count() == 1,
        "{err}"
    );
    let out = common::cli_with_db(
        &db,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.pem",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent.pem"), "{err}");
}

/// A TLS handshake with the server at `addr` trusting `ca`: whether it completed.
fn handshake(addr: std::net::SocketAddr, ca: &Path) -> bool {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    true
}

#[test]
fn a_connection_over_the_limit_costs_no_tls_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), "limit");
    let s = tls_server(
        &p,
        &[
            ("HPFRIENDS_MAX_CONNECTIONS_PER_IP", "1"),
            ("HPFRIENDS_AUTH_TIMEOUT_SECS", "120"),
        ],
    );
    let tls = s.tls.unwrap();
    // One connection held open (it waits for its handshake); the next ones are over the
    // limit and are closed without one: a flood over the limit does not buy the server's
    // crypto.
    // (One accept loop takes connections in order: the held one counts first.)
    let held = std::net::TcpStream::connect(tls).unwrap();
    for _ in 0..50 {
        assert!(!handshake(tls, &p.ca), "a refused connection got a handshake");
    }
    // Once it is gone, a connection within the limit shakes hands.
    drop(held);
    wait_for("a handshake within the limit", Duration::from_secs(10), || {
        handshake(tls, &p.ca).then_some(())
    });
    let _held = std::net::TcpStream::connect(tls).unwrap();
    // Plain TCP over the limit still reads why.
    let _held_plain = std::net::TcpStream::connect(s.addr).unwrap();
    let mut buf = Vec::new();
    wait_for("a plain refusal", Duration::from_secs(10), || {
        let mut refused = std::net::TcpStream::connect(s.addr).unwrap();
        buf.clear();
        refused.read_to_end(&mut buf).ok()?;
        (buf.len() > 5).then_some(())
    });
    assert!(String::from_utf8_lossy(&buf).contains("Too many connections from your address"));
}

/// `hpfriends pub` and `sub` speak TLS (`--tls`, `--ca`): an operator checks the TLS
/// listener with the project's own client; a CA that did not sign the certificate, or plain
/// hpfeeds against the TLS port, is one clear line and a failure.
#[test]
fn our_own_pub_and_sub_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let other = pki(dir.path(), "other");
    let s = server(&good);
    let port = s.tls.expect("the TLS listener").port().to_string();
    let client = |verb: &str, secret: &str, ident: &str, ca: &Path, extra: &[&str]| {
        Command::new(common::bin())
            .args([
                verb,
                "--host",
                "localhost",
                "--port",
                &port,
                "--ident",
                ident,
                "--secret",
                secret,
            ])
            .args(["--channel", "chan", "--ca", ca.to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut sub = client("sub", "s1", "tlssub", &good.ca, &["--count", "1"]);
    // Publish until the subscriber (whose subscribe nothing acknowledges) has it.
    wait_for("the message over TLS", Duration::from_secs(20), || {
        let p = client("pub", "s2", "tlspub", &good.ca, &["over tls"])
            .wait_with_output()
            .unwrap();
        assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
        sub.try_wait().unwrap().map(|_| ())
    });
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("over tls"));

    let wrong = client("pub", "s2", "tlspub", &other.ca, &["x"])
        .wait_with_output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("TLS with localhost:") && err.contains("certificate"),
        "{err}"
    );
}
