//! What an attacker tried against the website's accounts and consent (issue "Trust, third
//! round"): a takeover that outlived recovery, resets locked out by name, a grant that
//! accepted more than was asked, cookies tossed from another port. Through the real
//! handlers on a real database (SQLite, and PostgreSQL in CI's second pass).
#![allow(clippy::unwrap_used)]

mod common;

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use common::site::{Browser, Site};

fn path_of(link: &str) -> String {
    link.trim_start_matches("http://hpfriends.test").to_owned()
}

fn from(ip: &str) -> Browser {
    Browser {
        peer: Some(format!("{ip}:40000").parse().unwrap()),
        ..Browser::default()
    }
}

#[actix_web::test]
async fn a_takeover_does_not_survive_recovery() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    // Mallory knows alice's password: she signs in and starts moving the address to hers.
    let mut mallory = from("203.0.113.9");
    mallory.login(&app, "alice").await;
    mallory.get(&app, "/account").await;
    let p = mallory
        .post(
            &app,
            "/account/email",
            &[
                ("email", "mallory@evil.example"),
                ("current", "alice-long-passphrase"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let change = site.mail_link("mallory@evil.example", "/verify/").await;
    assert!(
        site.mail_text("alice@example.org", "being changed").await,
        "the old address is told"
    );
    // Alice recovers: a reset by mail, a new password.
    let mut alice = from("198.51.100.7");
    alice.get(&app, "/reset").await;
    let p = alice.post(&app, "/reset", &[("login", "alice")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let reset = site.mail_link("alice@example.org", "/reset/").await;
    alice.get(&app, &path_of(&reset)).await;
    let p = alice
        .post(
            &app,
            &path_of(&reset),
            &[
                ("password", "a brand new passphrase"),
                ("password2", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/login?ok=password-reset", "{}", p.body);
    // Mallory's session is gone, and so is the email change she started with the old password.
    assert_eq!(
        mallory.get(&app, "/account").await.location(),
        "/login?next=%2Faccount"
    );
    let p = mallory.get(&app, &path_of(&change)).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "the change link still worked");
    let a = site.store.user_by_name("alice").unwrap().unwrap();
    assert_eq!(a.email, "alice@example.org");
    // So a reset asked for by name goes to alice, not to mallory.
    let mut m2 = from("203.0.113.9");
    m2.get(&app, "/reset").await;
    m2.post(&app, "/reset", &[("login", "alice")]).await;
    assert!(
        site.no_mail("mallory@evil.example", "/reset/").await,
        "a reset link reached mallory"
    );
}

#[actix_web::test]
async fn a_confirmed_new_address_voids_what_was_mailed_to_the_old_one() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("bob").await;
    let mut b = from("198.51.100.8");
    b.login(&app, "bob").await;
    let token = site.api_token("bob").await;
    // A reset link goes to the old address, then the address changes.
    let mut r = from("198.51.100.9");
    r.get(&app, "/reset").await;
    r.post(&app, "/reset", &[("login", "bob")]).await;
    let old_reset = site.mail_link("bob@example.org", "/reset/").await;
    b.get(&app, "/account").await;
    b.post(
        &app,
        "/account/email",
        &[("email", "bob@new.example"), ("current", "bob-long-passphrase")],
    )
    .await;
    let change = site.mail_link("bob@new.example", "/verify/").await;
    let p = Browser::default().get(&app, &path_of(&change)).await;
    assert_eq!(p.location(), "/login?ok=verified");
    assert_eq!(
        site.store.user_by_name("bob").unwrap().unwrap().email,
        "bob@new.example"
    );
    // The old reset link, the old sessions and the API token are worth nothing now.
    let mut holder = Browser::default();
    holder.get(&app, &path_of(&old_reset)).await;
    let p = holder
        .post(
            &app,
            &path_of(&old_reset),
            &[
                ("password", "taken over, surely"),
                ("password2", "taken over, surely"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert_eq!(b.get(&app, "/account").await.location(), "/login?next=%2Faccount");
    let (s, _) = b.api(&app, Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The owner signs in with the password they had.
    b.login(&app, "bob").await;
}

#[actix_web::test]
async fn a_dead_reset_link_is_refused_before_any_password_is_hashed() {
    let site = Site::new().await;
    let app = site.app().await;
    let mut b = Browser::default();
    b.get(&app, "/reset/bogus-token").await;
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let p = b
            .post(
                &app,
                "/reset/bogus-token",
                &[
                    ("password", "a fine passphrase"),
                    ("password2", "a fine passphrase"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);
    }
    // No timing assert (a figure, not a test): print what 50 refusals took.
    eprintln!("50 bogus resets answered in {:?}", started.elapsed());
}

#[actix_web::test]
async fn resets_are_limited_per_address_and_account_never_per_account_alone() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("carol").await;
    // The owner asks from home.
    let mut owner = from("198.51.100.20");
    owner.get(&app, "/reset").await;
    let p = owner.post(&app, "/reset", &[("login", "carol")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let link = site.mail_link("carol@example.org", "/reset/").await;
    // A stranger asks for the same account, by name and by address, in any case.
    let mut stranger = from("203.0.113.50");
    stranger.get(&app, "/reset").await;
    let mut statuses = Vec::new();
    for login in ["carol", "CAROL", "carol@example.org", "Carol"] {
        statuses.push(stranger.post(&app, "/reset", &[("login", login)]).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::SEE_OTHER,
            StatusCode::SEE_OTHER,
            StatusCode::SEE_OTHER,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "every spelling of one account shares the stranger's bucket"
    );
    // The stranger's requests neither void the owner's link nor block the owner's address.
    let mut o2 = Browser::default();
    o2.get(&app, &path_of(&link)).await;
    let p = o2
        .post(
            &app,
            &path_of(&link),
            &[
                ("password", "carol's new passphrase"),
                ("password2", "carol's new passphrase"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/login?ok=password-reset", "{}", p.body);
    let p = owner.post(&app, "/reset", &[("login", "carol")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
}

#[actix_web::test]
async fn a_grant_makes_exactly_what_it_says_and_leaves_a_wider_offer_pending() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/authkeys").await;
    a.post(&app, "/authkeys", &[("publish", "grant.chan")]).await;
    let (ta, tb) = (site.api_token("alice").await, site.api_token("bob").await);
    let req = json!({"channel": "grant.chan", "publisher": "alice", "note": "your own data, please"});
    let (s, body) = a
        .api(&app, Method::POST, "/api/v1/requests", &tb, Some(req))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let request = body["id"].as_i64().unwrap();
    // Alice offers more than was asked: what she receives too, and onward travel.
    let offer = json!({"channel": "grant.chan", "to_user": "bob", "redistribute": true, "onward": true});
    let (s, body) = a
        .api(&app, Method::POST, "/api/v1/shares", &ta, Some(offer))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let wide = body["id"].as_i64().unwrap();
    // Granting the request makes a share of alice's own data, no onward travel, beside the
    // offer, which bob has not answered and which stays pending.
    let grant = format!("/api/v1/requests/{request}/grant");
    let (s, body) = a.api(&app, Method::POST, &grant, &ta, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let share = body["share"].as_i64().unwrap();
    assert_ne!(share, wide, "the grant is not the wide offer");
    let incoming = |shares: &serde_json::Value, id: i64| {
        shares["incoming"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no share {id} in {shares}"))
    };
    let (_, shares) = a.api(&app, Method::GET, "/api/v1/shares", &tb, None).await;
    let made = incoming(&shares, share);
    assert_eq!(made["type"], "own", "{made}");
    assert_eq!(made["onward"], false, "{made}");
    assert_eq!(made["state"], "accepted", "{made}");
    assert_eq!(incoming(&shares, wide)["state"], "offered", "{shares}");
    let (_, body) = a.api(&app, Method::GET, "/api/v1/requests", &tb, None).await;
    assert_eq!(body["outgoing"][0]["state"], "granted", "{body}");
    // Alice cannot offer the same again while both stand.
    let again = json!({"channel": "grant.chan", "to_user": "bob"});
    let (s, body) = a
        .api(&app, Method::POST, "/api/v1/shares", &ta, Some(again))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    // When bob accepts the wider offer, it takes the grant's place: one accepted share.
    let (s, body) = a
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/shares/{wide}/accept"),
            &tb,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, shares) = a.api(&app, Method::GET, "/api/v1/shares", &tb, None).await;
    assert_eq!(incoming(&shares, wide)["state"], "accepted", "{shares}");
    let accepted = shares["incoming"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "accepted")
        .count();
    assert_eq!(accepted, 1, "{shares}");
}

#[actix_web::test]
async fn over_https_cookies_are_host_prefixed_and_secure() {
    let site = Site::with(|c| c.public_url = "https://hpfriends.test".into()).await;
    let app = site.app().await;
    site.account("dave").await;
    let mut b = Browser::default();
    b.get(&app, "/login").await;
    assert!(b.cookies.contains_key("__Host-hpf_csrf"), "{:?}", b.cookies);
    b.login(&app, "dave").await;
    assert!(b.cookies.contains_key("__Host-hpf_session"), "{:?}", b.cookies);
    assert!(!b.cookies.contains_key("hpf_session"));
    // A cookie tossed in without the prefix (from another port of the host) is not a session.
    let mut tossed = Browser::default();
    tossed
        .cookies
        .insert("hpf_session".into(), b.cookies["__Host-hpf_session"].clone());
    assert_eq!(
        tossed.get(&app, "/account").await.location(),
        "/login?next=%2Faccount"
    );
    // The attributes browsers require of the prefix.
    let req = actix_web::test::TestRequest::get()
        .uri("/login")
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    let c = res
        .response()
        .cookies()
        .find(|c| c.name() == "__Host-hpf_csrf")
        .unwrap();
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.domain(), None);
}

/// One HTTP/1.1 request from the source address `src` (any of 127/8 on Linux); the status,
/// the `Set-Cookie` values and the body.
fn http_from(
    src: std::net::IpAddr,
    to: std::net::SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (u16, Vec<String>, String) {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::new(src, 0).into()).unwrap();
    sock.connect(&to.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let cookies = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|v| v.split(';').next().unwrap().to_owned())
        .collect();
    (status, cookies, text)
}

/// GETs `page` for a CSRF cookie and field, then POSTs `fields` to `action` with them.
fn form_from(
    src: std::net::IpAddr,
    to: std::net::SocketAddr,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> u16 {
    let (_, cookies, body) = http_from(src, to, "GET", page, "", "");
    let csrf = common::http::input_value(&body, "csrf");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let form = serde_urlencoded::to_string(&all).unwrap();
    http_from(src, to, "POST", action, &cookies.join("; "), &form).0
}

#[test]
fn a_flood_of_bogus_resets_and_wrong_logins_leaves_memory_bounded_and_a_real_login_answered() {
    use std::sync::Arc;
    let s = common::TestServer::start();
    let web = s.web.unwrap();
    let store = hpfriends::store::Store::open(s.db().url()).unwrap();
    let hash = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(hpfriends::web::password::hash("erin-long-passphrase".into()))
        .unwrap();
    let erin = store.create_account("erin", "erin@example.org", &hash).unwrap();
    store.confirm_email(erin.id, &erin.email).unwrap();
    let real = |src: &str| {
        form_from(
            src.parse().unwrap(),
            web,
            "/login",
            "/login",
            &[("login", "erin"), ("password", "erin-long-passphrase")],
        )
    };
    // One login first: the server's hashing memory as it is in normal use.
    assert_eq!(real("127.0.0.1"), 303);
    let before = s.rss_kib();
    // Four addresses, each with 40 wrong logins (each for another name, so every one is
    // within the per-account quota and costs a hash) and 40 posts of bogus reset tokens,
    // all at once.
    const EACH: usize = 40;
    let statuses = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeMap::<u16, usize>::new(),
    ));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let pid = s.pid();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    })
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let mut threads = Vec::new();
    for a in 2..6 {
        for i in 0..EACH * 2 {
            let statuses = Arc::clone(&statuses);
            threads.push(std::thread::spawn(move || {
                let src: std::net::IpAddr = format!("127.0.0.{a}").parse().unwrap();
                let status = if i % 2 == 0 {
                    let name = format!("nobody{a}x{i}");
                    form_from(
                        src,
                        web,
                        "/login",
                        "/login",
                        &[("login", &name), ("password", "not the password at all")],
                    )
                } else {
                    form_from(
                        src,
                        web,
                        "/reset/bogus",
                        "/reset/bogus",
                        &[
                            ("password", "a fine passphrase"),
                            ("password2", "a fine passphrase"),
                        ],
                    )
                };
                *statuses.lock().unwrap().entry(status).or_default() += 1;
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
    let statuses = statuses.lock().unwrap().clone();
    // A real user's login is answered, from an address that took part and one that did not.
    assert_eq!(real("127.0.0.2"), 303);
    assert_eq!(real("127.0.0.9"), 303);
    let after = s.rss_kib();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "flood of {} requests: {statuses:?}; RSS {before} KiB before, peak {peak} KiB, {after} KiB after",
        4 * EACH * 2
    );
    // Wrong logins are refused (401) or, past the hashing queue's wait, 503; bogus resets
    // are 404 without a hash.
    assert_eq!(statuses.get(&404).copied().unwrap_or(0), 4 * EACH, "{statuses:?}");
    assert!(
        statuses.keys().all(|c| [401, 404, 503].contains(c)),
        "{statuses:?}"
    );
    // Hashing memory is the pool's few blocks (19 MiB each, one per core at most): the
    // flood may add at most a few of them and the connections' buffers, never one per
    // request (160 × 19 MiB ≈ 3 GB before the bound).
    let bound = 96 * 1024;
    assert!(
        peak.saturating_sub(before) < bound,
        "RSS peaked {} KiB above its level",
        peak - before
    );
    assert!(
        after.saturating_sub(before) < bound,
        "RSS stayed {} KiB above its level",
        after - before
    );
}

/// A browser whose requests reach the site through a proxy at `proxy` that says they come
/// from `client`.
fn behind(proxy: &str, client: &str) -> Browser {
    Browser {
        peer: Some(format!("{proxy}:40000").parse().unwrap()),
        headers: vec![("x-forwarded-for".into(), client.into())],
        ..Browser::default()
    }
}

#[actix_web::test]
async fn behind_a_trusted_proxy_limits_key_on_the_client_it_names() {
    let site = Site::with(|c| c.trusted_proxies = "127.0.0.1/32".into()).await;
    let app = site.app().await;
    site.account("erin").await;
    // An attacker behind the proxy spreads 102 wrong logins over 30 accounts: past the
    // per-address quota (100), the attacker is refused…
    let mut attacker = behind("127.0.0.1", "203.0.113.66");
    attacker.get(&app, "/login").await;
    let mut refused = 0;
    for i in 0..102 {
        let login = format!("user{}", i % 30);
        let p = attacker
            .post(
                &app,
                "/login",
                &[("login", &login), ("password", "guess-guess-guess")],
            )
            .await;
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    // …and the real user, through the same proxy, is not.
    let mut user = behind("127.0.0.1", "198.51.100.44");
    user.login(&app, "erin").await;
    // A client that writes its own X-Forwarded-For, not through the proxy, is its peer.
    let mut forger = behind("203.0.113.66", "198.51.100.99");
    forger.get(&app, "/login").await;
    let p = forger
        .post(
            &app,
            "/login",
            &[("login", "erin"), ("password", "guess-guess-guess")],
        )
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
    // A forged first hop through the proxy does not help either: the proxy appends the
    // real address, and the rightmost untrusted hop is the client.
    let mut chained = behind("127.0.0.1", "198.51.100.99, 203.0.113.66");
    chained.get(&app, "/login").await;
    let p = chained
        .post(
            &app,
            "/login",
            &[("login", "erin"), ("password", "guess-guess-guess")],
        )
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "{}", p.body);
}

#[actix_web::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let site = Site::new().await;
    let app = site.app().await;
    // Each request claims another client: all of them are the one peer.
    let mut refused = 0;
    for i in 0..101 {
        let mut b = behind("203.0.113.70", &format!("198.51.100.{}", i % 250));
        b.get(&app, "/login").await;
        let p = b
            .post(
                &app,
                "/login",
                &[("login", "nobody"), ("password", "guess-guess-guess")],
            )
            .await;
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    // The per-account bucket (10) is keyed on the peer too, so the tenth and later fail.
    assert!(refused >= 90, "{refused}");
}

#[actix_web::test]
async fn metrics_through_a_proxy_only_for_a_loopback_client_it_names() {
    let site = Site::with(|c| c.trusted_proxies = "10.0.0.1".into()).await;
    let app = site.app().await;
    let status = |peer: &str, headers: &[(&str, &str)]| {
        let mut r = actix_web::test::TestRequest::get()
            .uri("/metrics")
            .peer_addr(format!("{peer}:40000").parse().unwrap());
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_request()
    };
    let call = |req| actix_web::test::call_service(&app, req);
    assert_eq!(call(status("127.0.0.1", &[])).await.status(), StatusCode::OK);
    // A proxy on this host that is not trusted, whatever header it sets.
    for h in ["x-forwarded-for", "x-real-ip", "forwarded"] {
        let v = if h == "forwarded" {
            "for=127.0.0.1"
        } else {
            "127.0.0.1"
        };
        assert_eq!(
            call(status("127.0.0.1", &[(h, v)])).await.status(),
            StatusCode::FORBIDDEN,
            "{h}"
        );
    }
    // The trusted proxy: a loopback client it names may, a remote one may not, and
    // X-Real-IP alone names nobody.
    assert_eq!(
        call(status("10.0.0.1", &[("x-forwarded-for", "127.0.0.1")]))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(status("10.0.0.1", &[("x-forwarded-for", "198.51.100.1")]))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(status("10.0.0.1", &[("x-real-ip", "127.0.0.1")]))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[actix_web::test]
async fn a_block_stops_invitations_and_their_mail() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let (ta, tb) = (site.api_token("alice").await, site.api_token("bob").await);
    let mut b = Browser::default();
    let (s, _) = b.api(&app, Method::PUT, "/api/v1/blocks/bob", &ta, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups",
            &tb,
            Some(json!({"name": "bobs-club"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups/bobs-club/invite",
            &tb,
            Some(json!({"user": "alice"})),
        )
        .await;
    // Bob is answered as for anyone (nothing tells him of the block)…
    assert_eq!(s, StatusCode::OK, "{body}");
    // …but alice has no invitation and no mail.
    let (_, groups) = b.api(&app, Method::GET, "/api/v1/groups", &ta, None).await;
    assert!(!groups.to_string().contains("bobs-club"), "{groups}");
    assert!(
        site.no_mail("alice@example.org", "invites you").await,
        "an invitation mail reached alice"
    );
}

#[actix_web::test]
async fn open_offers_invitations_and_owned_groups_are_bounded_per_user() {
    use hpfriends::config::limits::{MAX_GROUPS_OWNED, MAX_OPEN_INVITATIONS, MAX_OPEN_OFFERS};
    use hpfriends::social::ops::{self, GranteeName};
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let spammer = site.account("spammer").await;
    site.account("victim").await;
    let store = &site.store;
    for i in 0..MAX_OPEN_OFFERS {
        let c = Channel::new(&format!("spam.{i}")).unwrap();
        ops::offer_share(
            store,
            &spammer,
            &c,
            &GranteeName::User("victim".into()),
            hpfriends::domain::model::ShareKind::Own,
            false,
        )
        .unwrap();
    }
    let token = site.api_token("spammer").await;
    let mut b = Browser::default();
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &token,
            Some(json!({"channel": "spam.more", "to_user": "victim"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("waiting for an answer"),
        "{body}"
    );
    // A public offer is no one's inbox: not bounded by this.
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &token,
            Some(json!({"channel": "spam.public", "to_everyone": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    for i in 0..MAX_GROUPS_OWNED {
        ops::create_group(store, &spammer, &format!("g{i}"), "").unwrap();
    }
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups",
            &token,
            Some(json!({"name": "one-more"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");

    for i in 0..MAX_OPEN_INVITATIONS {
        let name = format!("u{i}");
        store
            .add_user(&name, &format!("{name}@example.org"), "test")
            .unwrap();
        ops::invite(store, &spammer, &format!("g{}", i % MAX_GROUPS_OWNED), &name).unwrap();
    }
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups/g0/invite",
            &token,
            Some(json!({"user": "victim"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
}

#[actix_web::test]
async fn reach_hides_a_groups_members_from_a_sharer_outside_it() {
    use hpfriends::social::ops::{self, GranteeName};
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    let owner = site.account("owner").await;
    let store = &site.store;
    for m in ["m1", "m2"] {
        site.account(m).await;
    }
    ops::create_group(store, &owner, "research", "").unwrap();
    for m in ["m1", "m2"] {
        ops::invite(store, &owner, "research", m).unwrap();
        ops::accept_invitation(store, &store.user_by_name(m).unwrap().unwrap(), "research").unwrap();
    }
    let c = Channel::new("r.chan").unwrap();
    let id = ops::offer_share(
        store,
        &alice,
        &c,
        &GranteeName::Group("research".into()),
        hpfriends::domain::model::ShareKind::Own,
        false,
    )
    .unwrap();
    ops::answer_share(store, &owner, id, true).unwrap();
    let mut b = Browser::default();
    let token = site.api_token("alice").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/reach", &token, None).await;
    let text = body.to_string();
    assert!(!text.contains("\"m1\"") && !text.contains("\"m2\""), "{body}");
    assert!(text.contains("3 members of group research"), "{body}");
    assert_eq!(body["channels"][0]["receivers"][0]["count"], 3, "{body}");
    // A member of the group sees the names (they could list the members anyway).
    let id2 = ops::offer_share(
        store,
        &store.user_by_name("m1").unwrap().unwrap(),
        &c,
        &GranteeName::Group("research".into()),
        hpfriends::domain::model::ShareKind::Own,
        false,
    )
    .unwrap();
    ops::answer_share(store, &owner, id2, true).unwrap();
    let t1 = site.api_token("m1").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/reach", &t1, None).await;
    assert!(body.to_string().contains("\"m2\""), "{body}");
}

#[actix_web::test]
async fn reach_follows_redistribution_and_shows_a_change_made_elsewhere_at_once() {
    use hpfriends::domain::model::ShareKind;
    use hpfriends::social::ops::{self, GranteeName};
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    let bob = site.account("bob").await;
    let carol = site.account("carol").await;
    let store = &site.store;
    let c = Channel::new("chain.chan").unwrap();
    // alice → bob (her data may travel on) → carol (bob passes on what he receives). Made
    // through the library, as the CLI makes them: the server learns of them from the log.
    let to_bob = ops::offer_share(
        store,
        &alice,
        &c,
        &GranteeName::User("bob".into()),
        ShareKind::Own,
        true,
    )
    .unwrap();
    ops::answer_share(store, &bob, to_bob, true).unwrap();
    let to_carol = ops::offer_share(
        store,
        &bob,
        &c,
        &GranteeName::User("carol".into()),
        ShareKind::Redistribute,
        false,
    )
    .unwrap();
    ops::answer_share(store, &carol, to_carol, true).unwrap();
    let mut b = Browser::default();
    let token = site.api_token("alice").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/reach", &token, None).await;
    let receivers = &body["channels"][0]["receivers"];
    assert_eq!(body["channels"][0]["channel"], "chain.chan", "{body}");
    assert_eq!(receivers[0]["user"], "bob", "{body}");
    assert_eq!(receivers[0]["through"], json!([]), "{body}");
    assert_eq!(receivers[1]["user"], "carol", "{body}");
    assert_eq!(receivers[1]["through"], json!(["bob"]), "{body}");
    assert_eq!(
        receivers[1]["share"], to_bob.0,
        "alice's share starts the path: {body}"
    );
    // carol blocks alice (elsewhere): the next read no longer counts her.
    ops::block_user(store, &carol, "alice").unwrap();
    let (_, body) = b.api(&app, Method::GET, "/api/v1/reach", &token, None).await;
    let receivers = body["channels"][0]["receivers"].as_array().unwrap().clone();
    assert_eq!(receivers.len(), 1, "{body}");
    assert_eq!(receivers[0]["user"], "bob", "{body}");
    // The page says the same.
    let mut web = Browser::default();
    web.login(&app, "alice").await;
    let page = web.get(&app, "/reach").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("bob") && !page.body.contains("carol"),
        "{}",
        page.body
    );
    // In words, never a bare share id the Shares page does not show.
    assert!(!page.body.contains("(share "), "{}", page.body);
    assert!(page.body.contains("your share to"), "{}", page.body);
}

#[actix_web::test]
async fn a_wide_reach_comes_a_page_at_a_time() {
    use hpfriends::domain::model::ShareKind;
    use hpfriends::social::ops::{self, GranteeName};
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    let store = &site.store;
    let c = Channel::new("wide.chan").unwrap();
    for i in 0..120 {
        let name = format!("r{i:03}");
        let u = store
            .add_user(&name, &format!("{name}@example.org"), "test")
            .unwrap();
        let id =
            ops::offer_share(store, &alice, &c, &GranteeName::User(name), ShareKind::Own, false).unwrap();
        ops::answer_share(store, &u, id, true).unwrap();
    }
    let mut b = Browser::default();
    let token = site.api_token("alice").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/reach", &token, None).await;
    let first = &body["channels"][0];
    assert_eq!(first["receivers"].as_array().unwrap().len(), 100, "{body}");
    assert_eq!(
        (first["total"].clone(), first["more"].clone()),
        (json!(120), json!(true)),
        "{body}"
    );
    let (_, body) = b
        .api(
            &app,
            Method::GET,
            "/api/v1/reach?channel=wide.chan&page=1",
            &token,
            None,
        )
        .await;
    let second = &body["channels"][0];
    assert_eq!(second["receivers"].as_array().unwrap().len(), 20, "{body}");
    assert_eq!(second["more"], json!(false), "{body}");
    let long = format!("/api/v1/reach?channel={}", "x".repeat(256));
    let (status, body) = b.api(&app, Method::GET, &long, &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The page: the first 100, and a link to the rest.
    let mut web = Browser::default();
    web.login(&app, "alice").await;
    let page = web.get(&app, "/reach").await;
    assert!(page.body.contains("120 receivers in all"), "{}", page.body);
    assert!(
        page.body.contains("More receivers of wide.chan")
            && page.body.contains("channel&#x3D;wide.chan&amp;page&#x3D;1"),
        "{}",
        page.body
    );
    let page = web.get(&app, "/reach?channel=wide.chan&page=1").await;
    assert!(
        page.body.contains("r119") && !page.body.contains("r000"),
        "{}",
        page.body
    );
}

#[actix_web::test]
async fn free_text_refuses_control_and_bidi_characters_and_mail_quotes_notes() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let ta = site.api_token("alice").await;
    let tb = site.api_token("bob").await;
    let mut b = Browser::default();
    // A key's comment (one line).
    for bad in ["red \u{1b}[31m", "two\nlines", "nul\0", "admin\u{202e}txt.exe"] {
        let (s, body) = b
            .api(
                &app,
                Method::POST,
                "/api/v1/authkeys",
                &ta,
                Some(json!({"publish": ["c"], "comment": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/authkeys",
            &ta,
            Some(json!({"publish": ["note.chan"], "comment": "sensor in Zürich — rack 3"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // A group's description may have lines, not escapes.
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups",
            &ta,
            Some(json!({"name": "g1", "description": "bad \u{2066}isolate"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups",
            &ta,
            Some(json!({"name": "g2", "description": "line one\nline two"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // The profile: affiliation is one line.
    let mut web = Browser::default();
    web.login(&app, "alice").await;
    web.get(&app, "/account").await;
    let p = web
        .post(
            &app,
            "/account/profile",
            &[("affiliation", "CERT\r\nX-Injected: 1"), ("about", "")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    let p = web
        .post(
            &app,
            "/account/profile",
            &[("affiliation", "Uni"), ("about", "bell\u{7}")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    // A note to a publisher: refused with an escape, quoted in the mail otherwise.
    let req = |note: &str| json!({"channel": "note.chan", "publisher": "alice", "note": note});
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/requests",
            &tb,
            Some(req("hi\u{1b}]0;pwned\u{7}")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/requests",
            &tb,
            Some(req("Please share.\nhttp://evil.example/reset -- hpfriends")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert!(
        site.mail_text(
            "alice@example.org",
            "> Please share.\n> http://evil.example/reset -- hpfriends"
        )
        .await
            || site
                .mail_text(
                    "alice@example.org",
                    "> Please share.\r\n> http://evil.example/reset -- hpfriends"
                )
                .await,
        "the note is not quoted: {:?}",
        site.mails()
    );
}

#[actix_web::test]
async fn secrets_have_a_length_bound() {
    use hpfriends::social::ops;
    let site = Site::new().await;
    let alice = site.account("alice").await;
    let huge = hpfriends::wire::Secret::new("x".repeat(50 * 1024 * 1024));
    let e = ops::create_key(
        &site.store,
        &alice,
        None,
        Some(huge),
        vec![],
        vec![],
        String::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("at most 256"), "{e}");
    let fine = hpfriends::wire::Secret::new("y".repeat(256));
    ops::create_key(
        &site.store,
        &alice,
        None,
        Some(fine),
        vec![],
        vec![],
        String::new(),
    )
    .unwrap();
}

#[actix_web::test]
async fn every_spelling_of_an_account_shares_one_login_bucket() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("frank").await;
    let mut b = from("198.51.100.77");
    b.get(&app, "/login").await;
    let spellings = ["frank", "FRANK", "frank@example.org", "Frank@Example.org"];
    let mut refused_at = None;
    for i in 0..12 {
        let p = b
            .post(
                &app,
                "/login",
                &[("login", spellings[i % 4]), ("password", "wrong wrong wrong")],
            )
            .await;
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            refused_at = Some(i);
            break;
        }
    }
    // login_attempts_per_account is 10: the eleventh attempt, whatever its spelling.
    assert_eq!(refused_at, Some(10));
}
