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
    assert_eq!(mallory.get(&app, "/account").await.location(), "/login");
    let p = mallory.get(&app, &path_of(&change)).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "the change link still worked");
    let a = site.store.user_by_name("alice").unwrap().unwrap();
    assert_eq!(a.email, "alice@example.org");
    // So a reset asked for by name goes to alice, not to mallory.
    let mut m2 = from("203.0.113.9");
    m2.get(&app, "/reset").await;
    m2.post(&app, "/reset", &[("login", "alice")]).await;
    site.mail_barrier().await;
    assert!(
        !site
            .mails()
            .iter()
            .any(|m| m.contains("To: mallory@evil.example") && m.contains("/reset/")),
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
    assert_eq!(b.get(&app, "/account").await.location(), "/login");
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
async fn a_grant_never_accepts_a_wider_offer_for_the_requester() {
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
    // Granting the request does not accept that offer on bob's behalf.
    let grant = format!("/api/v1/requests/{request}/grant");
    let (s, body) = a.api(&app, Method::POST, &grant, &ta, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not answered"), "{body}");
    let (_, shares) = a.api(&app, Method::GET, "/api/v1/shares", &tb, None).await;
    let found = shares.to_string().contains(&format!("\"id\":{wide}"));
    assert!(found, "{shares}");
    let pending = shares["incoming"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == wide)
        .unwrap();
    assert_eq!(pending["state"], "offered", "{pending}");
    let (_, body) = a.api(&app, Method::GET, "/api/v1/requests", &tb, None).await;
    assert_eq!(body["outgoing"][0]["state"], "open", "{body}");
    // Once alice withdraws the wide offer, the grant makes exactly what was asked.
    let (s, body) = a
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/shares/{wide}/revoke"),
            &ta,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = a.api(&app, Method::POST, &grant, &ta, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let share = body["share"].as_i64().unwrap();
    let (_, shares) = a.api(&app, Method::GET, "/api/v1/shares", &tb, None).await;
    let made = shares["incoming"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == share)
        .unwrap();
    assert_eq!(made["type"], "own", "{made}");
    assert_eq!(made["onward"], false, "{made}");
    assert_eq!(made["state"], "accepted", "{made}");
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
    assert_eq!(tossed.get(&app, "/account").await.location(), "/login");
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
