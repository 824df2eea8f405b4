//! Accounts: sign up with a mailed confirmation link, log in and out, password reset by
//! mail, account settings (password, email, API tokens).
//!
//! Login answers the same for an unknown user and a wrong password, takes the same time for
//! both, and is throttled per account and per address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{FieldErrors, see_other};
use crate::social::ops;
use crate::store::models::accounts::TokenKind;
use crate::web::error::WebError;
use crate::web::password;
use crate::web::render::{Page, mail_text, time};
use crate::web::session::{CsrfForm, MaybeViewer, SESSION_COOKIE, Viewer, cookie, signed};
use crate::web::{State, WebState};

/// How long a mailed confirmation link works.
const VERIFY_TTL: i64 = 48 * 3600;
/// How long a password-reset link works.
const RESET_TTL: i64 = 3600;

/// Account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/signup", web::get().to(signup_page))
        .route("/signup", web::post().to(signup))
        .route("/verify/{token}", web::get().to(verify))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/reset", web::get().to(reset_request_page))
        .route("/reset", web::post().to(reset_request))
        .route("/reset/{token}", web::get().to(reset_page))
        .route("/reset/{token}", web::post().to(reset))
        .route("/account", web::get().to(account_page))
        .route("/account/password", web::post().to(change_password))
        .route("/account/email", web::post().to(change_email))
        .route("/account/profile", web::post().to(change_profile))
        .route("/account/api-token", web::post().to(create_api_token))
        .route("/account/api-token/revoke", web::post().to(revoke_api_tokens))
        .route("/account/api-token/{id}/revoke", web::post().to(revoke_api_token));
}

/// The client's address as rate limits key it (see [`crate::web::client_ip`]).
fn peer(state: &WebState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    crate::web::client_ip::bucket(state.client(req))
}

/// The rate-limit bucket of a login or reset request: every spelling of one account (name
/// or address, any case) shares `#id`; a login nobody has is its folded text.
fn bucket_of(login: &str, account: Option<&crate::store::models::accounts::Account>) -> String {
    account.map_or_else(|| login.to_lowercase(), |a| format!("#{}", a.user.id.0))
}

/// Opens a session for `user` and answers with its cookie and a redirect.
async fn log_in(
    state: &WebState,
    req: &HttpRequest,
    user: crate::domain::UserId,
    to: &str,
    ok: Option<&str>,
) -> Result<HttpResponse, WebError> {
    let ttl = state.session_secs;
    let addr = state.client(req).map(|a| a.to_string()).unwrap_or_default();
    let raw = state.db(move |s| s.create_session(user, ttl, &addr)).await?;
    let mut res = see_other(to, ok);
    res.add_cookie(&signed(state, cookie(state, SESSION_COOKIE, raw, Some(ttl))))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    // A new CSRF token for the new session: one seen before login is worth nothing after.
    res.add_removal_cookie(&cookie(
        state,
        crate::web::session::CSRF_COOKIE,
        String::new(),
        None,
    ))
    .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(res)
}

/// Counts a request that makes the site mail someone, refusing past
/// `mail_requests_per_address` per address in 15 minutes, so the site cannot be used to
/// flood mailboxes.
fn mail_allowed(state: &WebState, req: &HttpRequest) -> Result<(), WebError> {
    state
        .limits
        .mail_address
        .check(&peer(state, req))
        .map_err(|_| WebError::Throttled)
}

/// Whether `from`'s actions (offers, invitations) may make the site send one more mail
/// this hour (`mails_per_sender`); when not, the mail is left out and counted.
pub fn sender_may_mail(state: &WebState, from: &crate::domain::listing::User) -> bool {
    if state.limits.mail_sender.check(&from.id).is_ok() {
        return true;
    }
    state
        .mailer
        .stats
        .throttled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(user = %from.name, "mail left out: the sender had its hourly bound");
    false
}

/// Queues a mail rendered from `template`, unless `to` already had `mails_per_recipient`
/// this hour (then it is left out, logged and counted); a failure is logged (the mailer
/// counts it).
pub fn mail(state: &WebState, to: &str, subject: &str, template: &str, ctx: &serde_json::Value) {
    if state.limits.mail_recipient.check(&to.to_lowercase()).is_err() {
        state
            .mailer
            .stats
            .throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(%to, "mail left out: the address had its hourly bound");
        return;
    }
    match mail_text(state, template, ctx) {
        Ok(text) => {
            if let Err(e) = state.mailer.send(to, subject, &text) {
                tracing::warn!(%to, "mail not queued: {e}");
            }
        }
        Err(e) => tracing::error!("mail template {template}: {}", e.log_text()),
    }
}

// ----- sign up -----

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignupForm {
    name: String,
    email: String,
    password: String,
    password2: String,
}

async fn signup_page(state: State, req: HttpRequest, v: MaybeViewer) -> Result<HttpResponse, WebError> {
    if v.0.is_some() {
        return Ok(see_other("/", None));
    }
    Page::new("signup", "Sign up", "", json!({"form": {}, "errors": {}})).render(&state, &req, None)
}

async fn signup(
    state: State,
    req: HttpRequest,
    form: CsrfForm<SignupForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let name = f.name.trim().to_owned();
    let email = f.email.trim().to_owned();
    let mut errors = FieldErrors::default();
    if !ops::valid_name(&name) {
        errors.add("name", "use 1-64 letters, digits, '.', '_' or '-'");
    }
    if !valid_email(&email) {
        errors.add("email", "enter an email address like name@example.org");
    }
    if let Some(w) = password::weakness(&f.password, &name) {
        errors.add("password", w);
    }
    if f.password != f.password2 {
        errors.add("password2", "the two passwords differ");
    }
    let refuse = |errors: FieldErrors| {
        Page::new(
            "signup",
            "Sign up",
            "",
            json!({"form": {"name": name, "email": email}, "errors": errors.to_json()}),
        )
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .render(&state, &req, None)
    };
    if !errors.is_empty() {
        return refuse(errors);
    }
    mail_allowed(&state, &req)?;
    let hash = password::hash(f.password).await?;
    let (n, e) = (name.clone(), email.clone());
    // A registered address gets exactly the answer a fresh one gets, and its owner a mail
    // saying so: sign-up does not tell who has an account here.
    let n2 = name.clone();
    let (name_taken, owner) = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            Ok((s.user_by_name(&n2)?.is_some(), s.account_by_email(&e)?))
        })
        .await?;
    if name_taken {
        // Only the name can clash here (user names are public anyway).
        let mut errors = FieldErrors::default();
        errors.add("name", "that user name is taken");
        return refuse(errors);
    }
    // The rest (an account and its link, or a mail to the address's owner) happens after
    // the answer, so that a fresh address and a registered one are answered alike and in
    // the same time: sign-up does not tell who has an account here.
    let later = state.clone();
    let e = email.clone();
    actix_rt::spawn(async move {
        let state = later;
        let done = match owner {
            Some(owner) => {
                mail(
                    &state,
                    &owner.user.email,
                    "Someone tried to sign up with your address on hpfriends",
                    "mail/signup_taken",
                    &json!({"name": owner.user.name, "link": format!("{}/reset", state.site_url)}),
                );
                Ok(())
            }
            None => match state.db(move |s| s.create_account(&n, &e, &hash)).await {
                Ok(user) => send_verification(&state, &user.name, user.id, &user.email).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = done {
            tracing::warn!("sign-up not completed: {}", e.log_text());
        }
    });
    Page::new(
        "message",
        "Check your email",
        "",
        json!({
            "heading": "Check your email",
            "text": format!("We sent a confirmation link to {email}. Open it to activate your account; it works for 48 hours."),
        }),
    )
    .render(&state, &req, None)
}

async fn send_verification(
    state: &WebState,
    name: &str,
    user: crate::domain::UserId,
    email: &str,
) -> Result<(), WebError> {
    let e = email.to_owned();
    let token = state
        .db(move |s| s.create_token(TokenKind::VerifyEmail, user, &e, Some(VERIFY_TTL)))
        .await?;
    let link = format!("{}/verify/{token}", state.site_url);
    mail(
        state,
        email,
        "Confirm your hpfriends email address",
        "mail/verify",
        &json!({"name": name, "link": link}),
    );
    Ok(())
}

/// Whether `email` looks like an address (the mail server has the last word).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
        && crate::domain::text::problem(email, 254, false).is_none()
}

async fn verify(state: State, req: HttpRequest, token: web::Path<String>) -> Result<HttpResponse, WebError> {
    let t = token.into_inner();
    let again = t.clone();
    let Some((user, email)) = state
        .db(move |s| s.consume_token(TokenKind::VerifyEmail, &t))
        .await?
    else {
        // Opened before (a mail scanner, a second click): done if that address is the
        // account's and confirmed; anything else is a dead link.
        let done = state
            .db(move |s| -> Result<bool, crate::store::StoreError> {
                let Some((user, email)) = s.used_token(TokenKind::VerifyEmail, &again)? else {
                    return Ok(false);
                };
                Ok(s.account(user)?
                    .is_some_and(|a| a.email_verified && a.user.email.eq_ignore_ascii_case(&email)))
            })
            .await?;
        if done {
            return Ok(see_other("/login", Some("verified")));
        }
        return Page::new(
            "message",
            "Link expired",
            "",
            json!({"heading": "This link has expired or was used already", "text": "Log in, or ask for a new link with a password reset."}),
        )
        .status(StatusCode::NOT_FOUND)
        .render(&state, &req, None);
    };
    // Confirms and nothing more: opening a link never logs the opener in (a link forwarded,
    // or planted by someone who signed up with your address, must not make a session).
    state.db(move |s| s.confirm_email(user, &email)).await?;
    Ok(see_other("/login", Some("verified")))
}

// ----- log in and out -----

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    login: String,
    password: String,
    /// Where to go on to (a page asked for while logged out).
    next: String,
}

/// `?next=PATH`: the page asked for while logged out.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NextQuery {
    next: String,
}

/// The page a login goes on to: `next` when it is one of this site's, else the dashboard.
fn next_or_home(next: &str) -> &str {
    if crate::web::session::safe_next(next) {
        next
    } else {
        "/"
    }
}

async fn login_page(
    state: State,
    req: HttpRequest,
    v: MaybeViewer,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, WebError> {
    let next = next_or_home(&q.next);
    if v.0.is_some() {
        return Ok(see_other(next, None));
    }
    Page::new(
        "login",
        "Log in",
        "",
        json!({"form": {"next": (next != "/").then_some(next)}, "errors": {}}),
    )
    .render(&state, &req, None)
}

async fn login(state: State, req: HttpRequest, form: CsrfForm<LoginForm>) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let login = f.login.trim().to_owned();
    let next = next_or_home(&f.next);
    let ip = peer(&state, &req);
    let refuse = |status: StatusCode, message: &str| {
        Page::new(
            "login",
            "Log in",
            "",
            json!({"form": {"login": login, "next": (next != "/").then_some(next)}, "errors": {"form": message}}),
        )
        .status(status)
        .render(&state, &req, None)
    };
    let l = login.clone();
    let account = state.db(move |s| s.account_by_login(&l)).await?;
    if let Err(wait) = state.limits.login(&bucket_of(&login, account.as_ref()), ip) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many login attempts from here. Try again in {} s, or reset your password.",
                wait.as_secs() + 1
            ),
        );
    }
    let stored = account.as_ref().and_then(|a| a.password_hash.clone());
    let ok = password::verify(f.password, stored).await?;
    let Some(account) = account.filter(|a| ok && a.user.enabled) else {
        return refuse(StatusCode::UNAUTHORIZED, "Unknown user or wrong password.");
    };
    if !account.email_verified {
        return refuse(
            StatusCode::FORBIDDEN,
            "Confirm your email address first: open the link we mailed you (or reset your password to get a new one).",
        );
    }
    log_in(&state, &req, account.user.id, next, None).await
}

async fn logout(
    state: State,
    v: Viewer,
    _form: CsrfForm<serde::de::IgnoredAny>,
) -> Result<HttpResponse, WebError> {
    let raw = v.session.clone();
    state.db(move |s| s.delete_session(&raw)).await?;
    let mut res = see_other("/login", Some("logged-out"));
    res.add_removal_cookie(&cookie(&state, SESSION_COOKIE, String::new(), None))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(res)
}

// ----- password reset -----

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetRequestForm {
    login: String,
}

async fn reset_request_page(state: State, req: HttpRequest) -> Result<HttpResponse, WebError> {
    Page::new(
        "reset_request",
        "Reset password",
        "",
        json!({"form": {}, "errors": {}}),
    )
    .render(&state, &req, None)
}

async fn reset_request(
    state: State,
    req: HttpRequest,
    form: CsrfForm<ResetRequestForm>,
) -> Result<HttpResponse, WebError> {
    let login = form.0.login.trim().to_owned();
    if login.is_empty() {
        return Page::new(
            "reset_request",
            "Reset password",
            "",
            json!({"form": {}, "errors": {"login": "enter your user name or email address"}}),
        )
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .render(&state, &req, None);
    }
    // Bounded per requesting address and per (account, address), never per account
    // alone: the form cannot flood someone's mailbox, and nobody can lock an account out
    // of resets by asking for it from elsewhere.
    mail_allowed(&state, &req)?;
    let ip = peer(&state, &req);
    let l = login.clone();
    let account = state.db(move |s| s.account_by_login(&l)).await?;
    if state
        .limits
        .reset_account
        .check(&(bucket_of(&login, account.as_ref()), ip))
        .is_err()
    {
        return Err(WebError::Throttled);
    }
    if let Some(a) = account.filter(|a| a.user.enabled) {
        let user = a.user.id;
        // The link remembers the address that asked: a new request voids the earlier links
        // asked from the same address only, never a still-valid one someone else holds.
        let from = ip.map(|i| i.to_string()).unwrap_or_default();
        let token = state
            .db(move |s| s.create_token(TokenKind::PasswordReset, user, &from, Some(RESET_TTL)))
            .await?;
        let link = format!("{}/reset/{token}", state.site_url);
        mail(
            &state,
            &a.user.email,
            "Reset your hpfriends password",
            "mail/reset",
            &json!({"name": a.user.name, "link": link}),
        );
    }
    // The same answer whether or not the account exists.
    Ok(see_other("/login", Some("reset-sent")))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    password: String,
    password2: String,
}

async fn reset_page(
    state: State,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    Page::new(
        "reset",
        "Choose a new password",
        "",
        json!({"token": token.into_inner(), "errors": {}}),
    )
    .render(&state, &req, None)
}

async fn reset(
    state: State,
    req: HttpRequest,
    token: web::Path<String>,
    form: CsrfForm<ResetForm>,
) -> Result<HttpResponse, WebError> {
    let token = token.into_inner();
    let f = form.0;
    let mut errors = FieldErrors::default();
    if let Some(w) = password::weakness(&f.password, "") {
        errors.add("password", w);
    }
    if f.password != f.password2 {
        errors.add("password2", "the two passwords differ");
    }
    if !errors.is_empty() {
        return Page::new(
            "reset",
            "Choose a new password",
            "",
            json!({"token": token, "errors": errors.to_json()}),
        )
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .render(&state, &req, None);
    }
    let dead =
        || WebError::NotFound("this reset link has expired or was used already; ask for a new one".into());
    // A dead link is refused before anything is spent on it: hashing costs 19 MiB and a
    // core, and a bogus token must not buy either.
    let t = token.clone();
    if state
        .db(move |s| s.peek_token(TokenKind::PasswordReset, &t))
        .await?
        .is_none()
    {
        return Err(dead());
    }
    // Then hash: the token is used up only when the new password can be stored.
    let hash = password::hash(f.password).await?;
    let Some((user, _)) = state
        .db(move |s| s.consume_token(TokenKind::PasswordReset, &token))
        .await?
    else {
        return Err(dead());
    };
    state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            s.set_password(user, &hash, None)?;
            // The link reached the mailbox: that confirms the address too.
            let email = s.account(user)?.map(|a| a.user.email).unwrap_or_default();
            s.confirm_email(user, &email)
        })
        .await?;
    // Every session and API token ended with the old password; a login follows (a mailed
    // link never makes a session by itself).
    Ok(see_other("/login", Some("password-reset")))
}

// ----- account settings -----

async fn account_ctx(state: &WebState, v: &Viewer) -> Result<serde_json::Value, WebError> {
    let id = v.user.id;
    let (account, tokens, (affiliation, about)) = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            Ok((s.account(id)?, s.api_tokens(id)?, s.profile(id)?))
        })
        .await?;
    let token_list: Vec<serde_json::Value> = tokens
        .iter()
        .map(|(id, created, used)| {
            json!({
                "id": id,
                "created": time(*created),
                "last_used": used.map_or_else(|| "never".to_owned(), time),
            })
        })
        .collect();
    let verified = account.is_some_and(|a| a.email_verified);
    Ok(json!({
        "name": v.user.name,
        "email": v.user.email,
        "verified": verified,
        "since": time(v.user.created_at),
        "api_tokens": tokens.len(),
        "token_list": token_list,
        "profile": {"affiliation": affiliation, "about": about},
        "errors": {},
        "new_token": null,
    }))
}

async fn account_page(state: State, req: HttpRequest, v: Viewer) -> Result<HttpResponse, WebError> {
    let ctx = account_ctx(&state, &v).await?;
    Page::new("account", "Account", "account", ctx).render(&state, &req, Some(&v))
}

async fn refuse_account(
    state: &WebState,
    req: &HttpRequest,
    v: &Viewer,
    errors: &FieldErrors,
) -> Result<HttpResponse, WebError> {
    let mut ctx = account_ctx(state, v).await?;
    ctx["errors"] = errors.to_json();
    Page::new("account", "Account", "account", ctx)
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .render(state, req, Some(v))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    current: String,
    password: String,
    password2: String,
}

/// Whether `given` is the viewer's current password (argon2, off the request thread).
async fn is_current_password(state: &WebState, v: &Viewer, given: String) -> Result<bool, WebError> {
    let id = v.user.id;
    let stored = state
        .db(move |s| s.account(id))
        .await?
        .and_then(|a| a.password_hash);
    password::verify(given, stored).await
}

async fn change_password(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let id = v.user.id;
    let mut errors = FieldErrors::default();
    if !is_current_password(&state, &v, f.current).await? {
        errors.add("current", "this is not your current password");
    }
    if let Some(w) = password::weakness(&f.password, &v.user.name) {
        errors.add("password", w);
    }
    if f.password != f.password2 {
        errors.add("password2", "the two passwords differ");
    }
    if !errors.is_empty() {
        return refuse_account(&state, &req, &v, &errors).await;
    }
    let hash = password::hash(f.password).await?;
    let keep = v.session.clone();
    state.db(move |s| s.set_password(id, &hash, Some(&keep))).await?;
    Ok(see_other("/account", Some("password")))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProfileForm {
    affiliation: String,
    about: String,
}

/// Sets what other users see of the viewer on their profile page.
async fn change_profile(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<ProfileForm>,
) -> Result<HttpResponse, WebError> {
    use crate::config::limits::{MAX_ABOUT, MAX_AFFILIATION};
    let f = form.0;
    let (affiliation, about) = (f.affiliation.trim().to_owned(), f.about.trim().to_owned());
    let mut errors = FieldErrors::default();
    if let Some(p) = crate::domain::text::problem(&affiliation, MAX_AFFILIATION, false) {
        errors.add("affiliation", p);
    }
    if let Some(p) = crate::domain::text::problem(&about, MAX_ABOUT, true) {
        errors.add("about", p);
    }
    if !errors.is_empty() {
        let mut ctx = account_ctx(&state, &v).await?;
        ctx["errors"] = errors.to_json();
        ctx["profile"] = json!({"affiliation": f.affiliation, "about": f.about});
        return Page::new("account", "Account", "account", ctx)
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .render(&state, &req, Some(&v));
    }
    let (id, actor) = (v.user.id, v.user.name.clone());
    state
        .db(move |s| s.set_profile(id, &affiliation, &about, &actor))
        .await?;
    Ok(see_other("/account", Some("profile")))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmailForm {
    email: String,
    current: String,
}

async fn change_email(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<EmailForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let email = f.email.trim().to_owned();
    let mut errors = FieldErrors::default();
    if !is_current_password(&state, &v, f.current).await? {
        errors.add("email_current", "this is not your current password");
    }
    if !valid_email(&email) {
        errors.add("email", "enter an email address like name@example.org");
    }
    if !errors.is_empty() {
        return refuse_account(&state, &req, &v, &errors).await;
    }
    mail_allowed(&state, &req)?;
    // The address changes only when the link mailed to it is opened; the old address is
    // told, so that a change the owner did not make does not go unnoticed.
    send_verification(&state, &v.user.name, v.user.id, &email).await?;
    mail(
        &state,
        &v.user.email,
        "Your hpfriends email address is being changed",
        "mail/email_change",
        &json!({"name": v.user.name, "new": email, "link": format!("{}/account", state.site_url)}),
    );
    Ok(see_other("/account", Some("email")))
}

async fn create_api_token(
    state: State,
    req: HttpRequest,
    v: Viewer,
    _form: CsrfForm<serde::de::IgnoredAny>,
) -> Result<HttpResponse, WebError> {
    let id = v.user.id;
    let token = state
        .db(move |s| s.create_token(TokenKind::Api, id, "", None))
        .await?;
    let mut ctx = account_ctx(&state, &v).await?;
    ctx["new_token"] = json!(token);
    Page::new("account", "Account", "account", ctx).render(&state, &req, Some(&v))
}

async fn revoke_api_token(
    state: State,
    v: Viewer,
    path: web::Path<i64>,
    _form: CsrfForm<serde::de::IgnoredAny>,
) -> Result<HttpResponse, WebError> {
    let (user, id) = (v.user.id, path.into_inner());
    if !state.db(move |s| s.revoke_api_token(user, id)).await? {
        return Err(WebError::NotFound(format!("no API token {id}")));
    }
    Ok(see_other("/account", Some("token-revoked")))
}

async fn revoke_api_tokens(
    state: State,
    v: Viewer,
    _form: CsrfForm<serde::de::IgnoredAny>,
) -> Result<HttpResponse, WebError> {
    let id = v.user.id;
    state.db(move |s| s.revoke_api_tokens(id)).await?;
    Ok(see_other("/account", Some("token-revoked")))
}
