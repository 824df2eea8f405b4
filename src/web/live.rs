//! The live channel view: a page that tails, as server-sent events, exactly the messages
//! the viewer's keys would receive on a channel.
//!
//! The stream is a broker session of the viewer's own key (the first of their keys that may
//! subscribe to the channel), registered with the Broker like a TCP client: the same ACL,
//! the same route, the same bounded outbox and slow-consumer policy, and a revocation cuts
//! it at once (an `error` event, then the end of the stream). Whose data reaches the view
//! is sent as an `access` event at start and whenever a share changes it (accepted,
//! revoked, a user blocked), so the page says so as it happens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use arc_swap::ArcSwapOption;
use base64::Engine;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::error::WebError;
use super::render::Page;
use super::routes::authkeys::receivable;
use super::session::Viewer;
use super::{State, WebState};
use crate::broker::handle::{SessionHandle, SessionId};
use crate::broker::messages::{Disconnected, Register, Subscribe};
use crate::broker::outbox::Outbox;
use crate::domain::acl::{KeyAcl, Sources};
use crate::wire::Ident;
use crate::wire::{Channel, Frame};

/// Bytes queued for one live view before the slow-consumer policy applies.
pub use crate::config::limits::LIVE_OUTBOX;
/// A comment line this often keeps proxies from closing a quiet stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often the stream looks whether its key's sources on the channel changed (a share
/// revoked or accepted), to tell the page as it happens.
pub const ACCESS_CHECK: Duration = Duration::from_millis(500);
/// Payload bytes shown per message; the rest is cut (and said so).
pub use crate::config::limits::LIVE_SHOWN as SHOWN;
/// Live views one user may have open at once (each is a broker session).
pub use crate::config::limits::MAX_LIVE_VIEWS;

/// `?channel=NAME`, once or several times (a query, not a path segment: channel names may
/// hold `/`): the channels one view follows, in order, without repeats.
#[derive(Debug, Default)]
pub struct ChannelQuery {
    /// The channels.
    pub channels: Vec<String>,
}

impl ChannelQuery {
    fn parse(req: &HttpRequest) -> Result<ChannelQuery, WebError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| WebError::BadRequest(format!("query: {e}")))?;
        let mut channels: Vec<String> = Vec::new();
        for (k, v) in pairs.into_inner() {
            if k == "channel" && !v.is_empty() && !channels.contains(&v) {
                channels.push(v);
            }
        }
        if channels.len() > MAX_LIVE_CHANNELS {
            return Err(WebError::BadRequest(format!(
                "one live view follows at most {MAX_LIVE_CHANNELS} channels"
            )));
        }
        Ok(ChannelQuery { channels })
    }
}

/// Channels one live view follows at most (one stream, one slot of [`MAX_LIVE_VIEWS`]).
pub use crate::config::limits::MAX_LIVE_CHANNELS;

/// `/live` without a channel lists the channels the viewer can tail (one, or several
/// together); with some, the view.
pub async fn index(state: State, req: HttpRequest, v: Viewer) -> Result<HttpResponse, WebError> {
    let channels = receivable(&state, &v);
    let asked = ChannelQuery::parse(&req)?.channels;
    if let Some(c) = asked.iter().find(|c| !channels.contains(c)) {
        return Err(not_receivable(c));
    }
    Page::new(
        "live",
        "Live view",
        "live",
        json!({
            "channel": if asked.is_empty() { Value::Null } else { json!(asked.join(", ")) },
            "followed": asked,
            "several": asked.len() > 1,
            "channels": channels,
        }),
    )
    .render(&state, &req, Some(&v))
}

fn not_receivable(channel: &str) -> WebError {
    WebError::NotFound(format!(
        "none of your authkeys may subscribe to {channel:?}: add it to a key's subscribe list on the Authkeys page"
    ))
}

/// `text`, valid JSON, laid out two spaces an level with its keys in the order they came
/// (a parsed map would sort them).
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on its line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The message as the page shows it: text, pretty JSON, or hex and base64 for binary.
pub fn message_json(ident: &str, channel: &str, payload: &[u8]) -> Value {
    let shown = &payload[..payload.len().min(SHOWN)];
    let mut m = json!({
        "ident": ident,
        "channel": channel,
        "size": payload.len(),
        "truncated": payload.len() > SHOWN,
    });
    match std::str::from_utf8(shown) {
        Ok(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() || v.is_array() => {
                m["encoding"] = json!("json");
                // Indented as sent: the publisher's key order (cowrie's `eventid` first) kept.
                m["text"] = json!(indent_json(text));
            }
            _ => {
                m["encoding"] = json!("text");
                m["text"] = json!(text);
            }
        },
        Err(_) => {
            m["encoding"] = json!("binary");
            m["hex"] = json!(hex::encode(&shown[..shown.len().min(4096)]));
            m["base64"] = json!(base64::engine::general_purpose::STANDARD.encode(shown));
        }
    }
    m
}

/// Whose messages the session's key receives on `channel` now (`None`: it may not any more).
fn sources_now(handle: &SessionHandle, channel: &Channel) -> Option<Sources> {
    handle.acl.load().as_ref()?.sources(channel.as_str()).cloned()
}

/// The `access` event: whose data the view shows on `channel` from now on, by user name.
async fn access_event(state: &WebState, channel: &Channel, sources: Option<Sources>) -> Bytes {
    let data = match sources {
        None => json!({"sources": [], "everyone": false}),
        Some(Sources::Everyone) => json!({"sources": [], "everyone": true}),
        Some(Sources::Users(ids)) => {
            let names = state
                .db(move |s| -> Result<Vec<String>, crate::store::StoreError> {
                    let mut names = Vec::new();
                    for &id in ids.iter() {
                        if let Some(u) = s.user_by_id(id)? {
                            names.push(u.name);
                        }
                    }
                    Ok(names)
                })
                .await
                .unwrap_or_default();
            json!({"sources": names, "everyone": false})
        }
    };
    let mut data = data;
    data["channel"] = json!(channel.as_str());
    event("access", &data)
}

fn event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Ends the broker session when the stream is dropped (the browser went away), and gives
/// the user's live-view slot back.
struct Guard {
    state: State,
    user: crate::domain::UserId,
    /// The view's broker sessions (one per key it uses) and their outboxes.
    sessions: Vec<(SessionId, Arc<Outbox>)>,
}

impl Guard {
    /// Takes one of the user's live-view slots, or says why not.
    fn take(state: &State, user: crate::domain::UserId) -> Result<Guard, WebError> {
        let mut open = state.live_views.lock();
        let n = open.entry(user).or_insert(0);
        if *n >= MAX_LIVE_VIEWS {
            return Err(WebError::Forbidden(format!(
                "you have {MAX_LIVE_VIEWS} live views open already: close one first"
            )));
        }
        *n += 1;
        Ok(Guard {
            state: state.clone(),
            user,
            sessions: Vec::new(),
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (id, outbox) in &self.sessions {
            outbox.close();
            self.state.shared.broker.do_send(Disconnected(*id));
        }
        let mut open = self.state.live_views.lock();
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// A key a view uses, with the channels it carries for the view.
type KeyChannels = (Arc<KeyAcl>, Vec<Channel>);

/// The viewer's keys that will carry `channels`: for each channel the first key (by ident)
/// that may receive it, so that a view of channels one key receives is one broker session.
fn keys_for(state: &WebState, v: &Viewer, channels: &[Channel]) -> Result<Vec<KeyChannels>, WebError> {
    let table = state.shared.keys.load();
    let mut mine: Vec<Arc<KeyAcl>> = table.values().filter(|a| a.owner == v.user.id).cloned().collect();
    mine.sort_by(|a, b| a.ident.cmp(&b.ident));
    let mut out: Vec<KeyChannels> = Vec::new();
    for c in channels {
        let acl = mine
            .iter()
            .find(|a| a.sources(c.as_str()).is_some())
            .ok_or_else(|| not_receivable(c.as_str()))?;
        match out.iter_mut().find(|(a, _)| a.ident == acl.ident) {
            Some((_, list)) => list.push(c.clone()),
            None => out.push((Arc::clone(acl), vec![c.clone()])),
        }
    }
    Ok(out)
}

/// Registers a broker session of key `acl` subscribed to `channels`; it is in `guard` (and
/// ended with it) as soon as it exists.
async fn open(
    state: &WebState,
    guard: &mut Guard,
    acl: Arc<KeyAcl>,
    channels: &[Channel],
    peer: SocketAddr,
) -> Result<Arc<SessionHandle>, WebError> {
    let id = SessionId(state.shared.next_session.fetch_add(1, Relaxed));
    let handle = Arc::new(SessionHandle {
        id,
        peer,
        ident: acl.ident.clone(),
        outbox: Arc::new(Outbox::new(LIVE_OUTBOX)),
        acl: ArcSwapOption::from(Some(acl)),
        kill: CancellationToken::new(),
        usage: Default::default(),
    });
    let broker = &state.shared.broker;
    broker
        .send(Register(Arc::clone(&handle)))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    guard.sessions.push((id, Arc::clone(&handle.outbox)));
    for channel in channels {
        let subscribed = broker
            .send(Subscribe {
                session: id,
                channel: channel.clone(),
            })
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?;
        if let Err(refusal) = subscribed {
            return Err(WebError::Forbidden(refusal.to_string()));
        }
    }
    Ok(handle)
}

/// Waits for frames on any of `outboxes`, moving them into the batch of the same index;
/// which outbox gave them, or `None` once one of them is closed (the view then ends, as a
/// connection does).
async fn next_any(outboxes: &[Arc<Outbox>], batches: &mut [Vec<Bytes>]) -> Option<usize> {
    let waits: Vec<_> = outboxes
        .iter()
        .zip(batches.iter_mut())
        .map(|(o, b)| Box::pin(o.next_batch(b)))
        .collect();
    // Each wait is cancel-safe: one that did not finish took nothing.
    let (got, i, _) = futures_util::future::select_all(waits).await;
    got.map(|_| i)
}

/// The owners' names of the keys whose messages a view received, looked up once per key:
/// a message reached the viewer, so its publisher's name is theirs to know.
#[derive(Default)]
struct Owners(HashMap<Ident, Option<String>>);

/// Keys one view remembers the owner of; past it the memory starts again.
const OWNERS_REMEMBERED: usize = 10_000;

impl Owners {
    async fn name(&mut self, state: &WebState, ident: &Ident) -> Option<String> {
        if let Some(n) = self.0.get(ident) {
            return n.clone();
        }
        let owner = state.shared.keys.load().get(ident).map(|acl| acl.owner);
        let name = match owner {
            Some(id) => state
                .db(move |s| s.user_by_id(id))
                .await
                .ok()
                .flatten()
                .map(|u| u.name),
            None => None,
        };
        if self.0.len() >= OWNERS_REMEMBERED {
            self.0.clear();
        }
        self.0.insert(ident.clone(), name.clone());
        name
    }
}

/// Whose messages reach the view on each of its channels now (`None`: not any more).
fn access_now(views: &[(Arc<SessionHandle>, Vec<Channel>)]) -> Vec<(Channel, Option<Sources>)> {
    views
        .iter()
        .flat_map(|(h, list)| list.iter().map(|c| (c.clone(), sources_now(h, c))))
        .collect()
}

/// The `access` events for the channels whose sources changed from `before` (all of them
/// when `before` is empty).
async fn access_events(
    state: &WebState,
    before: &[(Channel, Option<Sources>)],
    now: &[(Channel, Option<Sources>)],
) -> Bytes {
    let mut out = Vec::new();
    for (c, sources) in now {
        let seen = before.iter().find(|(b, _)| b == c).map(|(_, s)| s);
        // Losing a channel altogether is the broker's to say (an error, then the end).
        if seen == Some(sources) || (!before.is_empty() && sources.is_none()) {
            continue;
        }
        out.extend_from_slice(&access_event(state, c, sources.clone()).await);
    }
    Bytes::from(out)
}

/// The event stream of `/live/events?channel=…[&channel=…]`: every followed channel's
/// messages over one stream (one connection of the browser's, one live-view slot).
pub async fn events(state: State, req: HttpRequest, v: Viewer) -> Result<HttpResponse, WebError> {
    let asked = ChannelQuery::parse(&req)?.channels;
    let Some(first) = asked.first() else {
        return Err(WebError::BadRequest(
            "channel: name at least one channel to follow".into(),
        ));
    };
    let mut channels = Vec::new();
    for name in &asked {
        channels.push(Channel::new(name).map_err(|_| not_receivable(name))?);
    }
    // The browser's address (through a trusted proxy, the client it names), for the
    // broker's logs and per-address counts.
    let peer = match (state.client(&req), req.peer_addr()) {
        (Some(ip), Some(p)) => SocketAddr::new(ip, p.port()),
        (Some(ip), None) => SocketAddr::new(ip, 0),
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let mut guard = Guard::take(&state, v.user.id)?;
    let mut views: Vec<(Arc<SessionHandle>, Vec<Channel>)> = Vec::new();
    for (acl, list) in keys_for(&state, &v, &channels)? {
        let handle = open(&state, &mut guard, acl, &list, peer).await?;
        views.push((handle, list));
    }
    let outboxes: Vec<Arc<Outbox>> = views.iter().map(|(h, _)| Arc::clone(&h.outbox)).collect();
    let shutdown = state.shared.shutdown.clone();
    let keys: Vec<&str> = views.iter().map(|(h, _)| h.ident.as_str()).collect();
    let hello = event(
        "ready",
        &json!({"channel": first, "channels": asked, "ident": keys.join(", ")}),
    );
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.reset();
    let mut watch = tokio::time::interval(ACCESS_CHECK);
    watch.reset();
    let seen = access_now(&views);
    let first = Bytes::from([hello, access_events(&state, &[], &seen).await].concat());
    let batches: Vec<Vec<Bytes>> = vec![Vec::new(); outboxes.len()];
    let views = Arc::new(views);
    let stream = futures_util::stream::unfold(
        (
            guard,
            Some(first),
            (tick, watch),
            batches,
            seen,
            Owners::default(),
        ),
        move |(guard, first, (mut tick, mut watch), mut batches, mut seen, mut owners)| {
            let shutdown = shutdown.clone();
            let (outboxes, views, state) = (outboxes.clone(), Arc::clone(&views), state.clone());
            async move {
                if let Some(b) = first {
                    return Some((
                        Ok::<_, actix_web::Error>(b),
                        (guard, None, (tick, watch), batches, seen, owners),
                    ));
                }
                // Nothing goes out empty: a quiet check of the access waits for the next event.
                let out = loop {
                    let out = tokio::select! {
                        got = next_any(&outboxes, &mut batches) => {
                            let i = got?;
                            let mut out = Vec::new();
                            for raw in batches[i].drain(..) {
                                match Frame::parse(&raw) {
                                    Ok(Frame::Publish { ident, channel, payload }) => {
                                        let mut m = message_json(ident.as_str(), channel.as_str(), &payload);
                                        m["owner"] = json!(owners.name(&state, &ident).await);
                                        out.extend_from_slice(&event("message", &m));
                                    }
                                    Ok(Frame::Error(message)) => {
                                        out.extend_from_slice(&event("error", &json!({"message": message})));
                                    }
                                    _ => {}
                                }
                            }
                            Bytes::from(out)
                        }
                        _ = watch.tick() => {
                            let now = access_now(&views);
                            let out = access_events(&state, &seen, &now).await;
                            seen = now;
                            out
                        }
                        _ = tick.tick() => Bytes::from_static(b": keepalive\n\n"),
                        () = shutdown.cancelled() => return None,
                    };
                    if !out.is_empty() {
                        break out;
                    }
                };
                Some((Ok(out), (guard, None, (tick, watch), batches, seen, owners)))
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_shown_by_kind() {
        let j = message_json("k", "c", br#"{"a":1}"#);
        assert_eq!(j["encoding"], "json");
        assert!(j["text"].as_str().unwrap().contains("\"a\": 1"));
        assert_eq!(message_json("k", "c", b"hello")["encoding"], "text");
        let b = message_json("k", "c", &[0xff, 0x00, 0x10]);
        assert_eq!(b["encoding"], "binary");
        assert_eq!(b["hex"], "ff0010");
        assert_eq!(b["base64"], "/wAQ");
        let big = vec![b'a'; SHOWN + 1];
        assert_eq!(message_json("k", "c", &big)["truncated"], true);
    }

    #[test]
    fn json_is_laid_out_in_the_order_it_came() {
        let sent = r#"{"eventid":"cowrie.login.failed","src_ip":"203.0.113.7","a":{"x":[1, 2],"e":{},"q":"b\"r{,}"},"z":[]}"#;
        let text = message_json("k", "c", sent.as_bytes())["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.starts_with("{\n  \"eventid\": \"cowrie.login.failed\",\n  \"src_ip\""),
            "{text}"
        );
        assert!(text.contains("\"e\": {}") && text.contains("\"z\": []"), "{text}");
        assert!(
            text.contains(r#""q": "b\"r{,}""#),
            "strings are left alone: {text}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(sent).unwrap());
    }
}
