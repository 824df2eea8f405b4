//! Who is asking: login sessions in signed cookies, CSRF tokens on every form, the JSON
//! API's bearer tokens, and the website's rate limits.
//!
//! The session cookie holds a random id whose hash is the `web_sessions` row; it is made
//! fresh at login (no fixation) and deleted at logout. Forms carry a `csrf` field: a keyed
//! hash of the session id, or, before login, of a random pre-session id in the signed
//! `hpf_csrf` cookie. So a token is worth something only in the session it was made for:
//! one minted for an anonymous visitor (or before login) is refused after login. Forms are
//! refused too when the browser says (Origin, else Referer) that another site sent them.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::error::{ApiError, WebError};
use super::{State, WebState};
use crate::domain::UserId;
use crate::domain::listing::User;
use crate::limiter::Limiter;
use crate::store::Store;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "hpf_session";
/// CSRF cookie name.
pub const CSRF_COOKIE: &str = "hpf_csrf";
/// Carries, signed, the nodes a change had not reached to the page a form redirects to
/// (`?behind=1`), so the names come from the server, never from a link.
pub const BEHIND_COOKIE: &str = "hpf_behind";
/// Largest form body accepted.
pub use crate::config::limits::FORM_LIMIT;

/// The name a cookie goes by on the wire: over HTTPS `__Host-` + `name`, which browsers
/// accept only from this very origin (Secure, path `/`, no Domain), so a page on another
/// port or a sibling subdomain of the same host cannot plant its own session on the
/// viewer (login CSRF by cookie tossing). Plain HTTP cannot have that guarantee.
pub fn cookie_name(state: &WebState, name: &'static str) -> std::borrow::Cow<'static, str> {
    if state.secure_cookies {
        std::borrow::Cow::Owned(format!("__Host-{name}"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Builds a cookie with the site's flags: HttpOnly, SameSite=Lax, path `/`, Secure (and the
/// `__Host-` prefix, see [`cookie_name`]) over HTTPS.
pub fn cookie(state: &WebState, name: &'static str, value: String, max_age: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(state, name), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .finish();
    if let Some(secs) = max_age {
        c.set_max_age(actix_web::cookie::time::Duration::seconds(secs));
    }
    c
}

/// Signs a cookie with the server key.
pub fn signed(state: &WebState, c: Cookie<'static>) -> Cookie<'static> {
    let name = c.name().to_owned();
    let mut jar = CookieJar::new();
    jar.signed_mut(&state.key).add(c);
    jar.get(&name).cloned().unwrap_or_else(|| Cookie::new(name, ""))
}

/// A `Cookie:` header value signing `user` in over plain HTTP, made without the login form
/// (benchmarks drive the pages of generated users, who have no password).
pub fn session_cookie_for(store: &Store, user: UserId, ttl_secs: i64) -> Result<String, WebError> {
    let raw = store.create_session(user, ttl_secs, "bench")?;
    let key = super::cookie_key(store)?;
    let mut jar = CookieJar::new();
    jar.signed_mut(&key).add(Cookie::new(SESSION_COOKIE, raw));
    let c = jar
        .get(SESSION_COOKIE)
        .ok_or_else(|| WebError::Internal("the session cookie was not signed".into()))?;
    Ok(format!("{}={}", c.name(), c.value()))
}

/// The verified value of a signed cookie.
pub fn read_signed(state: &WebState, req: &HttpRequest, name: &'static str) -> Option<String> {
    let name = cookie_name(state, name);
    let c = req.cookie(&name)?;
    let mut jar = CookieJar::new();
    jar.add_original(c);
    jar.signed(&state.key).get(&name).map(|c| c.value().to_owned())
}

/// What a CSRF token is bound to: the login session, else the pre-session.
fn csrf_binding(state: &WebState, req: &HttpRequest) -> Option<String> {
    if let Some(session) = read_signed(state, req, SESSION_COOKIE) {
        return Some(format!("session:{session}"));
    }
    read_signed(state, req, CSRF_COOKIE)
        .filter(|t| t.len() == crate::store::models::accounts::TOKEN_LEN)
        .map(|t| format!("pre:{t}"))
}

/// The token for `binding`: SHA-256 keyed with the server's cookie key.
fn csrf_for(state: &WebState, binding: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"hpfriends csrf\0");
    h.update(state.key.signing());
    h.update(binding.as_bytes());
    hex::encode(h.finalize())
}

/// The request's CSRF token, and a new pre-session id when the response must set one (an
/// anonymous visitor without one yet).
pub fn csrf_token(state: &WebState, req: &HttpRequest) -> Result<(String, Option<String>), WebError> {
    if let Some(binding) = csrf_binding(state, req) {
        return Ok((csrf_for(state, &binding), None));
    }
    let pre =
        crate::store::models::accounts::random_token().map_err(|e| WebError::Internal(e.to_string()))?;
    Ok((csrf_for(state, &format!("pre:{pre}")), Some(pre)))
}

/// Whether the browser says the request comes from this site: its `Origin` (else the
/// origin of its `Referer`) is the site's public URL or the host it asked for. A request
/// with neither (not a browser's cross-site form) is left to the token.
fn same_origin(state: &WebState, req: &HttpRequest) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = match header(actix_web::http::header::ORIGIN) {
        Some(o) => o.to_owned(),
        None => match header(actix_web::http::header::REFERER) {
            Some(r) => origin_of(r),
            None => return true,
        },
    };
    let conn = req.connection_info();
    let requested = format!("{}://{}", conn.scheme(), conn.host());
    origin == origin_of(&state.site_url) || origin == requested
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{}://{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase())
}

/// The logged-in user; anonymous requests are sent to the login page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who.
    pub user: User,
    /// The raw session id (to keep this session when others are ended).
    pub session: String,
    /// Requests for access waiting for this user's answer (counted in the menu, so that
    /// nobody depends on a mail to learn of them).
    pub waiting: usize,
}

/// The viewer when logged in.
#[derive(Debug, Clone)]
pub struct MaybeViewer(pub Option<Viewer>);

/// The logged-in viewer of `req`, if any (a database lookup).
pub(crate) async fn viewer_of(req: HttpRequest) -> Result<Option<Viewer>, WebError> {
    let state = state_of(&req)?;
    let Some(raw) = read_signed(&state, &req, SESSION_COOKIE) else {
        return Ok(None);
    };
    let store = state.store.clone();
    let lookup = raw.clone();
    let found = super::on_db(move || -> Result<_, crate::store::StoreError> {
        let Some(user) = store.session_user(&lookup)? else {
            return Ok(None);
        };
        let waiting = store.open_requests_to(user.id)?;
        Ok(Some((user, waiting)))
    })
    .await??;
    Ok(found.map(|(user, waiting)| Viewer {
        user,
        session: raw,
        waiting,
    }))
}

fn state_of(req: &HttpRequest) -> Result<State, WebError> {
    req.app_data::<State>()
        .cloned()
        .ok_or_else(|| WebError::Internal("web state missing".into()))
}

/// Whether `next` may be where a login goes on to: a path of this site (`/…`, never
/// `//host` or `/\\host`, which browsers take for another site), printable, and short.
pub fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 1024
        && next.chars().all(|c| c.is_ascii_graphic())
        && next != "/login"
        && !next.starts_with("/login?")
}

impl FromRequest for Viewer {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        // A page asked for (a link in a mail, a bookmark) is where the login goes on to;
        // a form posted without a session is not replayed.
        let then = (req.method() == actix_web::http::Method::GET)
            .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .filter(|p| safe_next(p));
        Box::pin(async move {
            viewer_of(req)
                .await?
                .ok_or_else(|| then.map_or(WebError::Login, WebError::LoginThen))
        })
    }
}

impl FromRequest for MaybeViewer {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(MaybeViewer(viewer_of(req).await?)) })
    }
}

/// A JSON API caller, by `Authorization: Bearer TOKEN`.
#[derive(Debug, Clone)]
pub struct ApiUser(pub User);

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req)?;
            let token = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty() && t.len() <= 128)
                .ok_or(ApiError(WebError::Login))?;
            let store = state.store.clone();
            let user = super::on_db(move || store.api_token_user(&token))
                .await?
                .map_err(WebError::from)?;
            user.map(ApiUser).ok_or(ApiError(WebError::Login))
        })
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A url-encoded form whose `csrf` field was checked against the cookie before anything
/// else looked at it. Every state-changing form of the site is taken through this.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|_| {
                WebError::BadRequest(format!("the form is too large (over {FORM_LIMIT} bytes)"))
            })?;
            let state = state_of(&req)?;
            if !same_origin(&state, &req) {
                return Err(WebError::Csrf);
            }
            let sent: CsrfField = serde_urlencoded::from_bytes(&body)
                .map_err(|_| WebError::BadRequest("unreadable form".into()))?;
            let Some(binding) = csrf_binding(&state, &req) else {
                return Err(WebError::Csrf);
            };
            let expected = csrf_for(&state, &binding);
            if !bool::from(sent.csrf.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(WebError::Csrf);
            }
            let form: T = serde_urlencoded::from_bytes(&body)
                .map_err(|e| WebError::BadRequest(format!("unreadable form: {e}")))?;
            Ok(CsrfForm(form))
        })
    }
}

/// The website's limiters (see [`crate::limiter`]), with the quotas of the config keys
/// named on each field.
#[derive(Debug)]
pub struct WebLimits {
    /// Login attempts per (account, address): `login_attempts_per_account` per 15 minutes.
    pub login_account: Limiter<(String, Option<IpAddr>)>,
    /// Login attempts per address: `login_attempts_per_address` per 15 minutes.
    pub login_address: Limiter<Option<IpAddr>>,
    /// Reset requests per (account, address): `reset_requests_per_account` per hour. The
    /// account is `#id` when it exists (every spelling of it alike), else the folded login.
    pub reset_account: Limiter<(String, Option<IpAddr>)>,
    /// Mail-sending requests per address: `mail_requests_per_address` per 15 minutes.
    pub mail_address: Limiter<Option<IpAddr>>,
    /// Mails per recipient address: `mails_per_recipient` per hour.
    pub mail_recipient: Limiter<String>,
    /// Mails caused by one user's actions: `mails_per_sender` per hour.
    pub mail_sender: Limiter<crate::domain::UserId>,
}

const QUARTER: Duration = Duration::from_secs(15 * 60);
const HOUR: Duration = Duration::from_secs(3600);

impl WebLimits {
    /// The limiters with `config`'s quotas.
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            login_account: Limiter::new(config.login_attempts_per_account, QUARTER),
            login_address: Limiter::new(config.login_attempts_per_address, QUARTER),
            reset_account: Limiter::new(config.reset_requests_per_account, HOUR),
            mail_address: Limiter::new(config.mail_requests_per_address, QUARTER),
            mail_recipient: Limiter::new(config.mails_per_recipient, HOUR),
            mail_sender: Limiter::new(config.mails_per_sender, HOUR),
        }
    }

    /// Counts a login attempt for `login` (case folded) from `ip`; the wait when over.
    pub fn login(&self, login: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.login_address.check(&ip)?;
        self.login_account.check(&(login.to_lowercase(), ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_goes_on_only_to_this_sites_pages() {
        for ok in ["/shared-with-me", "/groups?joined=trusted", "/channels/x%20y"] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/a b",
            "/login",
            "/login?next=/x",
            "",
            "shared-with-me",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/shares?x=1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin_of("HTTPS://Site.org"), "https://site.org");
        assert_eq!(origin_of("garbage"), "");
    }
}
