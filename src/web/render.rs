//! Pages: handlebars templates compiled into the binary, one layout around every page, the
//! CSRF cookie set where a page needs it, and small formatting helpers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use handlebars::Handlebars;
use serde_json::{Value, json};

use super::WebState;
use super::error::WebError;
use super::session::{BEHIND_COOKIE, CSRF_COOKIE, Viewer, csrf_token, read_signed, signed};
use crate::social::propagation::Propagation;

/// Every template, by name (pages, the layout, and mails under `mail/`).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/layout.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("dashboard", include_str!("../../templates/dashboard.hbs")),
    ("signup", include_str!("../../templates/signup.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("message", include_str!("../../templates/message.hbs")),
    ("confirm", include_str!("../../templates/confirm.hbs")),
    ("reset_request", include_str!("../../templates/reset_request.hbs")),
    ("reset", include_str!("../../templates/reset.hbs")),
    ("account", include_str!("../../templates/account.hbs")),
    ("shares", include_str!("../../templates/shares.hbs")),
    (
        "shared_with_me",
        include_str!("../../templates/shared_with_me.hbs"),
    ),
    ("reach", include_str!("../../templates/reach.hbs")),
    ("authkeys", include_str!("../../templates/authkeys.hbs")),
    ("secret", include_str!("../../templates/secret.hbs")),
    ("snippets", include_str!("../../templates/snippets.hbs")),
    ("setup", include_str!("../../templates/setup.hbs")),
    ("api_docs", include_str!("../../templates/api_docs.hbs")),
    ("groups", include_str!("../../templates/groups.hbs")),
    ("group_members", include_str!("../../templates/group_members.hbs")),
    ("pager", include_str!("../../templates/pager.hbs")),
    ("filters", include_str!("../../templates/filters.hbs")),
    ("receiving", include_str!("../../templates/receiving.hbs")),
    (
        "requests_pager",
        include_str!("../../templates/requests_pager.hbs"),
    ),
    ("channels", include_str!("../../templates/channels.hbs")),
    ("channel", include_str!("../../templates/channel.hbs")),
    ("profile", include_str!("../../templates/profile.hbs")),
    ("logs", include_str!("../../templates/logs.hbs")),
    ("search", include_str!("../../templates/search.hbs")),
    ("graph", include_str!("../../templates/graph.hbs")),
    ("live", include_str!("../../templates/live.hbs")),
    ("mail/verify", include_str!("../../templates/mail/verify.hbs")),
    ("mail/reset", include_str!("../../templates/mail/reset.hbs")),
    ("mail/invite", include_str!("../../templates/mail/invite.hbs")),
    ("mail/share", include_str!("../../templates/mail/share.hbs")),
    (
        "mail/access_request",
        include_str!("../../templates/mail/access_request.hbs"),
    ),
    (
        "mail/access_granted",
        include_str!("../../templates/mail/access_granted.hbs"),
    ),
    ("mail/group", include_str!("../../templates/mail/group.hbs")),
    (
        "mail/signup_taken",
        include_str!("../../templates/mail/signup_taken.hbs"),
    ),
    (
        "mail/email_change",
        include_str!("../../templates/mail/email_change.hbs"),
    ),
];

/// Static files, by name: (content type, body).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/live.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../assets/favicon.svg"),
    ),
];

/// Compiles every template once, at start: (pages, HTML-escaped; mails, plain text).
pub fn templates() -> Result<(Handlebars<'static>, Handlebars<'static>), handlebars::TemplateError> {
    let mut pages = Handlebars::new();
    let mut mails = Handlebars::new();
    mails.register_escape_fn(handlebars::no_escape);
    for (name, text) in TEMPLATES {
        let h = if name.starts_with("mail/") {
            &mut mails
        } else {
            &mut pages
        };
        h.register_template_string(name, *text)?;
    }
    pages.register_helper("url", Box::new(url_helper));
    pages.register_helper("plural", Box::new(plural_helper));
    mails.register_helper("url", Box::new(url_helper));
    mails.register_helper("quote", Box::new(quote_helper));
    Ok((pages, mails))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, so a value is exactly one
/// path segment or query value (a channel `a&b` or `x/y` stays itself in a link).
pub fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{{url value}}`: [`url_component`] of a value, for links built in templates.
/// A helper's first parameter as text (nothing for a missing or null one).
fn param_text(h: &handlebars::Helper<'_>) -> String {
    match h.param(0).map(handlebars::PathAndJson::value) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn url_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    out.write(&url_component(&param_text(h)))?;
    Ok(())
}

/// `{{plural n "key"}}` → `1 key`, `2 keys`; `{{plural n "match" "matches"}}` for an
/// irregular plural: a count and its noun, never "key(s)".
fn plural_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let n = h.param(0).and_then(|p| p.value().as_u64()).unwrap_or(0);
    let one = h.param(1).and_then(|p| p.value().as_str()).unwrap_or_default();
    let many = h
        .param(2)
        .and_then(|p| p.value().as_str())
        .map_or_else(|| format!("{one}s"), str::to_owned);
    out.write(&handlebars::html_escape(&format!(
        "{n} {}",
        if n == 1 { one } else { &many }
    )))?;
    Ok(())
}

/// `{{quote text}}` in a mail: someone's own words, set apart as a quote (every line after
/// `> `, control characters dropped), so that a note cannot pass for the site's own text
/// (a fake link, a fake signature) in a mail the site sends.
fn quote_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    out.write(&quote(&param_text(h)))?;
    Ok(())
}

/// `text` as a mail quote: `> ` before each line, control characters (but tabs) left out.
pub fn quote(text: &str) -> String {
    text.lines()
        .map(|l| {
            let clean: String = l.chars().filter(|c| *c == '\t' || !c.is_control()).collect();
            format!("> {clean}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a mail body (plain text, no escaping).
pub fn mail_text(state: &WebState, name: &str, ctx: &Value) -> Result<String, WebError> {
    state
        .mail_templates
        .render(name, ctx)
        .map_err(|e| WebError::Internal(e.to_string()))
}

/// One page: the template's body inside the layout, with the menu, the viewer and a fresh
/// or kept CSRF token.
pub struct Page<'a> {
    /// The template.
    pub template: &'a str,
    /// Window title.
    pub title: &'a str,
    /// Which menu entry is current.
    pub nav: &'a str,
    /// The template's data.
    pub ctx: Value,
    /// 200 unless a form was refused (422) or similar.
    pub status: StatusCode,
    /// Which nodes the change this page answers had not reached (see [`behind_note`]).
    pub note: Option<String>,
}

impl<'a> Page<'a> {
    /// A page answered with 200.
    pub fn new(template: &'a str, title: &'a str, nav: &'a str, ctx: Value) -> Self {
        Self {
            template,
            title,
            nav,
            ctx,
            status: StatusCode::OK,
            note: None,
        }
    }

    /// This page answers a change: it says so when some node had not applied it.
    pub fn live(mut self, state: &WebState, live: &Propagation) -> Self {
        if !live.is_live() {
            self.note = Some(behind_note(state, live));
        }
        self
    }

    /// Answers with another status (422 for a refused form).
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Renders for `viewer`.
    pub fn render(
        self,
        state: &WebState,
        req: &HttpRequest,
        viewer: Option<&Viewer>,
    ) -> Result<HttpResponse, WebError> {
        let (csrf, pre_session) = csrf_token(state, req)?;
        let mut ctx = self.ctx;
        if let Value::Object(m) = &mut ctx {
            m.insert("csrf".into(), json!(csrf));
            m.insert("me".into(), json!(viewer.map(|v| v.user.name.clone())));
        }
        let body = state
            .templates
            .render(self.template, &ctx)
            .map_err(|e| WebError::Internal(format!("template {}: {e}", self.template)))?;
        let ok = req
            .query_string()
            .split('&')
            .find_map(|kv| kv.strip_prefix("ok="))
            .and_then(flash);
        // A redirect after a change that some node had not applied names them (signed).
        let note = self.note.or_else(|| {
            req.query_string()
                .split('&')
                .any(|kv| kv == "behind=1")
                .then(|| read_signed(state, req, BEHIND_COOKIE))
                .flatten()
                .and_then(|v| decode_behind(&v))
                .filter(|live| !live.is_live())
                .map(|live| behind_note(state, &live))
        });
        let waiting = viewer.map_or(0, |v| v.waiting);
        let nav: Vec<Value> = MENU
            .iter()
            .map(|(key, href, label)| {
                // Requests for access are answered on the Shares page: counted there.
                let badge = (*key == "shares" && waiting > 0).then_some(waiting);
                let href = if badge.is_some() { "/shares#requests" } else { href };
                json!({"href": href, "label": label, "current": *key == self.nav, "badge": badge})
            })
            .collect();
        let page = state
            .templates
            .render(
                "layout",
                &json!({
                    "title": self.title,
                    "body": body,
                    "me": viewer.map(|v| v.user.name.clone()),
                    "nav": nav,
                    "csrf": csrf,
                    "flash": ok,
                    "note": note,
                }),
            )
            .map_err(|e| WebError::Internal(format!("layout: {e}")))?;
        let mut res = HttpResponse::build(self.status);
        res.content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"));
        if let Some(pre) = pre_session {
            res.cookie(signed(
                state,
                super::session::cookie(state, CSRF_COOKIE, pre, None),
            ));
        }
        Ok(res.body(page))
    }
}

/// The menu, as hpfriends had it: (key, link, label).
pub const MENU: &[(&str, &str, &str)] = &[
    ("dashboard", "/", "Dashboard"),
    ("channels", "/channels", "Channels"),
    ("shares", "/shares", "Shares"),
    ("shared", "/shared-with-me", "Shared with me"),
    ("authkeys", "/authkeys", "Authkeys"),
    ("groups", "/groups", "Groups"),
    ("logs", "/logs", "Logs"),
    ("search", "/search", "Search"),
    ("graph", "/graph", "Graph"),
    ("live", "/live", "Live"),
    ("account", "/account", "Account"),
];

/// What a user is told when a change of theirs had not reached every node when it
/// answered: which nodes, and what those do meanwhile.
pub fn behind_note(state: &WebState, live: &Propagation) -> String {
    let stale = state.graph_stale_after_secs;
    let meanwhile = match stale {
        0 => "each applies it as soon as it reads the change log again".to_owned(),
        s => format!(
            "each applies it as soon as it reads the change log again, and one that cannot \
             read it for {s} s delivers only each user's own data until it has"
        ),
    };
    if !live.confirmed {
        return format!(
            "Saved and live on this node; whether the other nodes have applied it could not be \
             checked (the database did not answer): {meanwhile}."
        );
    }
    let mut parts = Vec::new();
    if !live.behind.is_empty() {
        parts.push(format!(
            "Saved and live on this node, but not yet on {} when this answered: {meanwhile}.",
            live.behind.join(", ")
        ));
    }
    if !live.silent.is_empty() {
        parts.push(format!(
            "Not applied on {}, not heard from for over {} s: down, or cut off from the \
             database{}.",
            live.silent.join(", "),
            crate::store::models::applied::LIVE_WITHIN,
            if stale > 0 {
                " and then delivering only each user's own data"
            } else {
                ""
            }
        ));
    }
    parts.join(" ")
}

/// The signed cookie's value for [`BEHIND_COOKIE`]: where the change was live, as JSON,
/// hex-encoded (a cookie value may not hold commas, quotes or spaces).
pub fn encode_behind(live: &Propagation) -> String {
    hex::encode(serde_json::to_string(live).unwrap_or_default())
}

fn decode_behind(v: &str) -> Option<Propagation> {
    serde_json::from_slice(&hex::decode(v).ok()?).ok()
}

/// The fixed confirmation lines a redirect may ask for (`?ok=CODE`): a code, never text
/// from the URL, so a link cannot put words in the site's mouth.
pub fn flash(code: &str) -> Option<&'static str> {
    Some(match code {
        "share-offered" => "Share offered. The grantee has been sent an invitation.",
        "share-everyone" => "Public offer made. It reaches each user who takes it up.",
        "share-own-group" => "Shared with your group: its members receive it now (you answer for the group).",
        "share-followed" => "Public offer taken up.",
        "share-unfollowed" => "You stopped taking the public offer. Your keys no longer receive it.",
        "user-blocked" => "User blocked. Nothing of theirs reaches you, and their offers are declined.",
        "user-unblocked" => "User unblocked. Their declined offers stay declined.",
        "share-revoked" => "Share revoked. It stopped carrying data at once.",
        "share-accepted" => "Share accepted.",
        "share-declined" => "Share declined.",
        "share-left" => "You left the share. Your keys no longer receive it.",
        "profile" => "Profile saved. Other users see it on your profile page.",
        "access-requested" => {
            "Request sent. The publisher answers on hpfriends; you are mailed when they grant it."
        }
        "access-granted" => "Access granted. Your data on the channel reaches them now.",
        "access-declined" => "Request declined.",
        "access-withdrawn" => "Request withdrawn.",
        "shares-cleared" => "Ended shares cleared from this list. The other side keeps its own record.",
        "key-updated" => "Authkey updated.",
        "key-disabled" => "Authkey disabled. Its connections were closed.",
        "key-enabled" => "Authkey enabled.",
        "key-subscribed" => {
            "The key subscribes to the channel now: a client using it receives the channel once it subscribes."
        }
        "key-deleted" => "Authkey deleted. Its connections were closed.",
        "group-created" => "Group created.",
        "group-invited" => "Invitation sent.",
        "group-joined" => "You joined the group.",
        "group-declined" => "Invitation declined.",
        "group-left" => "You left the group.",
        "group-removed" => "Member removed.",
        "password" => "Password changed. Your other sessions, API tokens and reset links were ended.",
        "password-reset" => {
            "Password changed; every session and API token ended. Log in with the new password."
        }
        "email" => "We sent a confirmation link to the new address.",
        "verified" => "Email address confirmed. Log in to go on.",
        "token-revoked" => "API tokens revoked.",
        "logged-out" => "You are logged out.",
        "reset-sent" => "If that account exists, a reset link is on its way.",
        _ => return None,
    })
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(secs: i64) -> String {
    let (date, clock) = civil(secs);
    format!("{date} {clock} UTC")
}

/// The day of a Unix time (`2026-12-03`), for lists where the hour is noise.
pub fn date(secs: i64) -> String {
    civil(secs).0
}

/// A Unix time as RFC 3339 in UTC (`2026-12-03T21:30:00Z`): how the JSON API gives times.
pub fn rfc3339(secs: i64) -> String {
    let (date, clock) = civil(secs);
    format!("{date}T{clock}Z")
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of a Unix time, UTC.
fn civil(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// A byte count for people.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = u64::try_from(n).unwrap_or(0);
    let mut unit = 0;
    let mut frac = 0;
    while v >= 1024 && unit < UNITS.len() - 1 {
        frac = (v % 1024) * 10 / 1024;
        v /= 1024;
        unit += 1;
    }
    if unit == 0 {
        format!("{v} B")
    } else {
        format!("{v}.{frac} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn times_for_pages_and_for_the_api() {
        assert_eq!(time(1_796_332_072), "2026-12-03 21:07:52 UTC");
        assert_eq!(rfc3339(1_796_332_072), "2026-12-03T21:07:52Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn url_components_are_one_segment_or_value() {
        assert_eq!(url_component("dionaea.capture-1_x~"), "dionaea.capture-1_x~");
        assert_eq!(url_component("a&b/c?d#e+f g%"), "a%26b%2Fc%3Fd%23e%2Bf%20g%25");
        assert_eq!(url_component("é"), "%C3%A9");
    }
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_795_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert!(flash("<script>").is_none());
    }

    /// The nodes a change had not reached travel to the next page in a cookie value: plain
    /// hex, and back exactly; anything else reads as nothing.
    #[test]
    fn where_a_change_was_live_round_trips_through_a_cookie_value() {
        let live = Propagation {
            applied_on: vec!["node1".into()],
            behind: vec!["node2".into()],
            silent: vec!["node 3, \"quoted\"; x".into()],
            confirmed: true,
            waited_ms: 5000,
        };
        let v = encode_behind(&live);
        assert!(v.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
        assert_eq!(decode_behind(&v), Some(live));
        assert_eq!(decode_behind("zz"), None);
        assert_eq!(decode_behind(&hex::encode("[1]")), None);
    }

    #[test]
    fn every_template_compiles_and_mails_are_not_html_escaped() {
        let (pages, mails) = templates().unwrap();
        let ctx = json!({"name": "a&b <c>", "link": "http://x/verify/t"});
        assert!(
            mails
                .render("mail/verify", &ctx)
                .unwrap()
                .contains("Hello a&b <c>,")
        );
        assert!(pages.get_template("mail/verify").is_none());
        let page = pages
            .render("message", &json!({"heading": "<x>", "text": ""}))
            .unwrap();
        assert!(page.contains("&lt;x&gt;"));
    }
}
