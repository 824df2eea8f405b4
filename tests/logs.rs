//! The server's log: `--log-format json` writes one JSON object per line, with a line per
//! connection's authentication and end and per refusal (ident, address, reason), and no
//! secret, password or token ever appears in it, in either format.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use common::http::post_form;
use common::raw::Raw;
use serde_json::Value;

const SECRET: &str = "key-secret-4f1c9a";
const WRONG: &str = "wrong-secret-77d2e0";
const PASSWORD: &str = "correct horse battery 9b31";
const TOKEN: &str = "metrics-token-c0ffee";

/// Traffic that touches every secret: a good and a bad auth, a refused publish, a sign-up
/// and a failed login on the website.
fn exercise(s: &TestServer) {
    s.user("alice");
    s.key("alice", "logkey", SECRET, &["log.chan"], &["log.chan"]);
    let mut c = Raw::login(s.addr, "logkey", SECRET);
    c.publish("not.mine", b"x");
    c.expect_error();
    drop(c);
    let mut bad = Raw::connect(s.addr);
    bad.auth("logkey", WRONG);
    bad.expect_error();
    let web = s.web.unwrap();
    let r = post_form(
        web,
        "/signup",
        &[
            ("name", "carol"),
            ("email", "carol@example.org"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    );
    assert!(r.status < 400, "signup: {} {}", r.status, r.body);
    let r = post_form(
        web,
        "/login",
        &[("login", "carol"), ("password", "not-her-password-5e")],
    );
    assert!(r.status < 500, "login: {} {}", r.status, r.body);
}

fn assert_no_secrets(log: &str) {
    for secret in [SECRET, WRONG, PASSWORD, "not-her-password-5e", TOKEN] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_lifecycle_and_refusals_and_no_secret() {
    let mut s = TestServer::start_with(&["--log-format", "json"], &[("HPFRIENDS_METRICS_TOKEN", TOKEN)]);
    exercise(&s);
    s.stop();
    let log = s.log();
    assert_no_secrets(&log);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        assert!(lines.iter().any(pred), "no {what} line in:\n{log}");
    };
    find(
        &|v| {
            v["message"] == "authenticated"
                && v["ident"] == "logkey"
                && v["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:"))
        },
        "authenticated",
    );
    find(
        &|v| v["message"] == "connection ended" && v["ident"] == "logkey" && v["reason"].is_string(),
        "connection ended",
    );
    find(
        &|v| v["reason"] == "publish-denied" && v["ident"] == "logkey" && v["peer"].is_string(),
        "publish refusal",
    );
    find(
        &|v| v["reason"] == "wrong_secret" && v["ident"] == "logkey" && v["peer"].is_string(),
        "auth failure",
    );
    find(
        &|v| v["level"] == "INFO" && v["timestamp"].is_string(),
        "levelled, timestamped",
    );
}

#[test]
fn text_logs_hold_no_secret_either() {
    let mut s = TestServer::start_with(&[], &[("HPFRIENDS_METRICS_TOKEN", TOKEN)]);
    exercise(&s);
    s.stop();
    let log = s.log();
    assert!(log.contains("connection ended"), "{log}");
    assert_no_secrets(&log);
}
