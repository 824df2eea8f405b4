//! The website under test with actix-web's test tools: the real handlers, SocialGraph and
//! Broker actors and a scratch SQLite file, driven by a cookie-keeping "browser".
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{App, test, web};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use hpfriends::config::Config;
use hpfriends::domain::listing::User;
use hpfriends::mail::Mailer;
use hpfriends::server::Core;
use hpfriends::store::Store;
use hpfriends::web::{self as site, WebState};

/// A store, the running core and the site's state.
pub struct Site {
    /// Scratch directory (database, mail).
    pub dir: TempDir,
    /// The database.
    pub store: Store,
    /// Keeps a scratch database (PostgreSQL: dropped at the end) alive.
    pub db: hpfriends::store::scratch::ScratchDb,
    /// Broker and SocialGraph.
    pub core: Core,
    /// What handlers receive.
    pub state: web::Data<WebState>,
    /// The site's mail queue, for a barrier behind what it queued.
    pub mailer: Mailer,
}

impl Site {
    /// A fresh site. Must run inside an actix system (`#[actix_web::test]`).
    pub async fn new() -> Site {
        Self::with(|_| {}).await
    }

    /// A fresh site whose config `tweak` has changed first.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = hpfriends::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let mut config = Config {
            acl_poll_ms: 3_600_000,
            stats_interval_secs: 0,
            public_url: "http://hpfriends.test".into(),
            ..Config::default()
        };
        config.mail_dir = dir.path().join("mail").to_string_lossy().into_owned();
        tweak(&mut config);
        let core = Core::start(config.clone(), &store, CancellationToken::new())
            .await
            .unwrap();
        let mailer = Mailer::start("", &config.mail_dir, &config.mail_from).unwrap();
        let state = WebState::new(
            store.clone(),
            core.graph.clone(),
            core.shared.clone(),
            mailer.clone(),
            &config,
        )
        .unwrap();
        Site {
            dir,
            store,
            db,
            core,
            mailer,
            state: web::Data::new(state),
        }
    }

    /// The app, as `test::init_service` builds it.
    pub async fn app(
        &self,
    ) -> impl Service<Request, Response = ServiceResponse, Error = actix_web::Error> + use<> {
        test::init_service(
            App::new()
                .wrap(site::error_pages::error_pages())
                // The body type the helpers name, as `start` erases it by serving.
                .wrap(actix_web::middleware::from_fn(
                    |req, next: actix_web::middleware::Next<_>| async move {
                        Ok::<_, actix_web::Error>(next.call(req).await?.map_into_boxed_body())
                    },
                ))
                .wrap(site::security_headers())
                .configure(site::configure(self.state.clone())),
        )
        .await
    }

    /// A verified account with password `NAME-long-passphrase`.
    pub async fn account(&self, name: &str) -> User {
        let hash = site::password::hash(format!("{name}-long-passphrase"))
            .await
            .unwrap();
        let u = self
            .store
            .create_account(name, &format!("{name}@example.org"), &hash)
            .unwrap();
        self.store.confirm_email(u.id, &u.email).unwrap();
        u
    }

    /// Returns once every mail the site queued before this call is written: a mail of its
    /// own goes through the same queue (one sending task, in order) and is waited for.
    pub async fn mail_barrier(&self) {
        let to = "barrier@example.org";
        self.mailer.send(to, "barrier", "barrier").unwrap();
        assert!(
            self.mail_text(to, "barrier").await,
            "the mail queue did not drain"
        );
    }

    /// Every mail written so far, as text.
    pub fn mails(&self) -> Vec<String> {
        let dir: PathBuf = self.dir.path().join("mail");
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let at = e.metadata().and_then(|m| m.modified()).ok();
                out.push((at, std::fs::read_to_string(e.path()).unwrap_or_default()));
            }
        }
        // Newest first, so that a link is the latest one mailed.
        out.sort_by_key(|m| std::cmp::Reverse(m.0));
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// Whether a mail to `to` containing `needle` arrives (waits up to 10 s).
    pub async fn mail_text(&self, to: &str, needle: &str) -> bool {
        for _ in 0..500 {
            if self
                .mails()
                .iter()
                .any(|m| m.contains(&format!("To: {to}")) && m.replace("=\r\n", "").contains(needle))
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }

    /// A standing API token for `name`.
    pub async fn api_token(&self, name: &str) -> String {
        let u = self.store.user_by_name(name).unwrap().unwrap();
        self.store
            .create_token(hpfriends::store::models::accounts::TokenKind::Api, u.id, "", None)
            .unwrap()
    }

    /// Whether no mail queued so far went to `to` with `needle` in it (waits for the queue).
    pub async fn no_mail(&self, to: &str, needle: &str) -> bool {
        self.mail_barrier().await;
        !self
            .mails()
            .iter()
            .any(|m| m.contains(&format!("To: {to}")) && m.contains(needle))
    }

    /// Waits for a mail to `to` containing `needle` and returns the first link in it.
    pub async fn mail_link(&self, to: &str, needle: &str) -> String {
        for _ in 0..500 {
            for m in self.mails() {
                // Quoted-printable, should a mail need it: soft breaks and =XX escapes.
                let m = m.replace("=\r\n", "").replace("=3D", "=");
                if m.contains(&format!("To: {to}")) && m.contains(needle) {
                    let start = m.find("http://").unwrap();
                    return m[start..].split_whitespace().next().unwrap().to_owned();
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no mail to {to} with {needle:?}");
    }
}

/// A response read whole.
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: header::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Page {
    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")?;
        let rest = &self.body[at + 19..];
        Some(rest[..rest.find('"')?].to_owned())
    }
}

/// Keeps cookies and the last CSRF token, like a browser.
#[derive(Default, Clone)]
pub struct Browser {
    /// Cookie name → value.
    pub cookies: BTreeMap<String, String>,
    /// The CSRF token of the last page that had forms.
    pub csrf: String,
    /// The address requests come from (default 127.0.0.1:40000).
    pub peer: Option<std::net::SocketAddr>,
    /// Extra headers on every request (a proxy's `X-Forwarded-For`).
    pub headers: Vec<(String, String)>,
}

impl Browser {
    fn request(&self, method: Method, path: &str) -> test::TestRequest {
        let mut r = test::TestRequest::default()
            .method(method)
            .uri(path)
            .peer_addr(self.peer.unwrap_or_else(|| "127.0.0.1:40000".parse().unwrap()));
        for (k, v) in &self.headers {
            r = r.insert_header((k.as_str(), v.as_str()));
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r = r.insert_header((header::COOKIE, c.join("; ")));
        }
        r
    }

    async fn send<S>(&mut self, app: &S, req: test::TestRequest) -> Page
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let res = test::call_service(app, req.to_request()).await;
        for c in res.response().cookies() {
            let gone = c.value().is_empty() || c.max_age().is_some_and(|a| a.is_zero() || a.is_negative());
            if gone {
                self.cookies.remove(c.name());
            } else {
                self.cookies.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let body = String::from_utf8_lossy(&test::read_body(res).await).into_owned();
        let page = Page {
            status,
            headers,
            body,
        };
        if let Some(t) = page.csrf() {
            self.csrf = t;
        }
        page
    }

    /// GET `path`.
    pub async fn get<S>(&mut self, app: &S, path: &str) -> Page
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let req = self.request(Method::GET, path);
        self.send(app, req).await
    }

    /// POST a form with this browser's CSRF token.
    pub async fn post<S>(&mut self, app: &S, path: &str, form: &[(&str, &str)]) -> Page
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let csrf = self.csrf.clone();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &csrf));
        self.post_raw(app, path, &fields).await
    }

    /// POST a form exactly as given (no CSRF token added).
    pub async fn post_raw<S>(&mut self, app: &S, path: &str, form: &[(&str, &str)]) -> Page
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let body = serde_urlencoded::to_string(form).unwrap();
        let req = self
            .request(Method::POST, path)
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload(body);
        self.send(app, req).await
    }

    /// Any request with a JSON body and a bearer token (the API).
    pub async fn api<S>(
        &mut self,
        app: &S,
        method: Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value)
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let mut req = test::TestRequest::default()
            .method(method)
            .uri(path)
            .peer_addr("127.0.0.1:40001".parse().unwrap());
        if !token.is_empty() {
            req = req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        }
        if let Some(b) = body {
            req = req.set_json(b);
        }
        let res = test::call_service(app, req.to_request()).await;
        let status = res.status();
        let bytes = test::read_body(res).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Logs in (a fresh CSRF token first); panics unless it worked.
    pub async fn login<S>(&mut self, app: &S, name: &str) -> Page
    where
        S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        self.get(app, "/login").await;
        let pw = format!("{name}-long-passphrase");
        let p = self
            .post(app, "/login", &[("login", name), ("password", &pw)])
            .await;
        assert_eq!(
            p.status,
            StatusCode::SEE_OTHER,
            "login of {name} failed: {}",
            p.body
        );
        // The session has a new CSRF token: load a page to get it.
        self.get(app, "/").await;
        p
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // The actors stop after the test, when the scratch database is already gone.
        self.store.close();
    }
}
