//! The site's pages and forms, one module per menu entry, plus the helpers they share:
//! field errors, channel lists, redirects.

pub mod accounts;
pub mod authkeys;
pub mod channels;
pub mod confirm;
pub mod groups;
pub mod metrics;
pub mod pages;
pub mod profiles;
pub mod receiving;
pub mod shares;

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::Value;

use super::WebState;
use super::render::ASSETS;
use crate::social::propagation::Propagation;
use crate::wire::Channel;

/// Entries on a page of a list that can grow (logs, keys, shares, groups, offers).
pub use crate::config::limits::PER_PAGE;

/// `?page=N`: which page of a list (from 0).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    /// The page, from 0.
    pub page: usize,
}

/// `ctx` with what `templates/pager.hbs` reads for page `at` (from 0) of a list, `more`
/// telling whether another page follows.
pub fn paged(mut ctx: serde_json::Value, at: usize, more: bool) -> serde_json::Value {
    if let Some(m) = ctx.as_object_mut() {
        m.insert("page".into(), (at + 1).into());
        m.insert("has_prev".into(), (at > 0).into());
        m.insert("prev".into(), at.saturating_sub(1).into());
        m.insert(
            "next".into(),
            if more {
                (at + 1).into()
            } else {
                serde_json::Value::Null
            },
        );
    }
    ctx
}

/// Every page route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/{name}", web::get().to(asset))
        // Browsers ask for it whatever the page links: the same picture, not a 404.
        .route(
            "/favicon.ico",
            web::get().to(|| asset(web::Path::from("favicon.svg".to_owned()))),
        )
        .route("/healthz", web::get().to(healthz));
    accounts::configure(cfg);
    shares::configure(cfg);
    authkeys::configure(cfg);
    channels::configure(cfg);
    groups::configure(cfg);
    metrics::configure(cfg);
    pages::configure(cfg);
    profiles::configure(cfg);
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, kind, body)) => HttpResponse::Ok()
            .content_type(*kind)
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound().body("no such file"),
    }
}

async fn healthz(state: super::State) -> HttpResponse {
    match state.db(|s| s.acl_version()).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unavailable"}))
        }
    }
}

/// A 303 to `to` (after a successful POST), with an optional confirmation code.
pub fn see_other(to: &str, ok: Option<&str>) -> HttpResponse {
    // The code goes into the query, before any `#fragment`.
    let (path, fragment) = to.split_once('#').map_or((to, ""), |(p, f)| (p, f));
    let mut loc = match ok {
        Some(code) if path.contains('?') => format!("{path}&ok={code}"),
        Some(code) => format!("{path}?ok={code}"),
        None => path.to_owned(),
    };
    if !fragment.is_empty() {
        loc.push('#');
        loc.push_str(fragment);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, loc))
        .finish()
}

/// [`see_other`] after a change: when some node had not applied it, the page it leads to
/// names them (carried in a signed cookie, never in the link).
pub fn see_other_live(state: &WebState, to: &str, ok: Option<&str>, live: &Propagation) -> HttpResponse {
    if live.is_live() {
        return see_other(to, ok);
    }
    let (path, fragment) = to.split_once('#').map_or((to, ""), |(p, f)| (p, f));
    let marked = if path.contains('?') {
        format!("{path}&behind=1")
    } else {
        format!("{path}?behind=1")
    };
    let to = if fragment.is_empty() {
        marked
    } else {
        format!("{marked}#{fragment}")
    };
    let mut res = see_other(&to, ok);
    let value = super::render::encode_behind(live);
    let c = super::session::signed(
        state,
        super::session::cookie(state, super::session::BEHIND_COOKIE, value, Some(300)),
    );
    if let Err(e) = res.add_cookie(&c) {
        tracing::debug!("cannot set the behind cookie: {e}");
    }
    res
}

/// Errors of a refused form, by field name (`form` for the form as a whole).
#[derive(Debug, Default)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    /// Notes a problem with `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    /// Whether nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For templates: `errors.FIELD`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).unwrap_or(Value::Null)
    }
}

/// Parses a list of channel names separated by commas, spaces or new lines.
pub fn channel_list(text: &str) -> Result<Vec<Channel>, String> {
    let mut out: Vec<Channel> = Vec::new();
    for name in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let ch = Channel::typed(name).map_err(|e| format!("not a valid channel name: {e}"))?;
        if !out.contains(&ch) {
            out.push(ch);
        }
    }
    if out.len() > 100 {
        return Err("at most 100 channels per list".into());
    }
    Ok(out)
}

/// Channel names joined for a text field.
pub fn channels_text(list: &[Channel]) -> String {
    list.iter().map(Channel::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_codes_go_before_the_fragment() {
        let at = |r: HttpResponse| {
            r.headers()
                .get(header::LOCATION)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            at(see_other("/shares#requests", Some("x"))),
            "/shares?ok=x#requests"
        );
        assert_eq!(
            at(see_other("/channel?name=a#p", Some("x"))),
            "/channel?name=a&ok=x#p"
        );
        assert_eq!(at(see_other("/a", None)), "/a");
    }

    #[test]
    fn channel_lists() {
        let l = channel_list("a.b, c\n d,,a.b").unwrap();
        assert_eq!(channels_text(&l), "a.b, c, d");
        assert!(channel_list("").unwrap().is_empty());
    }
}
