//! The website's handlers through actix-web's test tools: every route's success and its
//! refusals (not logged in, CSRF missing, not the owner, bad field), with the real actors
//! and a real SQLite file behind them.
#![allow(clippy::unwrap_used)]

mod common;

use actix_web::http::{Method, StatusCode, header};
use serde_json::json;

use common::site::{Browser, Site};
use hpfriends::store::models::accounts::TokenKind;
use hpfriends::wire::{Channel, Ident};

/// Every page that needs a login.
const PRIVATE_PAGES: &[&str] = &[
    "/shares",
    "/shared-with-me",
    "/authkeys",
    "/groups",
    "/logs",
    "/search?q=x",
    "/graph",
    "/graph.svg",
    "/account",
    "/live",
    "/live/events?channel=x",
];

/// A form's fields.
type Form<'a> = &'a [(&'a str, &'a str)];

/// Every form (path, fields) of a logged-in user.
const FORMS: &[(&str, Form)] = &[
    ("/logout", &[]),
    ("/shares", &[("channel", "c"), ("to_kind", "everyone")]),
    ("/shares/1/revoke", &[]),
    ("/shares/1/accept", &[]),
    ("/authkeys", &[("publish", "c")]),
    ("/authkeys/somekey/rotate", &[]),
    ("/authkeys/somekey/delete", &[]),
    ("/groups", &[("name", "g")]),
    ("/groups/g/invite", &[("user", "bob")]),
    (
        "/account/password",
        &[("current", "x"), ("password", "y"), ("password2", "y")],
    ),
    ("/account/email", &[("email", "new@example.org")]),
    ("/account/api-token", &[]),
    ("/account/api-token/revoke", &[]),
];

#[actix_web::test]
async fn anonymous_visitors_see_public_pages_and_are_sent_to_login() {
    let site = Site::new().await;
    let app = site.app().await;
    let mut anon = Browser::default();
    for path in [
        "/",
        "/login",
        "/signup",
        "/reset",
        "/assets/style.css",
        "/assets/live.js",
        "/healthz",
        "/api/docs",
        "/favicon.ico",
    ] {
        let p = anon.get(&app, path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
    }
    // The API's documentation, readable: every operation, its body and answers, linked
    // from every page's footer.
    let docs = anon.get(&app, "/api/docs").await;
    assert!(
        docs.body.contains("<code>POST /api/v1/shares</code>"),
        "{}",
        docs.body
    );
    assert!(
        docs.body
            .contains(r##"<a href="#schema-ShareBody">ShareBody</a>"##),
        "{}",
        docs.body
    );
    assert!(docs.body.contains(r#"id="schema-Reach""#));
    assert!(docs.body.contains(r#"<a href="/api/docs">API</a>"#));
    assert!(docs.body.contains(r##"<a class="skip-link" href="#main">"##));
    let home = anon.get(&app, "/").await;
    assert!(
        !home.body.contains("<title>hpfriends · hpfriends</title>"),
        "{}",
        home.body
    );
    assert_eq!(
        anon.get(&app, "/assets/nope.css").await.status,
        StatusCode::NOT_FOUND
    );
    for path in PRIVATE_PAGES {
        let p = anon.get(&app, path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        // On to the page asked for once logged in.
        assert!(
            p.location().starts_with("/login?next=%2F"),
            "{path}: {}",
            p.location()
        );
    }
    for (path, fields) in FORMS {
        let p = anon.post(&app, path, fields).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path} must not act for nobody");
    }
}

#[actix_web::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    let before = site.store.audit_entries(1000).unwrap().len();
    for (path, fields) in FORMS {
        let p = a.post_raw(&app, path, fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path} without a token");
        assert!(
            p.body.contains("did not come from this site"),
            "{path}: {}",
            p.body
        );
        let mut forged = fields.to_vec();
        forged.push(("csrf", "0000000000000000000000000000000000000000000"));
        let p = a.post_raw(&app, path, &forged).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path} with a forged token");
    }
    // The anonymous forms too.
    let mut anon = Browser::default();
    for path in ["/login", "/signup", "/reset"] {
        assert_eq!(
            anon.post_raw(&app, path, &[("login", "alice")]).await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        site.store.audit_entries(1000).unwrap().len(),
        before,
        "nothing was written"
    );
    // Still logged in: logout without a token did nothing.
    assert_eq!(a.get(&app, "/account").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn csrf_tokens_are_bound_to_the_session_and_other_origins_are_refused() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    // A token minted for an anonymous visitor (the attacker's own pre-session, or the
    // victim's before login) is worth nothing in a logged-in session.
    let mut attacker = Browser::default();
    attacker.get(&app, "/login").await;
    let minted = attacker.csrf.clone();
    let mut a = Browser::default();
    a.get(&app, "/login").await;
    let before_login = a.csrf.clone();
    a.login(&app, "alice").await;
    assert_ne!(a.csrf, before_login, "a new token after login");
    for t in [&minted, &before_login] {
        let p = a
            .post_raw(&app, "/account/api-token", &[("csrf", t.as_str())])
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "a token from before the session");
    }
    // The attacker's pre-session cookie planted too does not help while a session exists.
    a.cookies
        .insert("hpf_csrf".into(), attacker.cookies["hpf_csrf"].clone());
    let p = a
        .post_raw(&app, "/account/api-token", &[("csrf", minted.as_str())])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    a.cookies.remove("hpf_csrf");
    // Another origin (a page on another port of the same host) is refused even with the
    // right token; this site's origin passes.
    let cookies: Vec<String> = a.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let post = |origin: Option<(&'static str, &'static str)>| {
        let mut r = actix_web::test::TestRequest::post()
            .uri("/account/api-token")
            .insert_header((header::COOKIE, cookies.join("; ")))
            .set_form([("csrf", a.csrf.as_str())]);
        if let Some(h) = origin {
            r = r.insert_header(h);
        }
        r.to_request()
    };
    for h in [
        ("origin", "http://localhost:9999"),
        ("origin", "null"),
        ("referer", "http://evil.example/page"),
    ] {
        let res = actix_web::test::call_service(&app, post(Some(h))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{h:?}");
    }
    let res = actix_web::test::call_service(&app, post(Some(("origin", "http://hpfriends.test")))).await;
    assert_eq!(res.status(), StatusCode::OK, "the site's own origin");
}

#[actix_web::test]
async fn sign_up_confirm_by_mail_log_in_and_out() {
    let site = Site::new().await;
    let app = site.app().await;
    let mut b = Browser::default();
    b.get(&app, "/signup").await;
    let form = [
        ("name", "carol"),
        ("email", "carol@example.org"),
        ("password", "carol-long-passphrase"),
        ("password2", "carol-long-passphrase"),
    ];
    let p = b.post(&app, "/signup", &form).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Check your email"));
    // The account is made after the answer (so that a registered address is answered in
    // the same time): its confirmation mail says it exists.
    assert!(site.mail_text("carol@example.org", "/verify/").await);
    // Not confirmed yet: no login.
    b.get(&app, "/login").await;
    let p = b
        .post(
            &app,
            "/login",
            &[("login", "carol"), ("password", "carol-long-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("Confirm your email address first"));
    // The same name again is refused next to the field (names are public).
    b.get(&app, "/signup").await;
    let p = b.post(&app, "/signup", &form).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("that user name is taken"));
    // A registered address (in any case) answers exactly as a fresh one, and its owner is
    // mailed instead: sign-up tells nobody who has an account.
    b.get(&app, "/signup").await;
    let taken = b
        .post(
            &app,
            "/signup",
            &[
                ("name", "mallory"),
                ("email", "CAROL@example.org"),
                ("password", "mallory-long-passphrase"),
                ("password2", "mallory-long-passphrase"),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK);
    assert_eq!(
        taken.body.replace("CAROL@example.org", "carol@example.org"),
        p_fresh_body(&site, &app)
            .await
            .replace("dan@example.org", "carol@example.org"),
        "same answer as a fresh address"
    );
    assert!(site.store.user_by_name("mallory").unwrap().is_none());
    assert!(site.mail_text("carol@example.org", "tried to sign up").await);
    // `CAROL` is `carol`.
    b.get(&app, "/signup").await;
    let p = b
        .post(
            &app,
            "/signup",
            &[
                ("name", "CAROL"),
                ("email", "c2@example.org"),
                ("password", "carol-long-passphrase"),
                ("password2", "carol-long-passphrase"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);

    let link = site.mail_link("carol@example.org", "/verify/").await;
    assert!(link.starts_with("http://hpfriends.test/verify/"), "{link}");
    // Opening the link confirms and logs nobody in: a login follows.
    let path = link.trim_start_matches("http://hpfriends.test");
    let mut opener = Browser::default();
    let p = opener.get(&app, path).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/login?ok=verified");
    assert!(
        !opener.cookies.contains_key("hpf_session"),
        "the link made a session"
    );
    // Opened again (mail scanners open links first): answered as done, never as expired,
    // and still no session; a link that never was is a dead one.
    let mut other = Browser::default();
    let again = other.get(&app, path).await;
    assert_eq!(again.location(), "/login?ok=verified");
    assert!(!other.cookies.contains_key("hpf_session"));
    assert_eq!(
        other.get(&app, "/verify/not-a-token").await.status,
        StatusCode::NOT_FOUND
    );
    // A session cookie planted before login is not adopted (no fixation).
    b.cookies.insert("hpf_session".into(), "planted".into());
    b.cookies.remove("hpf_session");
    b.cookies.insert("hpf_session".into(), "planted".into());
    b.get(&app, "/login").await;
    let p = b
        .post(
            &app,
            "/login",
            &[("login", "Carol"), ("password", "carol-long-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let session = b.cookies["hpf_session"].clone();
    assert_ne!(session, "planted");
    let p = b.get(&app, "/").await;
    assert!(p.body.contains("Welcome, carol"));

    let p = b.post(&app, "/logout", &[]).await;
    assert_eq!(p.location(), "/login?ok=logged-out");
    // The old cookie is dead on the server, not just forgotten by the browser.
    let mut thief = Browser::default();
    thief.cookies.insert("hpf_session".into(), session);
    assert_eq!(
        thief.get(&app, "/account").await.location(),
        "/login?next=%2Faccount"
    );
}

/// The answer to a sign-up with a fresh address, for comparison.
async fn p_fresh_body<S>(site: &Site, app: &S) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let _ = site;
    let mut b = Browser::default();
    b.get(app, "/signup").await;
    b.post(
        app,
        "/signup",
        &[
            ("name", "dan"),
            ("email", "dan@example.org"),
            ("password", "dan-long-passphrase"),
            ("password2", "dan-long-passphrase"),
        ],
    )
    .await
    .body
}

#[actix_web::test]
async fn sign_ups_from_one_address_are_bounded() {
    let site = Site::new().await;
    let app = site.app().await;
    let mut b = Browser::default();
    for i in 0..11 {
        b.get(&app, "/signup").await;
        let (name, email) = (format!("user{i}"), format!("user{i}@example.org"));
        let p = b
            .post(
                &app,
                "/signup",
                &[
                    ("name", &name),
                    ("email", &email),
                    ("password", "long-passphrase"),
                    ("password2", "long-passphrase"),
                ],
            )
            .await;
        let expected = if i < 10 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(p.status, expected, "sign-up {i}");
    }
    assert!(site.store.user_by_name("user10").unwrap().is_none());
}

#[actix_web::test]
async fn login_answers_alike_for_unknown_users_and_is_throttled() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut b = Browser::default();
    b.get(&app, "/login").await;
    let unknown = b
        .post(
            &app,
            "/login",
            &[("login", "nobody"), ("password", "whatever-long")],
        )
        .await;
    let wrong = b
        .post(
            &app,
            "/login",
            &[("login", "alice"), ("password", "wrong-password")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert!(unknown.body.contains("Unknown user or wrong password."));
    assert!(wrong.body.contains("Unknown user or wrong password."));
    // `ALICE` is `alice`: the same account, the same count.
    for _ in 0..9 {
        b.post(
            &app,
            "/login",
            &[("login", "ALICE"), ("password", "wrong-password")],
        )
        .await;
    }
    // Ten attempts for alice from this address: now even the right password waits here,
    // with a delay (not a lock-out) it names.
    let p = b
        .post(
            &app,
            "/login",
            &[("login", "alice"), ("password", "alice-long-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        p.body.contains("Too many login attempts from here. Try again in"),
        "{}",
        p.body
    );
    assert!(!b.cookies.contains_key("hpf_session"));
    // The owner at another address is not locked out by the guesser.
    let mut owner = Browser {
        peer: Some("127.0.0.2:40000".parse().unwrap()),
        ..Browser::default()
    };
    owner.get(&app, "/login").await;
    let p = owner
        .post(
            &app,
            "/login",
            &[("login", "alice"), ("password", "alice-long-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "the owner was locked out");
}

#[actix_web::test]
async fn resets_and_mail_are_bounded_per_account_recipient_and_sender() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    // One address asking resets for many accounts does not block resets from elsewhere.
    let mut sprayer = Browser::default();
    for i in 0..12 {
        sprayer.get(&app, "/reset").await;
        sprayer
            .post(&app, "/reset", &[("login", &format!("user{i}"))])
            .await;
    }
    let mut owner = Browser {
        peer: Some("127.0.0.3:40000".parse().unwrap()),
        ..Browser::default()
    };
    owner.get(&app, "/reset").await;
    let p = owner.post(&app, "/reset", &[("login", "alice")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "resets blocked for everyone");
    // 30 offer/revoke pairs and 30 invite/remove pairs (pages and API alike) mail bob at
    // most `mails_per_recipient` (10) times.
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    let token = site.api_token("alice").await;
    for i in 0..30 {
        let (status, v) = a
            .api(
                &app,
                actix_web::http::Method::POST,
                "/api/v1/shares",
                &token,
                Some(serde_json::json!({"channel": "c", "to_user": "bob"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        let path = format!("/api/v1/shares/{id}/revoke");
        a.api(&app, actix_web::http::Method::POST, &path, &token, None)
            .await;
        if i == 0 {
            assert!(
                site.mail_text("bob@example.org", "shares c with you").await,
                "the API mails offers"
            );
        }
    }
    a.get(&app, "/groups").await;
    a.post(&app, "/groups", &[("name", "g"), ("description", "")])
        .await;
    for _ in 0..30 {
        a.get(&app, "/groups").await;
        a.post(&app, "/groups/g/invite", &[("user", "bob")]).await;
        a.post(&app, "/groups/g/remove", &[("user", "bob"), ("confirm", "yes")])
            .await;
    }
    site.mail_barrier().await;
    let to_bob = site
        .mails()
        .iter()
        .filter(|m| m.contains("To: bob@example.org"))
        .count();
    assert!((1..=10).contains(&to_bob), "{to_bob} mails to bob");
}

#[actix_web::test]
async fn password_reset_by_mail_and_account_settings() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut b = Browser::default();
    b.get(&app, "/reset").await;
    let p = b.post(&app, "/reset", &[("login", "")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Unknown and known accounts get the same answer.
    let unknown = b.post(&app, "/reset", &[("login", "nobody")]).await;
    let known = b.post(&app, "/reset", &[("login", "alice@example.org")]).await;
    assert_eq!(
        (unknown.status, unknown.location()),
        (known.status, known.location())
    );
    let link = site.mail_link("alice@example.org", "/reset/").await;
    let path = link.trim_start_matches("http://hpfriends.test").to_owned();
    b.get(&app, &path).await;
    let p = b
        .post(&app, &path, &[("password", "short"), ("password2", "short")])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("at least 10 characters"));
    // A newer link voids the older one.
    let older = path.clone();
    b.get(&app, "/reset").await;
    b.post(&app, "/reset", &[("login", "alice")]).await;
    let mut path = older.clone();
    for _ in 0..500 {
        let link = site.mail_link("alice@example.org", "/reset/").await;
        path = link.trim_start_matches("http://hpfriends.test").to_owned();
        if path != older {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_ne!(path, older, "no second reset mail");
    b.get(&app, &older).await;
    let p = b
        .post(
            &app,
            &older,
            &[
                ("password", "a-new-passphrase"),
                ("password2", "a-new-passphrase"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "an older link still worked");
    // alice is logged in elsewhere and has an API token: the reset ends both.
    let mut elsewhere = Browser::default();
    elsewhere.login(&app, "alice").await;
    let token = site.api_token("alice").await;
    b.get(&app, &path).await;
    let p = b
        .post(
            &app,
            &path,
            &[
                ("password", "a-new-passphrase"),
                ("password2", "a-new-passphrase"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/login?ok=password-reset", "a reset logs nobody in");
    assert_eq!(
        elsewhere.get(&app, "/account").await.location(),
        "/login?next=%2Faccount"
    );
    let (status, _) = b
        .api(&app, actix_web::http::Method::GET, "/api/v1/me", &token, None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the API token outlived the reset"
    );
    b.get(&app, "/login").await;
    let p = b
        .post(
            &app,
            "/login",
            &[("login", "alice"), ("password", "a-new-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get(&app, "/account").await.status, StatusCode::OK);

    // Change password: the current one must be right, the new one good.
    let p = b
        .post(
            &app,
            "/account/password",
            &[("current", "wrong"), ("password", "x"), ("password2", "y")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    for msg in [
        "not your current password",
        "at least 10 characters",
        "the two passwords differ",
    ] {
        assert!(p.body.contains(msg), "{msg}");
    }
    let p = b
        .post(
            &app,
            "/account/password",
            &[
                ("current", "a-new-passphrase"),
                ("password", "alice-long-passphrase"),
                ("password2", "alice-long-passphrase"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/account?ok=password");
    // Email change needs the current password, tells the old address, and waits for the
    // link mailed to the new one.
    b.get(&app, "/account").await;
    let p = b
        .post(
            &app,
            "/account/email",
            &[("email", "not an address"), ("current", "alice-long-passphrase")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    let p = b
        .post(&app, "/account/email", &[("email", "alice@new.example.org")])
        .await;
    assert_eq!(
        p.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no password, no change"
    );
    assert!(p.body.contains("not your current password"));
    b.post(
        &app,
        "/account/email",
        &[
            ("email", "alice@new.example.org"),
            ("current", "alice-long-passphrase"),
        ],
    )
    .await;
    assert!(
        site.mail_text("alice@example.org", "alice@new.example.org").await,
        "the old address is told"
    );
    assert_eq!(
        site.store.user_by_name("alice").unwrap().unwrap().email,
        "alice@example.org"
    );
    let link = site.mail_link("alice@new.example.org", "/verify/").await;
    b.get(&app, link.trim_start_matches("http://hpfriends.test"))
        .await;
    assert_eq!(
        site.store.user_by_name("alice").unwrap().unwrap().email,
        "alice@new.example.org"
    );
}

/// Accepting a share (or joining a group) answers which of the user's keys receive its
/// channel; with none, the page says nothing arrives yet and one click adds the channel to
/// a key, after which the broker's key table admits the sharer at once. The API answers
/// the same facts (`receiving_keys`), and never for a share that is not the caller's.
#[actix_web::test]
async fn accepting_names_the_keys_that_receive_it_and_one_click_adds_it_to_a_key() {
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    site.account("bob").await;
    site.account("carol").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    b.get(&app, "/authkeys").await;
    let p = b
        .post(&app, "/authkeys", &[("subscribe", "cowrie.sessions")])
        .await;
    let ident_b = Ident::new(&between(&p.body, "<code id=\"ident\">", "<")).unwrap();
    a.get(&app, "/shares").await;
    a.post(
        &app,
        "/shares",
        &[
            ("channel", "dionaea.capture"),
            ("to_kind", "user"),
            ("to", "bob"),
            ("kind", "own"),
        ],
    )
    .await;
    let id = site.store.all_shares().unwrap()[0].id.0;
    b.get(&app, "/shared-with-me").await;
    let p = b.post(&app, &format!("/shares/{id}/accept"), &[]).await;
    let page = b.get(&app, p.location()).await;
    assert!(page.body.contains("Share accepted."), "{}", page.body);
    assert!(
        page.body
            .contains("None of your keys subscribes to <code>dionaea.capture</code>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("Add it to {ident_b}")),
        "{}",
        page.body
    );
    assert!(page.body.contains("/authkeys?subscribe=dionaea.capture"));
    let admits = || {
        site.core.shared.keys.load()[&ident_b]
            .sources("dionaea.capture")
            .is_some_and(|s| s.admits(alice.id))
    };
    assert!(!admits(), "accepted, but no key of bob's subscribes to it");

    let p = b
        .post(
            &app,
            &format!("/authkeys/{ident_b}/subscribe"),
            &[("channel", "dionaea.capture"), ("back", "shared-with-me")],
        )
        .await;
    assert_eq!(p.location(), "/shared-with-me?ok=key-subscribed");
    assert!(admits(), "the key receives alice's data at once");
    let page = b.get(&app, &format!("/shared-with-me?share={id}")).await;
    assert!(
        page.body
            .contains("<code>dionaea.capture</code> reaches your key"),
        "{}",
        page.body
    );
    // Nobody learns another user's share through the page.
    let mut c = Browser::default();
    c.login(&app, "carol").await;
    let page = c.get(&app, &format!("/shared-with-me?share={id}")).await;
    assert!(!page.body.contains("dionaea.capture"), "{}", page.body);
    // The new-key form comes filled in from the offered link.
    let page = b.get(&app, "/authkeys?subscribe=dionaea.capture").await;
    assert!(page.body.contains("name=\"subscribe\" value=\"dionaea.capture\""));

    // The API: accept answers the receiving keys; joining a group answers each channel.
    let bob_token = site.api_token("bob").await;
    let alice_token = site.api_token("alice").await;
    let carol_token = site.api_token("carol").await;
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &alice_token,
            Some(json!({"channel": "cowrie.sessions", "to_user": "bob"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let cowrie = body["id"].as_i64().unwrap();
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/shares/{cowrie}/accept"),
            &bob_token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["channel"], "cowrie.sessions");
    assert_eq!(body["receiving_keys"], json!([ident_b.as_str()]));
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/authkeys/{ident_b}/subscribe"),
            &bob_token,
            Some(json!({"channel": "cowrie.sessions"})),
        )
        .await;
    assert_eq!((s, &body["added"]), (StatusCode::OK, &json!(false)), "{body}");
    let (s, _) = b
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/authkeys/{ident_b}/subscribe"),
            &carol_token,
            Some(json!({"channel": "cowrie.sessions"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "carol cannot touch bob's key");
    for body in [json!({"name": "trusted"}), json!({"user": "bob"})] {
        let path = if body.get("name").is_some() {
            "/api/v1/groups"
        } else {
            "/api/v1/groups/trusted/invite"
        };
        let (s, answer) = b.api(&app, Method::POST, path, &alice_token, Some(body)).await;
        assert!(s.is_success(), "{answer}");
    }
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &alice_token,
            Some(json!({"channel": "honeytrap.events", "to_group": "trusted"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "accepted", "the owner answers for her own group");
    let (s, body) = b
        .api(
            &app,
            Method::POST,
            "/api/v1/groups/trusted/accept",
            &bob_token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["channels"],
        json!([{"channel": "honeytrap.events", "receiving_keys": []}])
    );
}

/// Revoking, leaving, blocking and removing a member ask first on a page of their own
/// (working without scripts): the first post changes nothing, the confirmed one acts.
#[actix_web::test]
async fn revoke_leave_block_and_removal_ask_first() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    let offer = site
        .store
        .add_share(
            site.store.user_by_name("alice").unwrap().unwrap().id,
            &Channel::new("dionaea.capture").unwrap(),
            hpfriends::domain::model::Grantee::User(site.store.user_by_name("bob").unwrap().unwrap().id),
            (hpfriends::domain::model::ShareKind::Own, false),
            hpfriends::domain::model::ShareState::Accepted,
            "test",
        )
        .unwrap()
        .0;
    let state = || {
        site.store
            .share(hpfriends::domain::ShareId(offer))
            .unwrap()
            .unwrap()
            .state
    };
    a.get(&app, "/shares").await;
    let p = a.post(&app, &format!("/shares/{offer}/revoke"), &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("Revoke your share of dionaea.capture?"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("bob (and whoever receives it through them)"),
        "{}",
        p.body
    );
    assert_eq!(
        state(),
        hpfriends::domain::model::ShareState::Accepted,
        "nothing yet"
    );
    b.get(&app, "/shared-with-me").await;
    let p = b.post(&app, &format!("/shares/{offer}/leave"), &[]).await;
    assert!(
        p.body.contains("Leave alice&#x27;s share of dionaea.capture?"),
        "{}",
        p.body
    );
    // The sharer cannot "leave", the grantee cannot "revoke": no page, the action refuses.
    let p = b.post(&app, &format!("/shares/{offer}/revoke"), &[]).await;
    assert!(!p.body.contains("Revoke your share"), "{}", p.body);
    assert_eq!(state(), hpfriends::domain::model::ShareState::Accepted);
    let p = a
        .post(&app, &format!("/shares/{offer}/revoke"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.location(), "/shares?ok=share-revoked");
    assert_ne!(state(), hpfriends::domain::model::ShareState::Accepted);

    let p = b.post(&app, "/blocks", &[("user", "alice")]).await;
    assert!(p.body.contains("Block alice?"), "{}", p.body);
    assert!(p.body.contains(r#"name="user" value="alice""#), "{}", p.body);
    let bob = site.store.user_by_name("bob").unwrap().unwrap();
    let alice = site.store.user_by_name("alice").unwrap().unwrap();
    assert!(!site.store.is_blocked(bob.id, alice.id).unwrap());
    b.post(
        &app,
        "/blocks",
        &[("user", "alice"), ("action", "block"), ("confirm", "yes")],
    )
    .await;
    assert!(site.store.is_blocked(bob.id, alice.id).unwrap());

    a.get(&app, "/groups").await;
    a.post(&app, "/groups", &[("name", "crew")]).await;
    site.account("carol").await;
    a.post(&app, "/groups/crew/invite", &[("user", "carol")]).await;
    let p = a.post(&app, "/groups/crew/remove", &[("user", "carol")]).await;
    assert!(p.body.contains("Remove carol from crew?"), "{}", p.body);
    assert!(
        site.store
            .membership(
                site.store.group_by_name("crew").unwrap().unwrap().0,
                site.store.user_by_name("carol").unwrap().unwrap().id
            )
            .unwrap()
            .is_some()
    );
}

/// A signed-out user opening a page (a mailed invitation's link) logs in and lands on that
/// page, not on the dashboard; a link elsewhere is never followed.
#[actix_web::test]
async fn a_login_goes_on_to_the_page_asked_for() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("bob").await;
    let mut b = Browser::default();
    let p = b.get(&app, "/shared-with-me?show=pending").await;
    assert_eq!(p.location(), "/login?next=%2Fshared-with-me%3Fshow%3Dpending");
    let page = b.get(&app, p.location()).await;
    assert!(
        page.body
            .contains(r#"name="next" value="/shared-with-me?show&#x3D;pending""#),
        "{}",
        page.body
    );
    let p = b
        .post(
            &app,
            "/login",
            &[
                ("login", "bob"),
                ("password", "bob-long-passphrase"),
                ("next", "/shared-with-me?show=pending"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/shared-with-me?show=pending");
    // Logged in, the login page itself goes on there too; never to another site.
    assert_eq!(b.get(&app, "/login?next=%2Fgroups").await.location(), "/groups");
    assert_eq!(
        b.get(&app, "/login?next=%2F%2Fevil.example").await.location(),
        "/"
    );
    let mut c = Browser::default();
    c.get(&app, "/login").await;
    let p = c
        .post(
            &app,
            "/login",
            &[
                ("login", "bob"),
                ("password", "bob-long-passphrase"),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/");
}

#[actix_web::test]
async fn the_story_through_the_handlers_changes_acls_at_once() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;

    a.get(&app, "/authkeys").await;
    let p = a
        .post(
            &app,
            "/authkeys",
            &[("publish", "dionaea.capture"), ("comment", "sensor")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("Authkey created") && p.body.contains("not shown again"));
    // Ready-made configurations with the real broker address and the secret, shown once.
    assert!(
        p.body.contains(
            "[output_hpfeeds3]\nenabled &#x3D; true\nserver &#x3D; hpfriends.test\nport &#x3D; 10000"
        ),
        "{}",
        p.body
    );
    assert!(p.body.contains("- name: hpfeeds") && p.body.contains("hpfeeds.NewClient("));
    b.get(&app, "/authkeys").await;
    let p = b
        .post(&app, "/authkeys", &[("subscribe", "dionaea.capture")])
        .await;
    let secret_b = between(&p.body, "<code id=\"secret\">", "<");
    let ident_b = Ident::new(&between(&p.body, "<code id=\"ident\">", "<")).unwrap();
    assert_eq!(secret_b.len(), 64);
    let setup = b.get(&app, &format!("/authkeys/{ident_b}/setup")).await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.body.contains("secret &#x3D; THE-KEY-SECRET") && !setup.body.contains(&secret_b));
    assert!(
        setup
            .body
            .contains("client.subscribe([&#x27;dionaea.capture&#x27;])"),
        "{}",
        setup.body
    );
    let other = a.get(&app, &format!("/authkeys/{ident_b}/setup")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another user's key");
    let alice = site.store.user_by_name("alice").unwrap().unwrap();
    let admits = || {
        site.core.shared.keys.load()[&ident_b]
            .sources("dionaea.capture")
            .unwrap()
            .admits(alice.id)
    };
    assert!(!admits());

    a.get(&app, "/shares").await;
    let p = a
        .post(
            &app,
            "/shares",
            &[
                ("channel", "dionaea.capture"),
                ("to_kind", "user"),
                ("to", "bob"),
                ("kind", "own"),
            ],
        )
        .await;
    assert_eq!(p.location(), "/shares?ok=share-offered");
    let link = site.mail_link("bob@example.org", "/shared-with-me").await;
    assert!(link.ends_with("/shared-with-me"));
    let p = b.get(&app, "/shared-with-me").await;
    assert!(p.body.contains("Invitations waiting for your answer: 1."));
    let id = site.store.all_shares().unwrap()[0].id.0;
    let p = b.post(&app, &format!("/shares/{id}/accept"), &[]).await;
    assert_eq!(
        p.location(),
        format!("/shared-with-me?share={id}&ok=share-accepted#receiving")
    );
    assert!(admits(), "the acceptance reached the broker's key table at once");

    let p = a.get(&app, "/shares").await;
    assert!(p.body.contains("accepted"));
    let p = a
        .post(&app, &format!("/shares/{id}/revoke"), &[("confirm", "yes")])
        .await;
    assert_eq!(p.location(), "/shares?ok=share-revoked");
    assert!(!admits(), "the revocation reached the broker's key table at once");

    // Bob's key: rotate shows a new secret once, disable/enable/delete act at once.
    b.get(&app, "/authkeys").await;
    let p = b.post(&app, &format!("/authkeys/{ident_b}/rotate"), &[]).await;
    let rotated = between(&p.body, "<code id=\"secret\">", "<");
    assert_ne!(rotated, secret_b);
    assert!(
        !b.get(&app, "/authkeys").await.body.contains(&rotated),
        "shown once only"
    );
    let p = b
        .post(
            &app,
            &format!("/authkeys/{ident_b}/channels"),
            &[("publish", "x"), ("subscribe", "y z")],
        )
        .await;
    assert_eq!(p.location(), "/authkeys?ok=key-updated");
    assert!(site.core.shared.keys.load()[&ident_b].sources("z").is_some());
    b.post(&app, &format!("/authkeys/{ident_b}/disable"), &[]).await;
    assert!(!site.core.shared.keys.load().contains_key(&ident_b));
    b.post(&app, &format!("/authkeys/{ident_b}/enable"), &[]).await;
    assert!(site.core.shared.keys.load().contains_key(&ident_b));
    // Delete asks first: nothing is deleted until the confirmation page's form is sent.
    let p = b.post(&app, &format!("/authkeys/{ident_b}/delete"), &[]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains(&format!("Delete authkey {ident_b}?")),
        "{}",
        p.body
    );
    assert!(p.body.contains("name=\"confirm\" value=\"yes\""), "{}", p.body);
    assert!(site.core.shared.keys.load().contains_key(&ident_b));
    let p = b
        .post(
            &app,
            &format!("/authkeys/{ident_b}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(p.location(), "/authkeys?ok=key-deleted");
    assert!(!site.core.shared.keys.load().contains_key(&ident_b));
    let p = b.post(&app, "/authkeys/nosuchkey/frobnicate", &[]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
}

/// A GET of the event stream at `path` with `b`'s cookies (streams are read unbuffered,
/// so not through `Browser::get`).
fn events_request(b: &Browser, path: &str) -> actix_http::Request {
    let cookies: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    actix_web::test::TestRequest::get()
        .uri(path)
        .insert_header((header::COOKIE, cookies.join("; ")))
        .to_request()
}

/// The next chunk (one or more events) of a streamed body, within 10 s.
async fn next_event<B>(body: &mut std::pin::Pin<Box<B>>) -> String
where
    B: actix_web::body::MessageBody,
    B::Error: std::fmt::Debug,
{
    let chunk =
        futures_util::future::poll_fn(|cx| actix_web::body::MessageBody::poll_next(body.as_mut(), cx));
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(10), chunk)
        .await
        .expect("an event within 10 s")
        .expect("the stream went on")
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn between(text: &str, start: &str, end: &str) -> String {
    let at = text.find(start).unwrap() + start.len();
    text[at..at + text[at..].find(end).unwrap()].to_owned()
}

#[actix_web::test]
async fn only_owners_act_and_secrets_stay_private() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    site.account("carol").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    a.get(&app, "/authkeys").await;
    let p = a.post(&app, "/authkeys", &[("publish", "c1")]).await;
    let ident = between(&p.body, "<code id=\"ident\">", "<");
    let secret = between(&p.body, "<code id=\"secret\">", "<");
    a.get(&app, "/shares").await;
    a.post(
        &app,
        "/shares",
        &[("channel", "c1"), ("to_kind", "user"), ("to", "carol")],
    )
    .await;
    a.get(&app, "/groups").await;
    a.post(&app, "/groups", &[("name", "trusted")]).await;
    a.post(&app, "/groups/trusted/invite", &[("user", "carol")]).await;
    let share = site.store.all_shares().unwrap()[0].id.0;

    let before = site.store.audit_entries(1000).unwrap().len();
    b.get(&app, "/").await;
    for action in ["rotate", "disable", "enable", "delete", "channels"] {
        let p = b
            .post(&app, &format!("/authkeys/{ident}/{action}"), &[("publish", "x")])
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{action} on another's key");
        assert!(!p.body.contains(&secret));
    }
    // A share between others is answered as an unknown id is.
    let unknown = b.post(&app, "/shares/9999/accept", &[]).await.body;
    for action in ["revoke", "accept", "decline", "leave"] {
        let p = b.post(&app, &format!("/shares/{share}/{action}"), &[]).await;
        assert_eq!(
            p.status,
            StatusCode::NOT_FOUND,
            "{action} on another's share: {}",
            p.body
        );
        assert_eq!(
            p.body.replace(&format!("no share {share}"), "no share 9999"),
            unknown
        );
    }
    let p = b
        .post(
            &app,
            "/groups/trusted/remove",
            &[("user", "carol"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("only the owner"));
    let p = b.post(&app, "/groups/trusted/invite", &[("user", "bob")]).await;
    assert!(p.body.contains("only the owner"));
    assert_eq!(
        b.post(&app, "/groups/trusted/accept", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        site.store.audit_entries(1000).unwrap().len(),
        before,
        "nothing was written"
    );
    for path in [
        "/authkeys",
        "/shares",
        "/shared-with-me",
        "/",
        "/graph",
        "/search?q=c1",
    ] {
        let p = b.get(&app, path).await;
        assert!(!p.body.contains(&secret), "{path} shows alice's secret");
        if path == "/authkeys" {
            assert!(!p.body.contains(&ident), "bob sees alice's key");
        }
    }
}

#[actix_web::test]
async fn bad_fields_are_named_and_nothing_half_written() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    let before = site.store.audit_entries(1000).unwrap().len();
    let cases: &[(&str, Form, &[&str])] = &[
        (
            "/shares",
            &[("channel", ""), ("to_kind", "user"), ("to", "")],
            &["enter a channel name", "enter the user to share with"],
        ),
        (
            "/shares",
            &[("channel", "c"), ("to_kind", "user"), ("to", "nobody")],
            &["no user named"],
        ),
        (
            "/shares",
            &[("channel", "c"), ("to_kind", "user"), ("to", "alice")],
            &["share with yourself"],
        ),
        (
            "/shares",
            &[("channel", "c"), ("to_kind", "martians")],
            &["choose a user, a group or everyone"],
        ),
        (
            "/shares",
            &[("channel", "c"), ("to_kind", "group"), ("to", "nogroup")],
            &["no group named"],
        ),
        (
            "/authkeys",
            &[("publish", ""), ("subscribe", "")],
            &["list at least one channel"],
        ),
        (
            "/authkeys",
            &[("publish", &"x".repeat(300))],
            &["not a valid channel name"],
        ),
        (
            "/authkeys",
            &[("subscribe", "cowrie sessions!!, ../etc")],
            &["not a valid channel name", "may not hold &#x27;!&#x27;"],
        ),
        ("/groups", &[("name", "no spaces please")], &["use 1-64 letters"]),
        ("/groups/nogroup/invite", &[("user", "")], &["enter a user name"]),
    ];
    for (path, form, messages) in cases {
        a.get(&app, "/").await;
        let p = a.post(&app, path, form).await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {form:?}: {}",
            p.body
        );
        assert!(
            p.body.contains("field-error"),
            "{path}: error shown next to a field"
        );
        for m in *messages {
            assert!(p.body.contains(m), "{path} {form:?}: missing {m:?}");
        }
    }
    assert_eq!(
        site.store.audit_entries(1000).unwrap().len(),
        before,
        "nothing was written"
    );
    assert!(site.store.authkeys().unwrap().is_empty());
    // The API names a misspelled field, and holds channel names to the same rule.
    let token = site.api_token("alice").await;
    let (st, body) = a
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &token,
            Some(json!({"chanel": "dionaea.capture", "to_everyone": true})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("unknown field `chanel`"),
        "{body}"
    );
    let (st, body) = a
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &token,
            Some(json!({"channel": "cowrie sessions", "to_everyone": true})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("may not hold white space"),
        "{body}"
    );
    // A field the form does not have, or a body that is not a form, is a clear 400.
    let big = "x".repeat(100_000);
    let p = a.post(&app, "/groups", &[("name", &big)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("too large"));
}

#[actix_web::test]
async fn groups_from_invitation_to_leaving() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    a.get(&app, "/groups").await;
    assert_eq!(
        a.post(
            &app,
            "/groups",
            &[("name", "trusted"), ("description", "we vouch")]
        )
        .await
        .location(),
        "/groups?ok=group-created"
    );
    let p = a.post(&app, "/groups", &[("name", "trusted")]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    let p = a
        .post(&app, "/groups/trusted/invite", &[("user", "nobody")])
        .await;
    assert!(p.body.contains("no user named"));
    assert_eq!(
        a.post(&app, "/groups/trusted/invite", &[("user", "bob")])
            .await
            .location(),
        "/groups?ok=group-invited"
    );
    site.mail_link("bob@example.org", "invites you to the group trusted")
        .await;
    let p = b.get(&app, "/").await;
    assert!(p.body.contains("You are invited to the group"));
    b.get(&app, "/groups").await;
    assert_eq!(
        b.post(&app, "/groups/trusted/accept", &[]).await.location(),
        "/groups?joined=trusted&ok=group-joined#receiving"
    );
    assert_eq!(
        b.post(&app, "/groups/trusted/leave", &[("confirm", "yes")])
            .await
            .location(),
        "/groups?ok=group-left"
    );
    a.post(&app, "/groups/trusted/invite", &[("user", "bob")]).await;
    assert_eq!(
        b.post(&app, "/groups/trusted/decline", &[]).await.location(),
        "/groups?ok=group-declined"
    );
    a.post(&app, "/groups/trusted/invite", &[("user", "bob")]).await;
    assert_eq!(
        a.post(
            &app,
            "/groups/trusted/remove",
            &[("user", "bob"), ("confirm", "yes")]
        )
        .await
        .location(),
        "/groups?ok=group-removed"
    );
    assert_eq!(
        a.post(&app, "/groups/trusted/leave", &[("confirm", "yes")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        a.post(&app, "/groups/trusted/dance", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn logs_search_graph_and_live_view() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/authkeys").await;
    let p = a
        .post(
            &app,
            "/authkeys",
            &[
                ("publish", "dionaea.capture"),
                ("subscribe", "dionaea.capture"),
                ("comment", "sensor in Frankfurt"),
            ],
        )
        .await;
    let ident = between(&p.body, "<code id=\"ident\">", "<");
    site.store
        .append_key_log(&[hpfriends::domain::log::KeyLogEntry {
            at: 1_795_000_000,
            ident: ident.clone(),
            event: "auth-failed".into(),
            channel: None,
            peer: Some("198.51.100.7:4000".into()),
            detail: "wrong secret".into(),
        }])
        .unwrap();
    let p = a.get(&app, "/logs").await;
    assert!(p.body.contains("auth-failed") && p.body.contains("198.51.100.7"));
    assert!(
        p.body.contains("sensor in Frankfurt"),
        "the key as its owner knows it"
    );
    let p = a.get(&app, "/search?q=dionaea").await;
    assert!(p.body.contains("dionaea.capture"));
    let p = a.get(&app, "/search?q=198.51.100").await;
    assert!(p.body.contains("wrong secret"), "log lines are searched");
    let p = a.get(&app, "/search?q=bo").await;
    // Results lead somewhere: a user to their profile, a channel to its page.
    assert!(
        p.body.contains("<li><a href=\"/users/bob\">bob</a></li>"),
        "{}",
        p.body
    );
    let p = a.get(&app, "/search?q=dionaea").await;
    assert!(
        p.body.contains("href=\"/channel?name=dionaea.capture\""),
        "{}",
        p.body
    );
    let p = a.get(&app, &format!("/search?q={}", "x".repeat(300))).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);

    a.get(&app, "/shares").await;
    a.post(
        &app,
        "/shares",
        &[
            ("channel", "dionaea.capture"),
            ("to_kind", "everyone"),
            ("kind", "redistribute"),
        ],
    )
    .await;
    let p = a.get(&app, "/graph").await;
    assert!(p.body.contains("<svg") && p.body.contains("dionaea.capture · redistribute"));
    let p = a.get(&app, "/graph.svg").await;
    assert_eq!(p.headers.get(header::CONTENT_TYPE).unwrap(), "image/svg+xml");

    let p = a.get(&app, "/live").await;
    assert!(p.body.contains("/live?channel=dionaea.capture"));
    assert_eq!(
        a.get(&app, "/live?channel=elsewhere").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get(&app, "/live/events?channel=elsewhere").await.status,
        StatusCode::NOT_FOUND
    );
    let p = a.get(&app, "/live?channel=dionaea.capture").await;
    assert!(p.body.contains("data-channel=\"dionaea.capture\""));

    // The event stream: a broker session of alice's key, fed by the router like any other.
    let res =
        actix_web::test::call_service(&app, events_request(&a, "/live/events?channel=dionaea.capture")).await;
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    let mut body = Box::pin(res.into_body());
    let mut next = async || next_event(&mut body).await;
    let ready = next().await;
    assert!(
        ready.starts_with("event: ready") && ready.contains(&ident),
        "{ready}"
    );
    let alice = site.store.user_by_name("alice").unwrap().unwrap();
    let frame = hpfriends::wire::Frame::Publish {
        ident: Ident::new(&ident).unwrap(),
        channel: hpfriends::wire::Channel::new("dionaea.capture").unwrap(),
        payload: actix_web::web::Bytes::from_static(b"{\"src\": \"198.51.100.7\"}"),
    }
    .to_bytes()
    .unwrap();
    assert_eq!(
        site.core
            .shared
            .router
            .publish(alice.id, "dionaea.capture", &frame, &mut Vec::new()),
        1
    );
    let message = next().await;
    assert!(message.starts_with("event: message"), "{message}");
    assert!(
        message.contains("\"encoding\":\"json\"") && message.contains("198.51.100.7"),
        "{message}"
    );
    // The message names its key's owner: it reached the viewer, whose data it is is theirs to know.
    assert!(message.contains("\"owner\":\"alice\""), "{message}");
    assert!(
        ready.contains("event: access") && ready.contains("\"sources\":[\"alice\"]"),
        "{ready}"
    );
    // A share accepted while the view is open: the page is told whose data reaches it now.
    let mut b = Browser::default();
    b.login(&app, "bob").await;
    b.get(&app, "/authkeys").await;
    b.post(&app, "/authkeys", &[("publish", "dionaea.capture")]).await;
    b.get(&app, "/shares").await;
    b.post(
        &app,
        "/shares",
        &[
            ("channel", "dionaea.capture"),
            ("to_kind", "user"),
            ("to", "alice"),
        ],
    )
    .await;
    let p = a.get(&app, "/shared-with-me").await;
    let id = between(&p.body, "<tr id=\"share-", "\"");
    a.post(&app, &format!("/shares/{id}/accept"), &[]).await;
    let access = next().await;
    assert!(
        access.starts_with("event: access") && access.contains("\"sources\":[\"alice\",\"bob\"]"),
        "{access}"
    );
    // Revoked: the page is told at once, and bob's data no longer reaches it.
    b.get(&app, "/shares").await;
    b.post(&app, &format!("/shares/{id}/revoke"), &[("confirm", "yes")])
        .await;
    let access = next().await;
    assert!(
        access.starts_with("event: access") && access.contains("\"sources\":[\"alice\"]"),
        "{access}"
    );
    // The key loses the channel: the stream says why and ends.
    a.get(&app, "/authkeys").await;
    a.post(
        &app,
        &format!("/authkeys/{ident}/channels"),
        &[("publish", "dionaea.capture")],
    )
    .await;
    let cut = next().await;
    assert!(
        cut.contains("event: error") && cut.contains("accessfail"),
        "{cut}"
    );
}

#[actix_web::test]
async fn the_json_api_with_tokens() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let bob = site.account("bob").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/account").await;
    let p = a.post(&app, "/account/api-token", &[]).await;
    let token = between(&p.body, "<code id=\"api-token\">", "<");
    let bob_token = site.store.create_token(TokenKind::Api, bob.id, "", None).unwrap();
    let mut c = Browser::default();

    let (s, body) = c.api(&app, Method::GET, "/api/v1/me", "", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(
        c.api(&app, Method::GET, "/api/v1/me", "nope", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, body) = c.api(&app, Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!((s, body["name"].as_str()), (StatusCode::OK, Some("alice")));

    let (s, key) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/authkeys",
            &token,
            Some(json!({"publish": ["dionaea.capture"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let ident = key["ident"].as_str().unwrap().to_owned();
    let (s, body) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/authkeys",
            &token,
            Some(json!({"publish": [""]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/authkeys",
            &token,
            Some(json!("nonsense")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("JSON"));
    let (_, list) = c.api(&app, Method::GET, "/api/v1/authkeys", &token, None).await;
    assert_eq!(list["authkeys"][0]["ident"], ident.as_str());
    assert!(
        list.to_string().find(key["secret"].as_str().unwrap()).is_none(),
        "secrets are not listed"
    );

    // Bob cannot touch alice's key.
    for (m, path) in [
        (Method::DELETE, format!("/api/v1/authkeys/{ident}")),
        (Method::POST, format!("/api/v1/authkeys/{ident}/rotate")),
    ] {
        assert_eq!(
            c.api(&app, m, &path, &bob_token, None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let (s, body) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &token,
            Some(json!({"channel": "dionaea.capture", "to_user": "bob"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (s, _) = c
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/shares/{id}/accept"),
            &token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the sharer cannot accept for bob");
    let (s, _) = c
        .api(
            &app,
            Method::POST,
            &format!("/api/v1/shares/{id}/accept"),
            &bob_token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, shares) = c.api(&app, Method::GET, "/api/v1/shares", &bob_token, None).await;
    assert_eq!(shares["incoming"][0]["state"], "accepted");
    let created = shares["incoming"][0]["created_at"].as_str().unwrap_or_default();
    assert!(created.len() == 20 && created.ends_with('Z'), "{shares}");
    let (s, _) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/groups",
            &token,
            Some(json!({"name": "trusted"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/groups/trusted/invite",
            &token,
            Some(json!({"user": "bob"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        c.api(
            &app,
            Method::POST,
            "/api/v1/groups/trusted/accept",
            &bob_token,
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, groups) = c.api(&app, Method::GET, "/api/v1/groups", &bob_token, None).await;
    assert_eq!(groups["groups"][0]["name"], "trusted");
    assert_eq!(
        c.api(&app, Method::GET, "/api/v1/logs", &token, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.api(&app, Method::GET, "/api/v1/search?q=dion", &token, None)
            .await
            .1["channels"][0],
        "dionaea.capture"
    );
    assert_eq!(
        c.api(&app, Method::GET, "/api/v1/nothing", &token, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, _) = c
        .api(
            &app,
            Method::DELETE,
            &format!("/api/v1/authkeys/{ident}"),
            &token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Revoked tokens stop working at once.
    a.get(&app, "/account").await;
    a.post(&app, "/account/api-token/revoke", &[]).await;
    assert_eq!(
        c.api(&app, Method::GET, "/api/v1/me", &token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn security_headers_and_cookie_flags() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let req = actix_web::test::TestRequest::get().uri("/login").to_request();
    let res = actix_web::test::call_service(&app, req).await;
    let h = res.headers();
    let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    let csrf = res.response().cookies().find(|c| c.name() == "hpf_csrf").unwrap();
    assert_eq!(csrf.http_only(), Some(true));
    assert_eq!(csrf.same_site(), Some(actix_web::cookie::SameSite::Lax));

    let mut b = Browser::default();
    b.get(&app, "/login").await;
    let req = actix_web::test::TestRequest::post()
        .uri("/login")
        .insert_header((header::COOKIE, format!("hpf_csrf={}", b.cookies["hpf_csrf"])))
        .set_form([
            ("login", "alice"),
            ("password", "alice-long-passphrase"),
            ("csrf", b.csrf.as_str()),
        ])
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    let session = res
        .response()
        .cookies()
        .find(|c| c.name() == "hpf_session")
        .unwrap();
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.same_site(), Some(actix_web::cookie::SameSite::Lax));
    assert_eq!(session.path(), Some("/"));
    // A tampered cookie is ignored (it is signed).
    let mut forged = Browser::default();
    let value = session.value().to_owned();
    let mut chars: Vec<char> = value.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'a' { 'b' } else { 'a' };
    forged
        .cookies
        .insert("hpf_session".into(), chars.into_iter().collect());
    assert_eq!(
        forged.get(&app, "/account").await.location(),
        "/login?next=%2Faccount"
    );
}

#[actix_web::test]
async fn a_dead_database_gets_a_clear_503_and_nothing_else_breaks() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    // Take the tables away under the running site.
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        if site.db.is_postgres() {
            let mut conn = diesel::PgConnection::establish(site.store.url()).unwrap();
            conn.batch_execute("DROP TABLE web_sessions CASCADE; DROP TABLE key_log CASCADE;")
                .unwrap();
        } else {
            let path = hpfriends::store::sqlite_path(site.store.url()).unwrap();
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            conn.batch_execute("PRAGMA foreign_keys = OFF; DROP TABLE web_sessions; DROP TABLE key_log;")
                .unwrap();
        }
    }
    let p = a.get(&app, "/account").await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        p.body.contains("database is unavailable")
            && !p.body.contains("no such table")
            && !p.body.contains("does not exist"),
        "{}",
        p.body
    );
    assert_eq!(p.headers.get(header::RETRY_AFTER).unwrap(), "5");
    assert_eq!(
        a.get(&app, "/healthz").await.status,
        StatusCode::OK,
        "other tables still answer"
    );
    // Pages that need no database still render.
    let mut anon = Browser::default();
    assert_eq!(anon.get(&app, "/login").await.status, StatusCode::OK);
}

/// Who asks, in the authorization table.
#[derive(Clone, Copy, Debug)]
enum Role {
    Anonymous,
    OtherUser,
    Owner,
}

#[actix_web::test]
async fn every_owned_route_and_api_call_by_anonymous_other_user_and_owner() {
    let site = Site::new().await;
    let app = site.app().await;
    for n in ["alice", "bob", "carol", "dave"] {
        site.account(n).await;
    }
    let (mut alice, mut bob, mut carol) = (Browser::default(), Browser::default(), Browser::default());
    alice.login(&app, "alice").await;
    bob.login(&app, "bob").await;
    carol.login(&app, "carol").await;
    let key = |b: &str| between(b, "<code id=\"ident\">", "<");
    alice.get(&app, "/authkeys").await;
    let k1 = key(&alice.post(&app, "/authkeys", &[("publish", "c")]).await.body);
    let k2 = key(&alice.post(&app, "/authkeys", &[("publish", "c")]).await.body);
    alice.get(&app, "/shares").await;
    for to in ["carol", "dave"] {
        alice
            .post(
                &app,
                "/shares",
                &[("channel", "c"), ("to_kind", "user"), ("to", to)],
            )
            .await;
    }
    let shares = site.store.all_shares().unwrap();
    let (to_carol, to_dave) = (shares[0].id.0, shares[1].id.0);
    alice.get(&app, "/groups").await;
    alice.post(&app, "/groups", &[("name", "g")]).await;
    let token = |name: &str| {
        let u = site.store.user_by_name(name).unwrap().unwrap();
        site.store.create_token(TokenKind::Api, u.id, "", None).unwrap()
    };
    let (alice_t, bob_t, carol_t) = (token("alice"), token("bob"), token("carol"));

    // (path, form, the owner's browser, what the other user gets, what the owner gets)
    type Row<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, StatusCode, StatusCode);
    let rows: Vec<Row> = vec![
        (
            format!("/authkeys/{k1}/channels"),
            vec![("publish", "c")],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/authkeys/{k1}/rotate"),
            vec![],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::OK,
        ),
        (
            format!("/authkeys/{k1}/disable"),
            vec![],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/authkeys/{k1}/enable"),
            vec![],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/shares/{to_carol}/accept"),
            vec![],
            "carol",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/shares/{to_carol}/leave"),
            vec![("confirm", "yes")],
            "carol",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/shares/{to_dave}/revoke"),
            vec![("confirm", "yes")],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
        (
            "/groups/g/invite".into(),
            vec![("user", "dave")],
            "alice",
            StatusCode::FORBIDDEN,
            StatusCode::SEE_OTHER,
        ),
        (
            "/groups/g/remove".into(),
            vec![("user", "dave"), ("confirm", "yes")],
            "alice",
            StatusCode::FORBIDDEN,
            StatusCode::SEE_OTHER,
        ),
        (
            format!("/authkeys/{k1}/delete"),
            vec![("confirm", "yes")],
            "alice",
            StatusCode::NOT_FOUND,
            StatusCode::SEE_OTHER,
        ),
    ];
    for (path, form, owner, other_gets, owner_gets) in &rows {
        for role in [Role::Anonymous, Role::OtherUser, Role::Owner] {
            let (b, expected) = match role {
                Role::Anonymous => (&mut Browser::default(), StatusCode::SEE_OTHER),
                Role::OtherUser => (&mut bob, *other_gets),
                Role::Owner if *owner == "carol" => (&mut carol, *owner_gets),
                Role::Owner => (&mut alice, *owner_gets),
            };
            b.get(&app, "/").await;
            let p = b.post(&app, path, form).await;
            assert_eq!(p.status, expected, "{path} as {role:?}: {}", p.body);
            if let Role::Anonymous = role {
                assert_eq!(p.location(), "/login", "{path} as {role:?}");
            }
        }
    }

    // The same for the API: no token, another user's, the owner's.
    let mut c = Browser::default();
    let (_, offered) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/shares",
            &alice_t,
            Some(json!({"channel": "c", "to_user": "dave"})),
        )
        .await;
    let to_dave_again = offered["id"].as_i64().unwrap();
    let api_rows: Vec<(Method, String, Option<serde_json::Value>, &str, StatusCode)> = vec![
        (
            Method::PUT,
            format!("/api/v1/authkeys/{k2}"),
            Some(json!({"publish": ["c"]})),
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/authkeys/{k2}/rotate"),
            None,
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/authkeys/{k2}/disable"),
            None,
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/authkeys/{k2}/enable"),
            None,
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/shares/{to_dave_again}/revoke"),
            None,
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/groups/g/invite".into(),
            Some(json!({"user": "carol"})),
            &alice_t,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::POST,
            "/api/v1/groups/g/remove".into(),
            Some(json!({"user": "carol"})),
            &alice_t,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::DELETE,
            format!("/api/v1/authkeys/{k2}"),
            None,
            &alice_t,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (m, path, body, owner_t, other_gets) in api_rows {
        let anon = c.api(&app, m.clone(), &path, "", body.clone()).await.0;
        assert_eq!(anon, StatusCode::UNAUTHORIZED, "{m} {path} anonymous");
        let other = c.api(&app, m.clone(), &path, &bob_t, body.clone()).await.0;
        assert_eq!(other, other_gets, "{m} {path} as another user");
        let (owner, reply) = c.api(&app, m.clone(), &path, owner_t, body.clone()).await;
        assert_eq!(owner, StatusCode::OK, "{m} {path} as the owner: {reply}");
    }
    for path in [
        "/api/v1/me",
        "/api/v1/authkeys",
        "/api/v1/shares",
        "/api/v1/groups",
        "/api/v1/logs",
    ] {
        assert_eq!(
            c.api(&app, Method::GET, path, "", None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        let (s, mine) = c.api(&app, Method::GET, path, &carol_t, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(
            !mine.to_string().contains(&k2),
            "{path} shows alice's key to carol"
        );
    }
}

/// Lists that grow come a page (50) at a time, pages and API alike, with a link or a
/// `next_page` to the rest: keys, outgoing shares, groups and the key log.
#[actix_web::test]
async fn long_lists_come_a_page_at_a_time() {
    use hpfriends::domain::listing::NewAuthkey;
    use hpfriends::domain::log::KeyLogEntry;
    use hpfriends::wire::{Channel, Ident, Secret};
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    site.account("bob").await;
    let mut log = Vec::new();
    for i in 0..55 {
        let ident = format!("k{i:02}");
        site.store
            .add_authkey(
                &NewAuthkey {
                    owner: alice.id,
                    ident: Ident::new(&ident).unwrap(),
                    secret: Secret::new(format!("s{i}")),
                    publish: vec![Channel::new(&format!("c{i:02}")).unwrap()],
                    subscribe: vec![],
                    comment: String::new(),
                },
                "test",
            )
            .unwrap();
        site.store
            .add_share(
                alice.id,
                &Channel::new(&format!("c{i:02}")).unwrap(),
                hpfriends::domain::model::Grantee::Everyone,
                (hpfriends::domain::model::ShareKind::Own, false),
                hpfriends::domain::model::ShareState::Accepted,
                "test",
            )
            .unwrap();
        log.push(KeyLogEntry {
            at: i,
            ident: ident.clone(),
            event: if i == 54 {
                "NEEDLE".into()
            } else {
                "authfail".into()
            },
            channel: None,
            peer: Some("192.0.2.1".into()),
            detail: String::new(),
        });
    }
    site.store.append_key_log(&log).unwrap();
    let mut a = Browser::default();
    a.login(&app, "alice").await;

    let p = a.get(&app, "/authkeys").await;
    assert_eq!(p.body.matches("<article").count(), 50, "{}", p.body);
    assert!(p.body.contains("/authkeys?page=1"));
    let p = a.get(&app, "/authkeys?page=1").await;
    assert_eq!(p.body.matches("<article").count(), 5);
    assert!(p.body.contains("<code>k54</code>") && !p.body.contains("/authkeys?page=2"));

    let p = a.get(&app, "/shares").await;
    assert_eq!(p.body.matches("id=\"share-").count(), 50);
    assert!(p.body.contains("/shares?page=1"));
    assert_eq!(
        a.get(&app, "/shares?page=1")
            .await
            .body
            .matches("id=\"share-")
            .count(),
        5
    );

    let p = a.get(&app, "/logs").await;
    assert_eq!(p.body.matches("<time>").count(), 50);
    assert!(p.body.contains("NEEDLE"), "newest first");
    assert!(p.body.contains("/logs?page=1"));
    assert_eq!(
        a.get(&app, "/logs?page=1").await.body.matches("<time>").count(),
        5
    );
    let p = a.get(&app, "/search?q=needle").await;
    assert!(p.body.contains("NEEDLE"), "the log is searched in SQL, any case");
    // 55 channels c00..c54 and 55 log lines with "k": a page of each, then the rest.
    let p = a.get(&app, "/search?q=c2").await;
    assert!(p.body.contains("/channel?name=c20") && !p.body.contains("/channel?name=c30"));
    let p = a.get(&app, "/search?q=c%25").await;
    assert!(!p.body.contains("/channel?name=c20"), "LIKE wildcards are text");
    let p = a.get(&app, "/search?q=k").await;
    assert_eq!(p.body.matches("<time>").count(), 50);
    assert!(p.body.contains("/search?q&#x3D;k&amp;page=1"), "{}", p.body);
    let p = a.get(&app, "/search?q=k&page=1").await;
    assert_eq!(p.body.matches("<time>").count(), 5);

    let token = site.api_token("alice").await;
    let get = |path: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            let mut b = Browser::default();
            b.api(app, actix_web::http::Method::GET, path, &token, None)
                .await
                .1
        }
    };
    let v = get("/api/v1/authkeys").await;
    assert_eq!(v["authkeys"].as_array().unwrap().len(), 50);
    assert_eq!(v["next_page"], 1);
    let v = get("/api/v1/authkeys?page=1").await;
    assert_eq!(v["authkeys"].as_array().unwrap().len(), 5);
    assert!(v["next_page"].is_null());
    let v = get("/api/v1/shares").await;
    assert_eq!(v["outgoing"].as_array().unwrap().len(), 50);
    assert_eq!(v["outgoing_next_page"], 1);
    let v = get("/api/v1/logs?page=1").await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 5);
    assert!(v["next_page"].is_null());
    let v = get("/api/v1/groups").await;
    assert!(v["next_page"].is_null());

    // A group of 60: its box lists 50 and links to the rest, a page at a time.
    let g = site.store.create_group(alice.id, "big", "", "test").unwrap();
    for i in 0..59 {
        let u = site
            .store
            .create_account(&format!("m{i:02}"), &format!("m{i}@example.org"), "h")
            .unwrap();
        site.store
            .invite_member(g, u.id, alice.id, "test", "big")
            .unwrap();
        site.store.activate_member(g, u.id, "test", "big").unwrap();
    }
    let p = a.get(&app, "/groups").await;
    assert!(p.body.contains("All 60 members and invitees"), "{}", p.body);
    assert!(p.body.contains("60 active members"));
    let p = a.get(&app, "/groups/big/members").await;
    assert_eq!(p.body.matches("<tr><td>").count(), 50, "{}", p.body);
    assert!(p.body.contains("/groups/big/members?page=1"));
    let p = a.get(&app, "/groups/big/members?page=1").await;
    assert_eq!(p.body.matches("<tr><td>").count(), 10);
    let v = get("/api/v1/groups/big/members?page=1").await;
    assert_eq!(v["members"].as_array().unwrap().len(), 10);
    assert!(v["next_page"].is_null());
    let mut b = Browser::default();
    b.login(&app, "bob").await;
    assert_eq!(
        b.get(&app, "/groups/big/members").await.status,
        StatusCode::NOT_FOUND,
        "not bob's group"
    );
}

/// Error answers are pages of the site: an unknown URL, a refusal and a missing thing show
/// the layout (the viewer's menu when logged in) around a plain message; the API keeps its
/// JSON.
#[actix_web::test]
async fn error_pages_are_in_the_sites_layout() {
    let site = Site::new().await;
    let app = site.app().await;
    let mut anon = Browser::default();
    let p = anon.get(&app, "/no/such/page?x=%3Cb%3E").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("<header class=\"top\">"), "{}", p.body);
    assert!(p.body.contains("<h1>404 Not Found</h1>"), "{}", p.body);
    assert!(p.body.contains("there is no page at /no/such/page"), "{}", p.body);
    assert!(p.body.contains("href=\"/login\""), "{}", p.body);
    assert!(
        p.headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html")),
    );

    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    let p = a.get(&app, "/nowhere").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("aria-label=\"Main\""), "the menu: {}", p.body);
    assert!(p.body.contains("<span class=\"who\">alice</span>"), "{}", p.body);
    // A handler's own refusal, in the layout too, its message escaped.
    let p = a.get(&app, "/live?channel=%3Cscript%3E").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("aria-label=\"Main\""), "{}", p.body);
    assert!(!p.body.contains("<script>"), "{}", p.body);
    // A wrong method on a page.
    let p = a.post(&app, "/healthz", &[]).await;
    assert!(p.status.is_client_error(), "{}", p.status);

    // The API answers JSON, unknown endpoints included.
    let (status, body) = a.api(&app, Method::GET, "/api/v1/nothing", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
}

/// Links carry channel names percent-encoded: a channel with `&`, `/`, `?`, `#` or `+` in
/// its name links to itself, not to another channel.
#[actix_web::test]
async fn channel_links_are_url_encoded() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    let channel = "a&b/c?d#e+f";
    let p = a
        .post(&app, "/authkeys", &[("publish", channel), ("subscribe", channel)])
        .await;
    assert!(
        p.status.is_redirection() || p.status == StatusCode::OK,
        "{}",
        p.body
    );
    let encoded = "a%26b%2Fc%3Fd%23e%2Bf";
    for page in ["/", "/authkeys", "/live"] {
        let p = a.get(&app, page).await;
        assert!(
            p.body.contains(&format!("href=\"/live?channel={encoded}\"")),
            "{page}: {}",
            p.body
        );
    }
    let p = a.get(&app, &format!("/live?channel={encoded}")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("data-channel=\"a&amp;b/c?d#e+f\""), "{}", p.body);
    assert!(
        p.body
            .contains(&format!("href=\"/live/events?channel={encoded}\"")),
        "{}",
        p.body
    );
}

/// The OpenAPI document at `/api/v1/openapi.json` describes exactly the routes served:
/// every route of `api::scope` is in it, and every operation in it is answered by a route
/// (not by the API's "no such endpoint"), with numbers and RFC 3339 times where it says so.
#[actix_web::test]
async fn the_openapi_document_matches_the_live_routes() {
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    let token = site
        .store
        .create_token(TokenKind::Api, alice.id, "", None)
        .unwrap();
    let mut c = Browser::default();
    let (s, doc) = c.api(&app, Method::GET, "/api/v1/openapi.json", "", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();

    // Every route the scope registers (read from its source) is documented.
    let source = include_str!("../src/web/api.rs");
    let mut served: Vec<(String, String)> = source
        .split(".route(\"")
        .skip(1)
        .map(|rest| {
            let path = rest.split('"').next().unwrap().to_owned();
            let method = rest.split("web::").nth(1).unwrap().split('(').next().unwrap();
            (method.to_uppercase(), path)
        })
        .collect();
    served.sort();
    assert_eq!(served, documented, "routes served vs documented");

    // Every documented operation reaches a handler of its own.
    for (method, path) in &documented {
        let op = &paths[path][method.to_lowercase()];
        let mut concrete = path.clone();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] != "path" {
                continue;
            }
            let value = p["schema"]["enum"][0]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    if p["schema"]["type"] == "integer" {
                        "999999".into()
                    } else {
                        "nothing-here".into()
                    }
                });
            concrete = concrete.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), &value);
        }
        let body = op.get("requestBody").map(|_| json!({}));
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, answer) = c.api(&app, m, &format!("/api/v1{concrete}"), &token, body).await;
        assert_ne!(
            answer["error"], "no such API endpoint",
            "{method} {concrete}: documented but not served"
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}");
    }

    // The shapes it promises: numbers and RFC 3339 times.
    let (_, key) = c
        .api(
            &app,
            Method::POST,
            "/api/v1/authkeys",
            &token,
            Some(json!({"publish": ["a"]})),
        )
        .await;
    let (_, list) = c.api(&app, Method::GET, "/api/v1/authkeys", &token, None).await;
    let k = &list["authkeys"][0];
    assert_eq!(k["ident"], key["ident"]);
    assert!(k["bytes_published"].is_i64(), "{k}");
    assert!(k["messages_received"].is_i64(), "{k}");
    assert_eq!(k["publish"], json!(["a"]));
    let rfc3339 = |v: &serde_json::Value| {
        let t = v.as_str().unwrap_or_default();
        t.len() == 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z')
    };
    assert!(rfc3339(&k["created_at"]), "{k}");
    let (_, me) = c.api(&app, Method::GET, "/api/v1/me", &token, None).await;
    assert!(rfc3339(&me["created_at"]), "{me}");
}

/// A group's owner who shares a channel with their own group is not asked to answer their
/// own offer: it is accepted as made and its members receive it, and nobody is mailed.
#[actix_web::test]
async fn a_share_to_ones_own_group_is_accepted_as_made() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/groups").await;
    let p = a.post(&app, "/groups", &[("name", "crew")]).await;
    assert!(p.status.is_redirection(), "{}", p.body);
    a.get(&app, "/shares").await;
    let p = a
        .post(
            &app,
            "/shares",
            &[("channel", "crew.feed"), ("to_kind", "group"), ("to", "crew")],
        )
        .await;
    assert_eq!(p.location(), "/shares?ok=share-own-group", "{}", p.body);
    let p = a.get(&app, p.location()).await;
    assert!(p.body.contains("its members receive it now"), "{}", p.body);
    assert!(!p.body.contains("Accept for group crew"), "{}", p.body);
    assert!(p.body.contains("state-accepted"), "{}", p.body);
    // Every share says when it was offered (the day; the hour and any answer on hover).
    assert!(p.body.contains("<time title=\"offered "), "{}", p.body);
    assert!(site.no_mail("alice@example.org", "crew.feed").await);
}

#[actix_web::test]
async fn share_lists_filter_by_state_and_clear_their_ended_entries() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    a.get(&app, "/shares").await;
    for c in ["f.revoked", "f.declined", "f.pending", "f.active"] {
        let p = a
            .post(
                &app,
                "/shares",
                &[("channel", c), ("to_kind", "user"), ("to", "bob")],
            )
            .await;
        assert!(p.status.is_redirection(), "{}", p.body);
    }
    let id = |c: &str| {
        let s = site.store.all_shares().unwrap();
        s.iter().find(|s| s.channel.as_str() == c).unwrap().id.0
    };
    b.get(&app, "/shared-with-me").await;
    for (c, act) in [
        ("f.revoked", "accept"),
        ("f.declined", "decline"),
        ("f.active", "accept"),
    ] {
        let p = b.post(&app, &format!("/shares/{}/{act}", id(c)), &[]).await;
        assert!(p.status.is_redirection(), "{}", p.body);
    }
    let p = a
        .post(
            &app,
            &format!("/shares/{}/revoke", id("f.revoked")),
            &[("confirm", "yes")],
        )
        .await;
    assert!(p.status.is_redirection(), "{}", p.body);

    // Each filter lists exactly its shares; the current one is marked, the others link.
    let listed = |body: &str| -> Vec<&'static str> {
        ["f.revoked", "f.declined", "f.pending", "f.active"]
            .into_iter()
            .filter(|c| body.contains(&format!("<code>{c}</code>")))
            .collect()
    };
    for (show, want) in [
        ("all", vec!["f.revoked", "f.declined", "f.pending", "f.active"]),
        ("active", vec!["f.active"]),
        ("pending", vec!["f.pending"]),
        ("ended", vec!["f.revoked", "f.declined"]),
    ] {
        let p = a.get(&app, &format!("/shares?show={show}")).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_eq!(listed(&p.body), want, "alice, show={show}");
        assert!(
            p.body
                .contains(&format!("<strong aria-current=\"page\">{show}</strong>")),
            "{}",
            p.body
        );
        let p = b.get(&app, &format!("/shared-with-me?show={show}")).await;
        assert_eq!(listed(&p.body), want, "bob, show={show}");
    }
    let p = a.get(&app, "/shares?show=everything").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("all, active, pending, ended"), "{}", p.body);

    // Alice clears her ended shares: gone from her list, still on Bob's until he clears his.
    let p = a.post(&app, "/shares/clear-ended", &[("list", "outgoing")]).await;
    assert_eq!(p.location(), "/shares?ok=shares-cleared", "{}", p.body);
    let p = a.get(&app, "/shares").await;
    assert_eq!(listed(&p.body), vec!["f.pending", "f.active"]);
    let p = a.get(&app, "/shares?show=ended").await;
    assert!(p.body.contains("None of your shares is ended."), "{}", p.body);
    let p = b.get(&app, "/shared-with-me?show=ended").await;
    assert_eq!(listed(&p.body), vec!["f.revoked", "f.declined"]);
    let p = b.post(&app, "/shares/clear-ended", &[("list", "incoming")]).await;
    assert_eq!(p.location(), "/shared-with-me?ok=shares-cleared", "{}", p.body);
    let p = b.get(&app, "/shared-with-me").await;
    assert_eq!(listed(&p.body), vec!["f.pending", "f.active"]);
    let p = b.post(&app, "/shares/clear-ended", &[("list", "sideways")]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    // Clearing changes lists only: the live share still flows, the pending one still waits.
    let live: Vec<_> = site
        .store
        .all_shares()
        .unwrap()
        .into_iter()
        .map(|s| (s.channel.as_str().to_owned(), s.state.as_str()))
        .collect();
    assert!(live.contains(&("f.active".into(), "accepted")), "{live:?}");
    assert!(live.contains(&("f.pending".into(), "offered")), "{live:?}");

    // The API filters the same way and clears the same way.
    let token = site.api_token("alice").await;
    let (s, body) = a
        .api(&app, Method::GET, "/api/v1/shares?state=pending", &token, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let chans: Vec<&str> = body["outgoing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["channel"].as_str().unwrap())
        .collect();
    assert_eq!(chans, vec!["f.pending"]);
    let (s, body) = a
        .api(&app, Method::GET, "/api/v1/shares?state=gone", &token, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let p = b
        .post(&app, &format!("/shares/{}/decline", id("f.pending")), &[])
        .await;
    assert!(p.status.is_redirection(), "{}", p.body);
    let (s, body) = a
        .api(
            &app,
            Method::POST,
            "/api/v1/shares/clear-ended",
            &token,
            Some(serde_json::json!({"list": "outgoing"})),
        )
        .await;
    assert_eq!((s, body["cleared"].as_i64()), (StatusCode::OK, Some(1)), "{body}");
    let (_, body) = a.api(&app, Method::GET, "/api/v1/shares", &token, None).await;
    assert_eq!(body["outgoing"].as_array().map(Vec::len), Some(1), "{body}");
}

#[actix_web::test]
async fn a_hubs_graph_is_summed_up_by_channel_and_drawn_a_channel_or_a_user_at_a_time() {
    use hpfriends::domain::model::{Grantee, ShareKind, ShareState};
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let hub = site.account("hub").await;
    // 260 users, each sent one share on one of three channels: 260 arrows.
    for i in 0..260 {
        let u = site
            .store
            .add_user(&format!("r{i:03}"), &format!("r{i}@example.org"), "test")
            .unwrap();
        site.store
            .add_share(
                hub.id,
                &Channel::new(&format!("c{}", i % 3)).unwrap(),
                Grantee::User(u.id),
                (ShareKind::Own, false),
                ShareState::Accepted,
                "test",
            )
            .unwrap();
    }
    let mut b = Browser::default();
    b.login(&app, "hub").await;
    let p = b.get(&app, "/graph").await;
    assert!(
        p.body.contains("id=\"too-large\"") && !p.body.contains("<svg"),
        "{}",
        p.body
    );
    let summary = between(&p.body, "id=\"by-channel\"", "</table>");
    assert!(
        summary.contains("<code>c0</code></td><td class=\"num\">87</td><td class=\"num\">0</td>"),
        "{summary}"
    );
    assert!(summary.contains("href=\"/graph?channel=c1\""), "{summary}");
    // One channel (87 arrows) is drawn, and so is one user.
    let p = b.get(&app, "/graph?channel=c1").await;
    assert!(
        p.body.contains("<svg") && !p.body.contains("too-large"),
        "{}",
        p.body
    );
    assert_eq!(
        p.body.matches("<td><code>c1</code></td>").count(),
        87,
        "{}",
        p.body
    );
    assert!(!p.body.contains("<code>c0</code>"), "{}", p.body);
    let p = b.get(&app, "/graph?with=R007").await;
    assert!(
        p.body.contains("<svg") && p.body.contains("user r007"),
        "{}",
        p.body
    );
    assert_eq!(p.body.matches("<td><code>").count(), 1, "{}", p.body);
    let p = b.get(&app, "/graph.svg?channel=c2").await;
    assert!(
        p.body.starts_with("<svg") && !p.body.contains("r000"),
        "{}",
        p.body
    );
}

#[actix_web::test]
async fn a_busy_channel_names_a_few_publishers_and_pages_the_rest() {
    use hpfriends::domain::listing::NewAuthkey;
    use hpfriends::wire::{Channel, Secret};
    let site = Site::new().await;
    let app = site.app().await;
    let viewer = site.account("viewer").await;
    let busy = Channel::new("busy.chan").unwrap();
    let mut ids = Vec::new();
    for (i, owner) in std::iter::once(viewer.id)
        .chain((0..60).map(|i| {
            site.store
                .add_user(&format!("p{i:02}"), &format!("p{i}@example.org"), "test")
                .unwrap()
                .id
        }))
        .enumerate()
    {
        ids.push(owner);
        site.store
            .add_authkey(
                &NewAuthkey {
                    owner,
                    ident: Ident::new(&format!("busy{i}")).unwrap(),
                    secret: Secret::new(format!("s{i}")),
                    publish: vec![busy.clone()],
                    subscribe: vec![],
                    comment: String::new(),
                },
                "test",
            )
            .unwrap();
    }
    let mut b = Browser::default();
    b.login(&app, "viewer").await;

    // The catalogue names the viewer and the 9 oldest other accounts, and counts the rest.
    let p = b.get(&app, "/channels").await;
    let row = between(&p.body, "<code>busy.chan</code>", "</tr>");
    assert!(
        row.contains("<span class=\"badge\">you</span>, <a href=\"/users/p00\">p00</a>"),
        "{row}"
    );
    assert!(row.contains(">p08</a>") && !row.contains(">p09</a>"), "{row}");
    assert!(row.contains("and 51 more</a>"), "{row}");
    let token = site.api_token("viewer").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/channels", &token, None).await;
    assert_eq!(body["channels"][0]["publisher_count"], 61, "{body}");
    assert_eq!(
        body["channels"][0]["publishers"].as_array().unwrap().len(),
        10,
        "{body}"
    );

    // The channel lists them 50 a page.
    let p = b.get(&app, "/channel?name=busy.chan").await;
    assert_eq!(p.body.matches("id=\"publisher-").count(), 50, "{}", p.body);
    assert!(p.body.contains("(61)"), "{}", p.body);
    assert!(
        p.body.contains("/channel?name&#x3D;busy.chan&amp;page=1"),
        "{}",
        p.body
    );
    let p = b.get(&app, "/channel?name=busy.chan&page=1").await;
    assert_eq!(p.body.matches("id=\"publisher-").count(), 11, "{}", p.body);
    assert!(p.body.contains("id=\"publisher-p59\""), "{}", p.body);
    let (_, body) = b
        .api(&app, Method::GET, "/api/v1/channel?name=busy.chan", &token, None)
        .await;
    assert_eq!(body["publisher_count"], 61, "{body}");
    assert_eq!(body["next_page"], 1, "{body}");
    assert_eq!(body["publishers"][0]["name"], "viewer", "{body}");
    let (_, body) = b
        .api(
            &app,
            Method::GET,
            "/api/v1/channel?name=busy.chan&page=1",
            &token,
            None,
        )
        .await;
    assert_eq!(body["publishers"].as_array().unwrap().len(), 11, "{body}");
    assert_eq!(body["next_page"], serde_json::Value::Null, "{body}");

    // A block made elsewhere (here, straight into the store) shows at once, both ways.
    site.store.block_user(ids[1], viewer.id, "test").unwrap();
    let (_, body) = b.api(&app, Method::GET, "/api/v1/channels", &token, None).await;
    assert_eq!(body["channels"][0]["publisher_count"], 60, "{body}");
    assert!(
        !body["channels"][0]["publishers"].to_string().contains("p00"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_researcher_finds_a_channel_asks_its_publisher_and_is_granted_it() {
    use hpfriends::domain::listing::Traffic;
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    for n in ["alice", "bob", "carol", "mallory"] {
        site.account(n).await;
    }
    let (mut a, mut b, mut c, mut m) = (
        Browser::default(),
        Browser::default(),
        Browser::default(),
        Browser::default(),
    );
    for (br, n) in [
        (&mut a, "alice"),
        (&mut b, "bob"),
        (&mut c, "carol"),
        (&mut m, "mallory"),
    ] {
        br.login(&app, n).await;
        br.get(&app, "/authkeys").await;
    }
    a.post(&app, "/authkeys", &[("publish", "dionaea.capture, a&b")])
        .await;
    c.post(&app, "/authkeys", &[("publish", "dionaea.capture")]).await;
    m.post(&app, "/authkeys", &[("publish", "dionaea.capture")]).await;
    let p = b
        .post(&app, "/authkeys", &[("subscribe", "dionaea.capture")])
        .await;
    let ident_b = Ident::new(&between(&p.body, "<code id=\"ident\">", "<")).unwrap();
    // Mallory blocks bob: bob does not see mallory among the publishers.
    m.get(&app, "/shared-with-me").await;
    m.post(&app, "/blocks", &[("user", "bob"), ("confirm", "yes")])
        .await;
    let ch = Channel::new("dionaea.capture").unwrap();
    let now = hpfriends::store::now();
    let bucket = hpfriends::store::models::catalogue::bucket_of(now);
    let t = |messages| Traffic {
        bucket: 0,
        messages,
        bytes: messages * 100,
        deliveries: messages * 2,
    };
    site.store
        .add_channel_traffic(bucket, &[(ch.clone(), t(7))])
        .unwrap();
    site.store
        .add_channel_traffic(bucket, &[(ch.clone(), t(5))])
        .unwrap();
    site.store
        .add_channel_traffic(bucket - 2 * 86_400, &[(ch.clone(), t(30))])
        .unwrap();

    // The catalogue lists both channels (a link that keeps `&`), with their publishers.
    let p = b.get(&app, "/channels").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("href=\"/channel?name=a%26b\""), "{}", p.body);
    let row = between(&p.body, "<code>dionaea.capture</code>", "</tr>");
    assert!(
        row.contains("<a href=\"/users/alice\">alice</a>, <a href=\"/users/carol\">carol</a>"),
        "{row}"
    );
    assert!(!row.contains("mallory"), "{row}");
    assert!(row.contains("<svg class=\"chart\""), "{row}");
    assert!(row.contains(">12</td>"), "the last day counts 7 + 5: {row}");
    let p = b.get(&app, "/channels?q=CAPT").await;
    assert!(
        p.body.contains("dionaea.capture") && !p.body.contains("a%26b"),
        "{}",
        p.body
    );

    // The channel's page: an hour, a day and a week of traffic, and the publishers.
    let p = b.get(&app, "/channel?name=dionaea.capture").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let hour = between(&p.body, "id=\"traffic-hour\"", "</figure>");
    assert!(
        hour.contains("<strong>12</strong> messages, 1.1 KiB, 24 deliveries"),
        "{hour}"
    );
    let week = between(&p.body, "id=\"traffic-week\"", "</figure>");
    assert!(week.contains("<strong>42</strong> messages"), "{week}");
    assert!(!p.body.contains("id=\"publisher-mallory\""), "{}", p.body);
    assert_eq!(p.body.matches("Request access").count(), 2, "{}", p.body);
    assert_eq!(
        b.get(&app, "/channel?name=").await.status,
        StatusCode::BAD_REQUEST
    );

    // Bob asks alice; alice is mailed; the request shows on her Shares page.
    let p = b
        .post(
            &app,
            "/channel/request",
            &[
                ("channel", "dionaea.capture"),
                ("publisher", "alice"),
                ("note", "honeynet, Berlin"),
            ],
        )
        .await;
    assert_eq!(
        p.location(),
        "/channel?name=dionaea.capture&ok=access-requested#publishers",
        "{}",
        p.body
    );
    let link = site
        .mail_link(
            "alice@example.org",
            "bob asks you for the channel dionaea.capture",
        )
        .await;
    assert!(link.contains("/shares#request-"), "{link}");
    // Not only by mail: alice's menu counts it, and her dashboard says so.
    let who = site.store.user_by_name("alice").unwrap().unwrap().id;
    let a_page = {
        let mut a = Browser::default();
        a.login(&app, "alice").await;
        a.get(&app, "/").await
    };
    assert_eq!(site.store.open_requests_to(who).unwrap(), 1);
    assert!(
        a_page
            .body
            .contains(r#"<a href="/shares#requests">Shares <span class="count""#),
        "{}",
        a_page.body
    );
    assert!(
        a_page
            .body
            .contains("Requests for access waiting for your answer: 1."),
        "{}",
        a_page.body
    );
    let p = b.get(&app, "/channel?name=dionaea.capture").await;
    assert!(p.body.contains("requested"), "{}", p.body);
    // Asking again, asking someone who does not publish, or oneself: a clear refusal.
    for (who, why) in [
        ("alice", "already asked"),
        ("mallory", "does not publish on dionaea.capture"),
        ("bob", "does not publish on dionaea.capture"),
    ] {
        let p = b
            .post(
                &app,
                "/channel/request",
                &[("channel", "dionaea.capture"), ("publisher", who)],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{who}: {}", p.body);
        assert!(p.body.contains(why), "{who}: {}", p.body);
    }
    let alice = site.store.user_by_name("alice").unwrap().unwrap();
    let admits = || {
        site.core.shared.keys.load()[&ident_b]
            .sources("dionaea.capture")
            .unwrap()
            .admits(alice.id)
    };
    assert!(!admits(), "a request alone carries nothing");

    // Only alice answers it; carol cannot, bob can only withdraw.
    let p = a.get(&app, "/shares").await;
    assert!(
        p.body.contains("Requests waiting for your answer: 1."),
        "{}",
        p.body
    );
    assert!(p.body.contains("honeynet, Berlin"), "{}", p.body);
    let id = between(&p.body, "<tr id=\"request-", "\"");
    c.get(&app, "/shares").await;
    let p = c.post(&app, &format!("/requests/{id}/grant"), &[]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    let p = b.post(&app, &format!("/requests/{id}/grant"), &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let p = a.post(&app, &format!("/requests/{id}/grant"), &[]).await;
    assert_eq!(p.location(), "/shares?ok=access-granted#requests", "{}", p.body);
    assert!(admits(), "the grant reached bob's key at once");
    let link = site
        .mail_link("bob@example.org", "alice granted your request")
        .await;
    assert!(link.ends_with("/live?channel=dionaea.capture"), "{link}");
    let p = a.post(&app, &format!("/requests/{id}/grant"), &[]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    let p = b.get(&app, "/channel?name=dionaea.capture").await;
    let row = between(&p.body, "id=\"publisher-alice\"", "</tr>");
    assert!(
        row.contains("shared with you") && !row.contains("Request access"),
        "{row}"
    );
    let p = b.get(&app, "/shared-with-me").await;
    assert!(p.body.contains("state-granted"), "{}", p.body);

    // Carol is asked too, and declines; bob withdraws nothing that is answered.
    b.post(
        &app,
        "/channel/request",
        &[("channel", "dionaea.capture"), ("publisher", "carol")],
    )
    .await;
    let p = c.get(&app, "/shares").await;
    let id = between(&p.body, "<tr id=\"request-", "\"");
    let p = c.post(&app, &format!("/requests/{id}/decline"), &[]).await;
    assert_eq!(p.location(), "/shares?ok=access-declined#requests", "{}", p.body);
    let p = b.post(&app, &format!("/requests/{id}/withdraw"), &[]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
}

#[actix_web::test]
async fn the_catalogue_and_requests_through_the_api() {
    use hpfriends::domain::listing::Traffic;
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    site.account("bob").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/authkeys").await;
    a.post(&app, "/authkeys", &[("publish", "api.chan")]).await;
    let ch = Channel::new("api.chan").unwrap();
    let bucket = hpfriends::store::models::catalogue::bucket_of(hpfriends::store::now());
    let t = Traffic {
        bucket: 0,
        messages: 3,
        bytes: 300,
        deliveries: 6,
    };
    site.store.add_channel_traffic(bucket, &[(ch, t)]).unwrap();
    let (ta, tb) = (site.api_token("alice").await, site.api_token("bob").await);

    let (s, body) = a
        .api(&app, Method::GET, "/api/v1/channels?q=API", &tb, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["channels"][0]["channel"], "api.chan", "{body}");
    assert_eq!(body["channels"][0]["publishers"], json!(["alice"]), "{body}");
    assert_eq!(body["channels"][0]["last_day"]["messages"], 3, "{body}");
    assert_eq!(body["next_page"], serde_json::Value::Null);
    let (s, body) = a
        .api(&app, Method::GET, "/api/v1/channel?name=api.chan", &tb, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let spans: Vec<&str> = body["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["span"].as_str().unwrap())
        .collect();
    assert_eq!(spans, ["hour", "day", "week"]);
    assert_eq!(body["traffic"][0]["slots"].as_array().unwrap().len(), 12);
    assert_eq!(body["traffic"][2]["deliveries"], 6, "{body}");
    assert!(
        body["traffic"][0]["slots"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let req = json!({"channel": "api.chan", "publisher": "alice", "note": "please"});
    let (s, body) = a
        .api(&app, Method::POST, "/api/v1/requests", &tb, Some(req.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (s, body) = a
        .api(&app, Method::POST, "/api/v1/requests", &tb, Some(req))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (_, body) = a.api(&app, Method::GET, "/api/v1/requests", &ta, None).await;
    assert_eq!(body["incoming"][0]["from"], "bob", "{body}");
    assert_eq!(body["incoming"][0]["state"], "open", "{body}");
    let path = format!("/api/v1/requests/{id}/grant");
    let (s, body) = a.api(&app, Method::POST, &path, &tb, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, body) = a.api(&app, Method::POST, &path, &ta, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let share = body["share"].as_i64().unwrap();
    let (_, body) = a.api(&app, Method::GET, "/api/v1/requests", &tb, None).await;
    assert_eq!(body["outgoing"][0]["state"], "granted", "{body}");
    assert_eq!(body["outgoing"][0]["share"], share, "{body}");
    let (_, body) = a
        .api(&app, Method::GET, "/api/v1/channel?name=api.chan", &tb, None)
        .await;
    assert_eq!(body["publishers"][0]["shares_with_you"], true, "{body}");
    site.mail_link("alice@example.org", "bob asks you for the channel api.chan")
        .await;
    site.mail_link("bob@example.org", "alice granted your request")
        .await;
}

#[actix_web::test]
async fn profiles_say_who_someone_is_what_they_publish_and_what_flows_between_us() {
    let site = Site::new().await;
    let app = site.app().await;
    for n in ["alice", "bob", "eve"] {
        site.account(n).await;
    }
    let (mut a, mut b, mut e) = (Browser::default(), Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    e.login(&app, "eve").await;

    // Alice fills in her profile; bad fields are named and nothing is saved.
    a.get(&app, "/account").await;
    let long = "x".repeat(101);
    let p = a
        .post(
            &app,
            "/account/profile",
            &[("affiliation", long.as_str()), ("about", "ok")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("at most 100 characters"), "{}", p.body);
    let p = a
        .post(
            &app,
            "/account/profile",
            &[
                ("affiliation", "Honeynet <Berlin>"),
                ("about", "Dionaea on 40 sensors.\nAsk me."),
            ],
        )
        .await;
    assert_eq!(p.location(), "/account?ok=profile", "{}", p.body);
    a.get(&app, "/authkeys").await;
    a.post(
        &app,
        "/authkeys",
        &[("publish", "dionaea.capture, cowrie.sessions")],
    )
    .await;
    a.get(&app, "/shares").await;
    a.post(
        &app,
        "/shares",
        &[("channel", "cowrie.sessions"), ("to_kind", "user"), ("to", "bob")],
    )
    .await;

    // Bob sees it, escaped, with what alice publishes and offers him.
    let p = b.get(&app, "/users/alice").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("Honeynet &lt;Berlin&gt;"), "{}", p.body);
    assert!(p.body.contains("Dionaea on 40 sensors."), "{}", p.body);
    let publishes = between(&p.body, "id=\"publishes\"", "</section>");
    assert!(
        publishes.contains("<code>cowrie.sessions</code>")
            && publishes.contains("<code>dionaea.capture</code>")
    );
    assert_eq!(publishes.matches("Request access").count(), 2, "{publishes}");
    let theirs = between(&p.body, "id=\"theirs\"", "</section>");
    assert!(
        theirs.contains("cowrie.sessions") && theirs.contains("answer it"),
        "{theirs}"
    );
    assert!(
        p.body.contains("href=\"/shares?to=alice#offer-form\""),
        "{}",
        p.body
    );
    let p = b.get(&app, "/shares?to=alice").await;
    assert!(
        p.body
            .contains("id=\"to\" name=\"to\" list=\"grantee-list\" value=\"alice\""),
        "{}",
        p.body
    );
    // Once bob accepts, the channel reads as shared with him and asks for nothing.
    let id = site.store.all_shares().unwrap()[0].id.0;
    b.get(&app, "/shared-with-me").await;
    b.post(&app, &format!("/shares/{id}/accept"), &[]).await;
    let p = b.get(&app, "/users/alice").await;
    let publishes = between(&p.body, "id=\"publishes\"", "</section>");
    assert_eq!(publishes.matches("Request access").count(), 1, "{publishes}");
    assert!(publishes.contains("shared with you"), "{publishes}");
    // Names link to profiles where they are listed.
    let p = b.get(&app, "/shared-with-me").await;
    assert!(
        p.body.contains("<a href=\"/users/alice\">alice</a>"),
        "{}",
        p.body
    );

    // Alice blocks eve: eve finds no such user, as for a name nobody has.
    a.get(&app, "/shared-with-me").await;
    a.post(&app, "/blocks", &[("user", "eve"), ("confirm", "yes")])
        .await;
    let p = e.get(&app, "/users/alice").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(e.get(&app, "/users/nobody").await.status, StatusCode::NOT_FOUND);
    // Her own page shows alice how others see her.
    let p = a.get(&app, "/users/alice").await;
    assert!(p.body.contains("This is how others see you"), "{}", p.body);
    assert!(!p.body.contains("Request access"), "{}", p.body);
}

#[actix_web::test]
async fn feed_health_warns_of_a_quiet_publisher_and_a_subscriber_cut_as_slow() {
    use hpfriends::domain::listing::KeyUsage;
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/authkeys").await;
    let key = |b: &str| between(b, "<code id=\"ident\">", "<");
    let sensor = key(&a
        .post(&app, "/authkeys", &[("publish", "dionaea.capture")])
        .await
        .body);
    let reader = key(&a
        .post(&app, "/authkeys", &[("subscribe", "dionaea.capture")])
        .await
        .body);
    let now = hpfriends::store::now();
    let bucket = |ago: i64| hpfriends::store::models::catalogue::bucket_of(now - ago);
    let used = |published, received, slow_cuts| KeyUsage {
        messages_published: published,
        bytes_published: published * 100,
        messages_received: received,
        bytes_received: received * 100,
        slow_cuts,
        ..KeyUsage::default()
    };
    // The sensor published 40 messages three hours ago and nothing since; the reader got
    // them, and was cut once as slow an hour ago.
    site.store
        .add_key_usage(
            bucket(3 * 3600),
            &[(sensor.clone(), used(40, 0, 0)), (reader.clone(), used(0, 40, 0))],
        )
        .unwrap();
    site.store
        .add_key_usage(bucket(3600), &[(reader.clone(), used(0, 0, 1))])
        .unwrap();

    let p = a.get(&app, "/").await;
    let health = between(&p.body, "id=\"feed-health\"", "</section>");
    assert!(
        health.contains(&format!("{sensor} has published nothing since"))
            && health.contains("40 messages in the week before"),
        "{health}"
    );
    assert!(
        health.contains(&format!(
            "{reader} was cut 1 time(s) in the last day as a slow subscriber"
        )),
        "{health}"
    );
    assert!(
        health.contains("published, last day: <strong>40</strong>"),
        "{health}"
    );
    assert!(health.contains("<svg class=\"chart\""), "{health}");
    let p = a.get(&app, "/authkeys").await;
    let card = between(&p.body, &format!("id=\"key-{sensor}\""), "</article>");
    assert!(card.contains("has published nothing since"), "{card}");
    assert!(card.contains("Last message between"), "{card}");
    let token = site.api_token("alice").await;
    let (_, body) = a.api(&app, Method::GET, "/api/v1/authkeys", &token, None).await;
    let k = body["authkeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["ident"] == reader.as_str())
        .unwrap()
        .clone();
    assert_eq!(k["health"]["received_last_day"], 40, "{k}");
    assert_eq!(k["health"]["warnings"].as_array().map(Vec::len), Some(1), "{k}");
    // A publish now clears the quiet warning.
    site.store
        .add_key_usage(bucket(0), &[(sensor.clone(), used(1, 0, 0))])
        .unwrap();
    let p = a.get(&app, "/").await;
    assert!(!p.body.contains("has published nothing since"), "{}", p.body);
}

#[actix_web::test]
async fn one_live_view_follows_several_channels_over_one_stream() {
    let site = Site::new().await;
    let app = site.app().await;
    site.account("alice").await;
    let mut a = Browser::default();
    a.login(&app, "alice").await;
    a.get(&app, "/authkeys").await;
    // Two keys: the view needs a broker session of each, behind one stream.
    let key = |b: &str| between(b, "<code id=\"ident\">", "<");
    let k1 = key(&a
        .post(&app, "/authkeys", &[("publish", "one"), ("subscribe", "one")])
        .await
        .body);
    let k2 = key(&a
        .post(&app, "/authkeys", &[("publish", "two/x"), ("subscribe", "two/x")])
        .await
        .body);
    let p = a.get(&app, "/live").await;
    assert!(p.body.contains("Follow several in one view"), "{}", p.body);
    let p = a.get(&app, "/live?channel=one&channel=two%2Fx").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(
        p.body.contains("data-query=\"channel=one&amp;channel=two%2Fx\""),
        "{}",
        p.body
    );
    assert_eq!(
        a.get(&app, "/live?channel=one&channel=nope").await.status,
        StatusCode::NOT_FOUND
    );
    let many: String = (0..21).map(|i| format!("channel=c{i}&")).collect();
    assert_eq!(
        a.get(&app, &format!("/live/events?{many}")).await.status,
        StatusCode::BAD_REQUEST
    );

    let res = actix_web::test::call_service(
        &app,
        events_request(&a, "/live/events?channel=one&channel=two%2Fx"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        site.state
            .live_views
            .lock()
            .get(&site.store.user_by_name("alice").unwrap().unwrap().id),
        Some(&1)
    );
    let mut body = Box::pin(res.into_body());
    let mut next = async || next_event(&mut body).await;
    let ready = next().await;
    assert!(ready.contains(&k1) && ready.contains(&k2), "{ready}");
    assert!(
        ready.contains("\"channel\":\"one\"") && ready.contains("\"channel\":\"two/x\""),
        "{ready}"
    );
    assert_eq!(ready.matches("event: access").count(), 2, "{ready}");
    let alice = site.store.user_by_name("alice").unwrap().unwrap();
    for (ident, channel, text) in [(&k2, "two/x", "second"), (&k1, "one", "first")] {
        let frame = hpfriends::wire::Frame::Publish {
            ident: Ident::new(ident).unwrap(),
            channel: hpfriends::wire::Channel::new(channel).unwrap(),
            payload: actix_web::web::Bytes::from(text.as_bytes().to_vec()),
        }
        .to_bytes()
        .unwrap();
        assert_eq!(
            site.core
                .shared
                .router
                .publish(alice.id, channel, &frame, &mut Vec::new()),
            1
        );
        let m = next().await;
        assert!(
            m.starts_with("event: message")
                && m.contains(&format!("\"channel\":\"{channel}\""))
                && m.contains(text),
            "{m}"
        );
    }
    drop(body);
    // The stream gone, its sessions and its slot are given back.
    let slots = || site.state.live_views.lock().get(&alice.id).copied();
    assert_eq!(slots(), None);
}

#[actix_web::test]
async fn requests_for_access_come_a_page_at_a_time() {
    use hpfriends::wire::Channel;
    let site = Site::new().await;
    let app = site.app().await;
    let alice = site.account("alice").await;
    let bob = site.account("bob").await;
    for i in 0..55 {
        let c = Channel::new(&format!("c{i:02}")).unwrap();
        site.store
            .add_access_request(bob.id, alice.id, &c, "", "bob")
            .unwrap();
    }
    let (mut a, mut b) = (Browser::default(), Browser::default());
    a.login(&app, "alice").await;
    b.login(&app, "bob").await;
    let p = a.get(&app, "/shares").await;
    assert_eq!(p.body.matches("<tr id=\"request-").count(), 50);
    assert!(
        p.body.contains("href=\"/shares?requests=1#requests\""),
        "{}",
        p.body
    );
    let p = a.get(&app, "/shares?requests=1").await;
    assert_eq!(p.body.matches("<tr id=\"request-").count(), 5);
    assert!(
        p.body.contains("href=\"/shares?requests=0#requests\""),
        "{}",
        p.body
    );
    let p = b.get(&app, "/shared-with-me?requests=1").await;
    assert_eq!(p.body.matches("<tr id=\"request-").count(), 5, "{}", p.body);
    let token = site.api_token("bob").await;
    let (_, body) = b.api(&app, Method::GET, "/api/v1/requests", &token, None).await;
    assert_eq!(body["outgoing"].as_array().map(Vec::len), Some(50), "{body}");
    assert_eq!(body["outgoing_next_page"], 1, "{body}");
}
