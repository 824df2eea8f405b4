//! Prometheus metrics, scraped over HTTP from a live server before and after traffic made
//! by our raw client and by PyPI hpfeeds 3.1.0: every metric the operator needs moves.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::samples;
use common::python::{python, script};
use common::raw::Raw;
use common::{TestServer, wait_for};

/// GET `path` with extra header lines; the status and the body.
fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    let r = common::http::get(addr, path, headers);
    (r.status, r.body)
}

fn metrics_addr(s: &TestServer) -> SocketAddr {
    let out = std::fs::read_to_string(s.dir.path().join("serve.out")).unwrap();
    let rest = out.split("metrics http://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn a_scrape_after_traffic_shows_every_metric_moving() {
    let s = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"], &[]);
    s.user("alice");
    s.key(
        "alice",
        "pub1",
        "s1",
        &["metrics.chan", "sync"],
        &["metrics.chan", "sync"],
    );
    s.key("alice", "sub1", "s2", &["sync"], &["metrics.chan", "sync"]);
    let m = metrics_addr(&s);
    let (status, before) = get(m, "/metrics", &[]);
    assert_eq!(status, 200, "{before}");
    let before = samples(&before);

    // Traffic: a subscriber, publishes, refusals of each kind, a 3.1.0 publisher.
    let mut sub = Raw::login(s.addr, "sub1", "s2");
    sub.subscribe("metrics.chan");
    sub.barrier("sync");
    let mut p = Raw::login(s.addr, "pub1", "s1");
    for i in 0..50 {
        p.publish("metrics.chan", format!("m{i}").as_bytes());
    }
    p.publish("forbidden", b"x");
    p.expect_error();
    for _ in 0..50 {
        sub.expect_publish();
    }
    let mut wrong = Raw::connect(s.addr);
    wrong.auth("pub1", "wrong");
    wrong.expect_error();
    let mut unknown = Raw::connect(s.addr);
    unknown.auth("nobody", "x");
    unknown.expect_error();
    if let Some(py) = python() {
        let port = s.addr.port().to_string();
        let st = Command::new(py)
            .arg(script())
            .args([
                "pub",
                "127.0.0.1",
                &port,
                "pub1",
                "s1",
                "metrics.chan",
                &hex::encode("from-3.1.0"),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let (_, _, payload) = sub.expect_publish();
        assert_eq!(payload, b"from-3.1.0");
    }
    // An ACL change applied live: a share the graph derives for the subscriber's owner.
    s.user("bob");
    s.key("bob", "bobkey", "s3", &["metrics.chan"], &[]);

    let after = wait_for(
        "the counters to show the traffic",
        Duration::from_secs(10),
        || {
            let (status, text) = get(m, "/metrics", &[]);
            assert_eq!(status, 200);
            let after = samples(&text);
            (after.get("hpfriends_sent_bytes_total").copied().unwrap_or(0.0) > 0.0
                && after
                    .get("hpfriends_acl_changes_applied_total")
                    .copied()
                    .unwrap_or(0.0)
                    > 0.0)
                .then_some((after, text))
        },
    );
    let (after, text) = after;
    let moved = |k: &str| {
        let (a, b) = (after.get(k).copied(), before.get(k).copied().unwrap_or(0.0));
        assert!(a.is_some_and(|a| a > b), "{k} did not move: {b} -> {a:?}\n{text}");
    };
    for k in [
        "hpfriends_connections_accepted_total",
        "hpfriends_auth_ok_total",
        r#"hpfriends_auth_failures_total{reason="wrong_secret"}"#,
        r#"hpfriends_auth_failures_total{reason="unknown_ident"}"#,
        r#"hpfriends_frames_received_total{opcode="auth"}"#,
        r#"hpfriends_frames_received_total{opcode="publish"}"#,
        r#"hpfriends_frames_received_total{opcode="subscribe"}"#,
        r#"hpfriends_frames_sent_total{opcode="info"}"#,
        r#"hpfriends_frames_sent_total{opcode="error"}"#,
        r#"hpfriends_frames_sent_total{opcode="publish"}"#,
        "hpfriends_received_bytes_total",
        "hpfriends_sent_bytes_total",
        "hpfriends_messages_published_total",
        "hpfriends_messages_delivered_total",
        r#"hpfriends_channel_messages_published_total{channel="metrics.chan"}"#,
        r#"hpfriends_channel_messages_delivered_total{channel="metrics.chan"}"#,
        r#"hpfriends_channel_published_bytes_total{channel="metrics.chan"}"#,
        "hpfriends_delivery_latency_seconds_count",
        "hpfriends_acl_refusals_total",
        "hpfriends_acl_changes_applied_total",
        "hpfriends_acl_keys_changed_total",
        "hpfriends_acl_apply_seconds_count",
        "hpfriends_authkeys",
        "hpfriends_process_resident_memory_bytes",
    ] {
        moved(k);
    }
    assert!(after.contains_key("hpfriends_connections_open"), "{text}");
    assert!(after["hpfriends_db_pool_connections_open"] >= 1.0, "{text}");
    assert!(after.contains_key("hpfriends_outbox_queued_bytes"), "{text}");
    // The change log is read every acl_poll_ms on SQLite: the lag is a poll, not minutes.
    assert!(
        after
            .get("hpfriends_graph_feed_lag_seconds")
            .is_some_and(|l| (0.0..60.0).contains(l)),
        "{text}"
    );
    assert!(
        after.contains_key(r#"hpfriends_slow_consumer_events_total{outcome="waited"}"#),
        "{text}"
    );
    assert!(
        after.contains_key(r#"hpfriends_mails_total{outcome="sent"}"#),
        "{text}"
    );
    assert!(after.contains_key(r#"hpfriends_connections_refused_total{reason="connection_limit"}"#));
    assert!(
        text.contains("# TYPE hpfriends_delivery_latency_seconds histogram"),
        "{text}"
    );
    // Every histogram as Prometheus reads it: cumulative buckets, the last `+Inf` and equal
    // to the count.
    for h in [
        "hpfriends_delivery_latency_seconds",
        "hpfriends_acl_apply_seconds",
    ] {
        let buckets: Vec<(&str, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{h}_bucket{{le=\"")))
            .filter_map(|l| {
                let (le, rest) = l.split_once("\"}")?;
                Some((le, rest.trim().parse().ok()?))
            })
            .collect();
        assert!(buckets.len() > 2, "{h}: {text}");
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{h} not cumulative: {buckets:?}"
        );
        assert_eq!(buckets.last().map(|b| b.0), Some("+Inf"), "{h}: {buckets:?}");
        assert_eq!(
            buckets.last().map(|b| b.1),
            after.get(&format!("{h}_count")).copied(),
            "{h}: {buckets:?}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[test]
fn the_website_serves_metrics_to_loopback_or_to_the_token_only() {
    let s = TestServer::start();
    let web = s.web.unwrap();
    let (status, body) = get(web, "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hpfriends_connections_open"), "{body}");
    // Through a proxy on this host, the peer is loopback but the scraper is not.
    let (status, body) = get(web, "/metrics", &["X-Forwarded-For: 203.0.113.9"]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("metrics_token"), "{body}");

    let s = TestServer::start_with(&[], &[("HPFRIENDS_METRICS_TOKEN", "metrics-t0ken-1234")]);
    let web = s.web.unwrap();
    assert_eq!(get(web, "/metrics", &[]).0, 403);
    assert_eq!(get(web, "/metrics", &["Authorization: Bearer nope"]).0, 403);
    assert_eq!(
        get(web, "/metrics", &["Authorization: Bearer metrics-t0ken-1234"]).0,
        200
    );
}

#[test]
fn channel_series_are_bounded_by_metrics_top_channels() {
    let s = TestServer::start_with(
        &["--metrics-listen", "127.0.0.1:0"],
        &[("HPFRIENDS_METRICS_TOP_CHANNELS", "3")],
    );
    s.user("alice");
    let names: Vec<String> = (0..20).map(|i| format!("c{i:02}\"q")).collect();
    let mut publish: Vec<&str> = names.iter().map(String::as_str).collect();
    publish.push("sync");
    // Names no one may type any more, but a key imported from another broker may carry.
    let store = s.dir.path().join("auth.json");
    let auth = serde_json::json!({"p": {"owner": "alice", "secret": "s", "pubchans": publish, "subchans": ["sync"]}});
    std::fs::write(&store, auth.to_string()).unwrap();
    s.cli_ok(&["import", "--from", "hpfeeds-json", store.to_str().unwrap()]);
    s.wait_key("p", "s");
    let mut p = Raw::login(s.addr, "p", "s");
    for (i, name) in names.iter().enumerate() {
        for _ in 0..=i {
            p.publish(name, b"x");
        }
    }
    p.barrier("sync");
    let (_, text) = get(metrics_addr(&s), "/metrics", &[]);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hpfriends_channel_messages_published_total{"))
        .collect();
    assert_eq!(series.len(), 4, "{series:?}");
    // The busiest three, escaped, then the rest summed.
    assert!(
        series.iter().any(|l| l.contains(r#"channel="c19\"q"} 20"#)),
        "{series:?}"
    );
    // c00 … c16, and the barrier's marker on sync.
    let other = (1..=17).sum::<i32>() + 1;
    assert!(
        series
            .iter()
            .any(|l| l.contains(&format!(r#"channel="other"}} {other}"#))),
        "{series:?}"
    );
}

#[test]
fn channel_traffic_reaches_the_catalogue_in_five_minute_buckets() {
    use hpfriends::wire::Channel;
    let s = TestServer::start();
    s.user("alice");
    s.key("alice", "pub1", "s1", &["cat.chan"], &[]);
    s.key("alice", "sub1", "s2", &["sync"], &["cat.chan", "sync"]);
    s.wait_key("sub1", "s2");
    // Subscribed for sure once its own barrier message came back.
    let mut sub = Raw::live_subscriber(s.addr, "sub1", "s2", "cat.chan");
    let mut p = Raw::login(s.addr, "pub1", "s1");
    for i in 0..30 {
        p.publish("cat.chan", format!("m{i:02}").as_bytes());
    }
    for _ in 0..30 {
        sub.expect_publish();
    }
    let store = hpfriends::store::Store::open(s.db().url()).unwrap();
    let ch = Channel::new("cat.chan").unwrap();
    let totals = || {
        let t = store.channel_traffic(std::slice::from_ref(&ch), 0).unwrap();
        t.get(&ch).map_or((0, 0, 0), |v| {
            v.iter().fold((0, 0, 0), |a, t| {
                (a.0 + t.messages, a.1 + t.bytes, a.2 + t.deliveries)
            })
        })
    };
    // Written with the key counters (every 5 s), and not again: the next flush adds only
    // what is new.
    wait_for(
        "30 messages and deliveries in the traffic",
        Duration::from_secs(20),
        || {
            let t = totals();
            (t.0 == 30 && t.2 == 30).then_some(())
        },
    );
    let (_, bytes, _) = totals();
    assert!(bytes >= 30 * 5, "{bytes}");
    p.publish("cat.chan", b"later");
    sub.expect_publish();
    wait_for("the 31st message in the traffic", Duration::from_secs(20), || {
        (totals().0 == 31).then_some(())
    });
    // Each key's side of it, for its owner's feed health (written just after).
    let alice = store.user_by_name("alice").unwrap().unwrap();
    wait_for("each key's side of the traffic", Duration::from_secs(20), || {
        let keys = store.key_traffic_of(alice.id, 0).unwrap();
        let sum = |ident: &str, f: fn(&hpfriends::domain::listing::KeyTraffic) -> i64| {
            keys.get(ident).map_or(0, |v| v.iter().map(f).sum::<i64>())
        };
        // sub1 also got its own barrier message on `sync`.
        (sum("pub1", |t| t.published) == 31 && sum("sub1", |t| t.received) == 32).then_some(())
    });
    let rows = store.channel_traffic(std::slice::from_ref(&ch), 0).unwrap();
    for t in &rows[&ch] {
        assert_eq!(t.bucket % 300, 0, "{t:?}");
    }
}
