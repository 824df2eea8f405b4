//! *Authkeys*: create (ident and secret generated, the secret shown once with a copy
//! button), publish and subscribe lists, rotate, disable, delete; per-key traffic, last use
//! and whether it is connected now.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FieldErrors, channel_list, channels_text, see_other_live};
use crate::broker::messages::LiveSessions;
use crate::social::ops;
use crate::store::StoreError;
use crate::web::error::WebError;
use crate::web::render::{Page, bytes, rfc3339, time, url_component};
use crate::web::session::{CsrfForm, Viewer};
use crate::web::{State, WebState};
use crate::wire::{Ident, Secret};

/// Authkey routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authkeys", web::get().to(page))
        .route("/authkeys", web::post().to(create))
        .route("/authkeys/{ident}/setup", web::get().to(setup_page))
        .route("/authkeys/{ident}/{action}", web::post().to(act));
}

/// Longest comment kept on a key.
use crate::config::limits::MAX_KEY_COMMENT as MAX_COMMENT;

/// The viewer's keys with their traffic and live state, as JSON for pages and the API.
pub async fn my_keys(state: &WebState, v: &Viewer) -> Result<Vec<KeyRow>, WebError> {
    Ok(my_keys_page(state, v, None).await?.0)
}

/// Keys on a page of the Authkeys page and of `GET /api/v1/authkeys`.
pub const KEYS_PER_PAGE: usize = crate::config::limits::PER_PAGE;

/// One key of the viewer's with its traffic and live connections: what the Authkeys page
/// and `GET /api/v1/authkeys` list, each in its own form.
pub struct KeyRow {
    key: crate::domain::listing::AuthkeyInfo,
    usage: crate::domain::listing::KeyUsage,
    /// Peers of the key's sessions open now.
    pub connected: Vec<String>,
    /// Its traffic over the last week, in buckets.
    pub traffic: Vec<crate::domain::listing::KeyTraffic>,
}

impl KeyRow {
    /// For the page: lists as text, sizes and times for reading.
    pub fn page_json(&self) -> Value {
        let (k, u) = (&self.key, &self.usage);
        json!({
            "ident": k.ident.as_str(),
            "enabled": k.enabled,
            "publish": channels_text(&k.publish),
            "subscribe": channels_text(&k.subscribe),
            "publish_list": k.publish.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "subscribe_list": k.subscribe.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "comment": k.comment,
            "created": time(k.created_at),
            "messages_published": u.messages_published,
            "bytes_published": bytes(u.bytes_published),
            "messages_received": u.messages_received,
            "bytes_received": bytes(u.bytes_received),
            "last_seen": u.last_seen_at.map(time),
            "last_peer": u.last_peer,
            "connected": self.connected,
            "health": self.health(),
        })
    }

    /// Whether the key is meant to publish: enabled, with channels to publish on.
    fn publishes(&self) -> bool {
        self.key.enabled && !self.key.publish.is_empty()
    }

    /// Its feed health as the pages show it.
    fn health(&self) -> Value {
        crate::web::health::key_json(
            self.key.ident.as_str(),
            self.publishes(),
            &self.traffic,
            crate::store::now(),
        )
    }

    /// What is wrong with its feed, in words.
    pub fn warnings(&self) -> Vec<String> {
        crate::web::health::warnings(
            self.key.ident.as_str(),
            self.publishes(),
            &self.traffic,
            crate::store::now(),
        )
    }

    /// For the API: lists as arrays, counts as numbers, times as RFC 3339.
    pub fn api_json(&self) -> Value {
        let (k, u) = (&self.key, &self.usage);
        let health = self.health();
        json!({
            "ident": k.ident.as_str(),
            "enabled": k.enabled,
            "publish": k.publish.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "subscribe": k.subscribe.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "comment": k.comment,
            "created_at": rfc3339(k.created_at),
            "messages_published": u.messages_published,
            "bytes_published": u.bytes_published,
            "messages_received": u.messages_received,
            "bytes_received": u.bytes_received,
            "last_seen_at": u.last_seen_at.map(rfc3339),
            "last_peer": u.last_peer,
            "connected": self.connected,
            "health": {
                "published_last_day": health["published_day"],
                "received_last_day": health["received_day"],
                "warnings": health["warnings"],
            },
        })
    }
}

/// One page of the viewer's keys (all of them for `None`), and whether more follow.
pub async fn my_keys_page(
    state: &WebState,
    v: &Viewer,
    page: Option<usize>,
) -> Result<(Vec<KeyRow>, bool), WebError> {
    let id = v.user.id;
    let since = crate::store::now() - crate::web::charts::SPANS[2].secs;
    let (keys, more, mut usage, mut traffic) = state
        .db(move |s| -> Result<_, StoreError> {
            let (keys, more) = match page {
                Some(p) => s.authkeys_page(id, p, KEYS_PER_PAGE)?,
                None => (s.authkeys_of(id)?, false),
            };
            Ok((keys, more, s.key_usage_of(id)?, s.key_traffic_of(id, since)?))
        })
        .await?;
    let idents: Vec<Ident> = keys.iter().map(|k| k.ident.clone()).collect();
    let live = state
        .shared
        .broker
        .send(LiveSessions(idents))
        .await
        .unwrap_or_default();
    let list = keys
        .into_iter()
        .map(|key| {
            let connected = live
                .iter()
                .filter(|(i, _)| *i == key.ident)
                .map(|(_, p)| p.to_string())
                .collect();
            KeyRow {
                usage: usage.remove(key.ident.as_str()).unwrap_or_default(),
                traffic: traffic.remove(key.ident.as_str()).unwrap_or_default(),
                key,
                connected,
            }
        })
        .collect();
    Ok((list, more))
}

async fn render_page(
    state: &WebState,
    req: &HttpRequest,
    v: &Viewer,
    form: Value,
    errors: &FieldErrors,
    status: StatusCode,
    at: usize,
) -> Result<HttpResponse, WebError> {
    let (keys, more) = my_keys_page(state, v, Some(at)).await?;
    Page::new(
        "authkeys",
        "Authkeys",
        "authkeys",
        crate::web::routes::paged(
            json!({
                "keys": keys.iter().map(KeyRow::page_json).collect::<Vec<_>>(),
                "form": form,
                "errors": errors.to_json(),
            }),
            at,
            more,
        ),
    )
    .status(status)
    .render(state, req, Some(v))
}

/// `?page=N`, and `subscribe=CHANNEL` to fill in the new key's subscribe field (the link
/// offered where a share was accepted with no key receiving it).
#[derive(Deserialize, Default)]
#[serde(default)]
struct KeysQuery {
    page: usize,
    subscribe: String,
}

async fn page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<KeysQuery>,
) -> Result<HttpResponse, WebError> {
    let form = if crate::wire::Channel::new(&q.subscribe).is_ok() {
        json!({"subscribe": q.subscribe})
    } else {
        json!({})
    };
    render_page(
        &state,
        &req,
        &v,
        form,
        &FieldErrors::default(),
        StatusCode::OK,
        q.page,
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyForm {
    publish: String,
    subscribe: String,
    comment: String,
    /// `yes` on the confirmation page's form: deleting cannot be undone.
    confirm: String,
    /// The channel `subscribe` adds.
    channel: String,
    /// Where `subscribe` came from (`shared-with-me`, `groups`), to go back there.
    back: String,
}

/// Parses both channel lists and the comment, naming the field at fault.
fn parse_key_form(
    f: &KeyForm,
) -> Result<(Vec<crate::wire::Channel>, Vec<crate::wire::Channel>), FieldErrors> {
    let mut errors = FieldErrors::default();
    let publish = channel_list(&f.publish)
        .map_err(|e| errors.add("publish", e))
        .ok();
    let subscribe = channel_list(&f.subscribe)
        .map_err(|e| errors.add("subscribe", e))
        .ok();
    if let Some(p) = crate::domain::text::problem(&f.comment, MAX_COMMENT, false) {
        errors.add("comment", p);
    }
    match (publish, subscribe) {
        (Some(p), Some(s)) if errors.is_empty() => {
            if p.is_empty() && s.is_empty() {
                errors.add(
                    "publish",
                    "list at least one channel to publish on or subscribe to",
                );
                return Err(errors);
            }
            Ok((p, s))
        }
        _ => Err(errors),
    }
}

async fn create(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<KeyForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let (publish, subscribe) = match parse_key_form(&f) {
        Ok(x) => x,
        Err(errors) => {
            let form = json!({"publish": f.publish, "subscribe": f.subscribe, "comment": f.comment});
            return render_page(
                &state,
                &req,
                &v,
                form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
                0,
            )
            .await;
        }
    };
    let me = v.user.clone();
    let comment = f.comment.trim().to_owned();
    let ((ident, secret), live) = state
        .apply(move |s| ops::create_key(s, &me, None, None, publish, subscribe, comment))
        .await?;
    secret_page(&state, &req, &v, &ident, &secret, true, &live).await
}

/// The one time a secret is shown: with a copy button and ready-to-run client commands.
/// The configurations of [`crate::domain::snippet`] for one key, as the pages list them.
fn snippets(state: &WebState, key: &crate::domain::snippet::KeyFacts<'_>) -> Value {
    use crate::domain::snippet::{Broker, Target, render};
    let config = &state.shared.config;
    let broker = Broker {
        host: config.client_host(),
        port: config.listen.port(),
        tls_port: config.client_tls_port(),
    };
    Value::Array(
        Target::ALL
            .iter()
            .map(|t| {
                json!({
                    "name": match t {
                        Target::Cowrie => "cowrie",
                        Target::Dionaea => "dionaea",
                        Target::Python => "Python",
                        Target::Go => "Go",
                    },
                    "file": t.file(),
                    "text": render(*t, &broker, key),
                })
            })
            .collect(),
    )
}

/// `/authkeys/{ident}/setup`: the ready-made configurations for one of the viewer's keys
/// (its secret left out: it was shown once).
async fn setup_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    ident: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let ident = ident.into_inner();
    let missing = || WebError::NotFound(format!("you have no authkey {ident:?}"));
    let me = v.user.id;
    let key = state
        .db(move |s| s.authkeys_of(me))
        .await?
        .into_iter()
        .find(|k| k.ident.as_str() == ident)
        .ok_or_else(missing)?;
    let facts = crate::domain::snippet::KeyFacts {
        ident: key.ident.as_str(),
        secret: None,
        publish: &key.publish,
        subscribe: &key.subscribe,
    };
    Page::new(
        "setup",
        "Set up an authkey",
        "authkeys",
        json!({"ident": key.ident.as_str(), "snippets": snippets(&state, &facts), "secret_shown": false}),
    )
    .render(&state, &req, Some(&v))
}

async fn secret_page(
    state: &WebState,
    req: &HttpRequest,
    v: &Viewer,
    ident: &Ident,
    secret: &Secret,
    new: bool,
    live: &crate::social::propagation::Propagation,
) -> Result<HttpResponse, WebError> {
    let me = v.user.id;
    let wanted = ident.clone();
    let (publish, subscribe) = state
        .db(move |s| s.authkeys_of(me))
        .await?
        .into_iter()
        .find(|k| k.ident == wanted)
        .map(|k| (k.publish, k.subscribe))
        .unwrap_or_default();
    let facts = crate::domain::snippet::KeyFacts {
        ident: ident.as_str(),
        secret: Some(secret.expose()),
        publish: &publish,
        subscribe: &subscribe,
    };
    Page::new(
        "secret",
        "Authkey secret",
        "authkeys",
        json!({
            "ident": ident.as_str(),
            "secret": secret.expose(),
            "new": new,
            "snippets": snippets(state, &facts),
            "secret_shown": true,
        }),
    )
    .live(state, live)
    .render(state, req, Some(v))
}

async fn act(
    state: State,
    req: HttpRequest,
    v: Viewer,
    path: web::Path<(String, String)>,
    form: CsrfForm<KeyForm>,
) -> Result<HttpResponse, WebError> {
    let (ident, action) = path.into_inner();
    let ident =
        Ident::new(&ident).map_err(|_| WebError::NotFound(format!("you have no authkey {ident:?}")))?;
    let me = v.user.clone();
    let i = ident.clone();
    let (ok, live) = match action.as_str() {
        "channels" => {
            let (publish, subscribe) = match parse_key_form(&form.0) {
                Ok(x) => x,
                Err(mut errors) => {
                    errors.add("key", ident.as_str());
                    return render_page(
                        &state,
                        &req,
                        &v,
                        json!({}),
                        &errors,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        0,
                    )
                    .await;
                }
            };
            let ((), live) = state
                .apply(move |s| ops::set_key_channels(s, &me, &i, &publish, &subscribe))
                .await?;
            ("key-updated", live)
        }
        "rotate" => {
            let (secret, live) = state.apply(move |s| ops::rotate_key(s, &me, &i)).await?;
            return secret_page(&state, &req, &v, &ident, &secret, false, &live).await;
        }
        "disable" => {
            let ((), live) = state
                .apply(move |s| ops::set_key_enabled(s, &me, &i, false))
                .await?;
            ("key-disabled", live)
        }
        "enable" => {
            let ((), live) = state
                .apply(move |s| ops::set_key_enabled(s, &me, &i, true))
                .await?;
            ("key-enabled", live)
        }
        "delete" if form.0.confirm != "yes" => {
            // Asks first, on a page of its own (works without scripts); another user's key
            // is missing here as everywhere.
            let owner = state.db(move |s| s.authkey_owner(&i)).await?;
            if owner != Some(me.id) {
                return Err(WebError::NotFound(format!("you have no authkey {ident}")));
            }
            return Page::new(
                "confirm",
                "Delete authkey?",
                "authkeys",
                json!({
                    "heading": format!("Delete authkey {ident}?"),
                    "text": "Sensors and subscribers using it are disconnected at once and \
                             cannot authenticate again. This cannot be undone; to stop it for \
                             a while, disable it instead.",
                    "action": format!("/authkeys/{}/delete", url_component(ident.as_str())),
                    "button": "Delete authkey",
                    "cancel": "/authkeys",
                }),
            )
            .render(&state, &req, Some(&v));
        }
        "delete" => {
            let ((), live) = state.apply(move |s| ops::delete_key(s, &me, &i)).await?;
            ("key-deleted", live)
        }
        "subscribe" => {
            // The one click offered where a share was accepted with no key receiving it.
            let channel = crate::wire::Channel::typed(form.0.channel.trim())
                .map_err(|e| WebError::BadRequest(format!("channel: {e}")))?;
            let (_, live) = state
                .apply(move |s| crate::social::receiving::subscribe_key(s, &me, &i, &channel))
                .await?;
            let back = match form.0.back.as_str() {
                "shared-with-me" => "/shared-with-me",
                "groups" => "/groups",
                _ => "/authkeys",
            };
            return Ok(see_other_live(&state, back, Some("key-subscribed"), &live));
        }
        _ => return Err(WebError::NotFound(format!("no action {action:?} on authkeys"))),
    };
    Ok(see_other_live(&state, "/authkeys", Some(ok), &live))
}

/// Channels the viewer's keys may receive now (for the live view's list).
pub fn receivable(state: &WebState, v: &Viewer) -> Vec<String> {
    let table = state.shared.keys.load();
    let mut out: HashSet<String> = HashSet::new();
    for acl in table.values().filter(|a| a.owner == v.user.id) {
        out.extend(acl.subscribe.keys().map(|c| c.as_str().to_owned()));
    }
    let mut list: Vec<String> = out.into_iter().collect();
    list.sort();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms_name_the_bad_field() {
        let ok = KeyForm {
            publish: "a, b".into(),
            subscribe: String::new(),
            comment: "sensor".into(),
            ..KeyForm::default()
        };
        assert_eq!(parse_key_form(&ok).unwrap().0.len(), 2);
        let empty = KeyForm::default();
        assert!(parse_key_form(&empty).unwrap_err().0.contains_key("publish"));
        let long = KeyForm {
            publish: "a".into(),
            subscribe: "x".repeat(300),
            comment: "c".repeat(500),
            ..KeyForm::default()
        };
        let e = parse_key_form(&long).unwrap_err();
        assert!(e.0.contains_key("subscribe") && e.0.contains_key("comment"));
    }
}
