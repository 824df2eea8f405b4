//! The JSON API under `/api/v1`: the website's operations for scripts, authenticated by a
//! per-user token (`Authorization: Bearer TOKEN`, made on the Account page). Errors are
//! `{"error": "..."}` with the matching status. README.md has curl examples.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::State;
use super::error::{ApiError, WebError};
use super::render::rfc3339;
use super::routes::channel_list;
use super::routes::shares::ShareOp;
use super::session::{ApiUser, Viewer};
use crate::domain::ShareId;
use crate::domain::listing::ShareFilter;
use crate::domain::model::ShareKind;
use crate::social::ops::{self, GranteeName};
use crate::social::propagation::Propagation;
use crate::social::receiving;
use crate::wire::{Channel, Ident};

type ApiResult = Result<HttpResponse, ApiError>;

/// The answer to a change: `body` with where the change is live (`applied_on`, `behind`,
/// `confirmed`, `waited_ms`), so a client of a cluster knows which nodes still deliver by
/// the old graph (each applies it within `graph_stale_after_secs` or stops delivering
/// between users until it has).
fn changed(
    mut res: actix_web::HttpResponseBuilder,
    body: serde_json::Value,
    live: &Propagation,
) -> HttpResponse {
    let mut body = body;
    if let (serde_json::Value::Object(m), Ok(serde_json::Value::Object(l))) =
        (&mut body, serde_json::to_value(live))
    {
        m.extend(l);
    }
    res.json(body)
}

/// The `/api/v1` scope.
pub fn scope() -> actix_web::Scope {
    web::scope("/api/v1")
        .route("/me", web::get().to(me))
        .route("/authkeys", web::get().to(list_keys))
        .route("/authkeys", web::post().to(create_key))
        .route("/authkeys/{ident}", web::put().to(set_key))
        .route("/authkeys/{ident}", web::delete().to(delete_key))
        .route("/authkeys/{ident}/{action}", web::post().to(key_action))
        .route("/shares", web::get().to(list_shares))
        .route("/shares", web::post().to(offer_share))
        .route("/shares/clear-ended", web::post().to(clear_ended))
        .route("/shares/{id}/{action}", web::post().to(share_action))
        .route("/reach", web::get().to(reach))
        .route("/channels", web::get().to(list_channels))
        .route("/channel", web::get().to(channel))
        .route("/requests", web::get().to(list_requests))
        .route("/requests", web::post().to(make_request))
        .route("/requests/{id}/{action}", web::post().to(request_action))
        .route("/blocks", web::get().to(list_blocks))
        .route("/blocks/{name}", web::put().to(block))
        .route("/blocks/{name}", web::delete().to(unblock))
        .route("/groups", web::get().to(list_groups))
        .route("/groups", web::post().to(create_group))
        .route("/groups/{name}/members", web::get().to(group_members))
        .route("/groups/{name}/{action}", web::post().to(group_action))
        .route("/logs", web::get().to(logs))
        .route("/search", web::get().to(search))
        .route("/openapi.json", web::get().to(openapi))
        .default_service(web::to(|| async {
            HttpResponse::NotFound().json(json!({"error": "no such API endpoint"}))
        }))
}

/// What the API offers, for clients and generators: kept by hand beside [`scope`], and
/// checked against the routes by `tests/web.rs`.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(OPENAPI)
}

/// The API user as a page viewer, for the helpers the pages share.
fn viewer(u: &ApiUser) -> Viewer {
    Viewer {
        user: u.0.clone(),
        session: String::new(),
        waiting: 0,
    }
}

async fn me(u: ApiUser) -> ApiResult {
    Ok(HttpResponse::Ok()
        .json(json!({"name": u.0.name, "email": u.0.email, "created_at": rfc3339(u.0.created_at)})))
}

/// `?page=N` (from 0): 50 keys a page, by ident; `next_page` while more remain.
async fn list_keys(state: State, u: ApiUser, q: web::Query<super::routes::PageQuery>) -> ApiResult {
    let at = q.page;
    let (keys, more) = super::routes::authkeys::my_keys_page(&state, &viewer(&u), Some(at)).await?;
    let keys: Vec<_> = keys
        .iter()
        .map(super::routes::authkeys::KeyRow::api_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "authkeys": keys, "next_page": more.then_some(at + 1) })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct KeyBody {
    publish: Vec<String>,
    subscribe: Vec<String>,
    comment: String,
}

fn channels(names: &[String], field: &str) -> Result<Vec<Channel>, ApiError> {
    channel_list(&names.join(",")).map_err(|e| ApiError(WebError::BadRequest(format!("{field}: {e}"))))
}

fn ident(s: &str) -> Result<Ident, ApiError> {
    Ident::new(s).map_err(|_| ApiError(WebError::NotFound(format!("you have no authkey {s:?}"))))
}

async fn create_key(state: State, u: ApiUser, body: web::Json<KeyBody>) -> ApiResult {
    let b = body.into_inner();
    let (publish, subscribe) = (
        channels(&b.publish, "publish")?,
        channels(&b.subscribe, "subscribe")?,
    );
    if publish.is_empty() && subscribe.is_empty() {
        return Err(ApiError(WebError::BadRequest(
            "list at least one channel in publish or subscribe".into(),
        )));
    }
    if let Some(p) = crate::domain::text::problem(&b.comment, crate::config::limits::MAX_KEY_COMMENT, false) {
        return Err(ApiError(WebError::BadRequest(format!("comment: {p}"))));
    }
    let me = u.0.clone();
    let ((ident, secret), live) = state
        .apply(move |s| ops::create_key(s, &me, None, None, publish, subscribe, b.comment))
        .await?;
    Ok(changed(
        HttpResponse::Created(),
        json!({"ident": ident.as_str(), "secret": secret.expose()}),
        &live,
    ))
}

async fn set_key(state: State, u: ApiUser, path: web::Path<String>, body: web::Json<KeyBody>) -> ApiResult {
    let i = ident(&path)?;
    let b = body.into_inner();
    let (publish, subscribe) = (
        channels(&b.publish, "publish")?,
        channels(&b.subscribe, "subscribe")?,
    );
    let me = u.0.clone();
    let ((), live) = state
        .apply(move |s| ops::set_key_channels(s, &me, &i, &publish, &subscribe))
        .await?;
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

async fn delete_key(state: State, u: ApiUser, path: web::Path<String>) -> ApiResult {
    let i = ident(&path)?;
    let me = u.0.clone();
    let ((), live) = state.apply(move |s| ops::delete_key(s, &me, &i)).await?;
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

/// `POST /authkeys/{ident}/subscribe`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeBody {
    channel: String,
}

async fn key_action(
    state: State,
    u: ApiUser,
    path: web::Path<(String, String)>,
    body: Option<web::Json<SubscribeBody>>,
) -> ApiResult {
    let (id, action) = path.into_inner();
    let i = ident(&id)?;
    let me = u.0.clone();
    let ((), live) = match action.as_str() {
        "subscribe" => {
            let Some(b) = body else {
                return Err(ApiError(WebError::BadRequest(
                    "subscribe needs a body {\"channel\": NAME}".into(),
                )));
            };
            let c = Channel::typed(b.channel.trim())
                .map_err(|e| ApiError(WebError::BadRequest(format!("channel: {e}"))))?;
            let (added, live) = state
                .apply(move |s| receiving::subscribe_key(s, &me, &i, &c))
                .await?;
            return Ok(changed(
                HttpResponse::Ok(),
                json!({"ok": true, "added": added}),
                &live,
            ));
        }
        "rotate" => {
            let (secret, live) = state.apply(move |s| ops::rotate_key(s, &me, &i)).await?;
            return Ok(changed(
                HttpResponse::Ok(),
                json!({"ident": id, "secret": secret.expose()}),
                &live,
            ));
        }
        "disable" => {
            state
                .apply(move |s| ops::set_key_enabled(s, &me, &i, false))
                .await?
        }
        "enable" => {
            state
                .apply(move |s| ops::set_key_enabled(s, &me, &i, true))
                .await?
        }
        _ => {
            return Err(ApiError(WebError::NotFound(format!(
                "no action {action:?} on authkeys"
            ))));
        }
    };
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

fn share_json(s: &crate::domain::listing::ShareInfo) -> serde_json::Value {
    json!({
        "id": s.share.id.0,
        "channel": s.share.channel.as_str(),
        "from": s.from_name,
        "to": s.to_name,
        "type": s.share.kind.as_str(),
        "state": s.share.state.as_str(),
        "onward": s.share.onward,
        "public": s.share.to == crate::domain::model::Grantee::Everyone,
        "taken_up": s.followed,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    })
}

/// `?offers_page=N`: which page of open public offers to include (from 0).
#[derive(Deserialize, Default)]
#[serde(default)]
struct SharesQuery {
    offers_page: usize,
    /// Which page of outgoing shares (50 a page, live first).
    page: usize,
    /// Which page of incoming shares (50 a page, live first).
    incoming_page: usize,
    /// Which outgoing and incoming shares: `all` (default), `active`, `pending`, `ended`.
    state: String,
}

async fn list_shares(state: State, u: ApiUser, q: web::Query<SharesQuery>) -> ApiResult {
    let me = u.0.clone();
    let (at, page, inc_page) = (q.offers_page, q.page, q.incoming_page);
    let filter = ShareFilter::parse(&q.state).ok_or_else(|| {
        ApiError(WebError::BadRequest(
            "state: one of all, active, pending, ended".into(),
        ))
    })?;
    let (out, out_more, inc, inc_more, offers, more) = state
        .db(move |s| -> Result<_, crate::social::ops::SocialError> {
            let (out, out_more) = ops::my_outgoing(s, &me, filter, page)?;
            let (inc, inc_more) = ops::my_incoming(s, &me, filter, inc_page)?;
            let (offers, more) = ops::public_offers(s, &me, at)?;
            Ok((out, out_more, inc, inc_more, offers, more))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "outgoing": out.iter().map(share_json).collect::<Vec<_>>(),
        "outgoing_next_page": out_more.then_some(page + 1),
        "incoming": inc.iter().map(share_json).collect::<Vec<_>>(),
        "incoming_next_page": inc_more.then_some(inc_page + 1),
        "offers": offers.iter().map(share_json).collect::<Vec<_>>(),
        "offers_next_page": more.then_some(at + 1),
    })))
}

/// `{"list": "outgoing" | "incoming"}`: which of the caller's lists to clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    list: String,
}

/// Clears the caller's ended shares (declined, revoked, left) from one list; answers how many.
async fn clear_ended(state: State, u: ApiUser, body: web::Json<ClearBody>) -> ApiResult {
    let outgoing = match body.list.as_str() {
        "outgoing" => true,
        "incoming" => false,
        _ => {
            return Err(ApiError(WebError::BadRequest(
                "list: outgoing or incoming".into(),
            )));
        }
    };
    let me = u.0.clone();
    let n = state.db(move |s| ops::clear_ended(s, &me, outgoing)).await?;
    Ok(HttpResponse::Ok().json(json!({ "cleared": n })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ShareBody {
    channel: String,
    to_user: Option<String>,
    to_group: Option<String>,
    to_everyone: bool,
    redistribute: bool,
    onward: bool,
}

async fn offer_share(state: State, u: ApiUser, body: web::Json<ShareBody>) -> ApiResult {
    let b = body.into_inner();
    let channel = Channel::typed(b.channel.trim())
        .map_err(|e| ApiError(WebError::BadRequest(format!("channel: {e}"))))?;
    let to = match (b.to_user, b.to_group, b.to_everyone) {
        (Some(u), None, false) => GranteeName::User(u),
        (None, Some(g), false) => GranteeName::Group(g),
        (None, None, true) => GranteeName::Everyone,
        _ => {
            return Err(ApiError(WebError::BadRequest(
                "give exactly one of to_user, to_group or to_everyone: true".into(),
            )));
        }
    };
    let kind = if b.redistribute {
        ShareKind::Redistribute
    } else {
        ShareKind::Own
    };
    let me = u.0.clone();
    let (c, t, onward) = (channel.clone(), to.clone(), b.onward);
    let (id, live) = state
        .apply(move |s| ops::offer_share(s, &me, &c, &t, kind, onward))
        .await?;
    // Told exactly as the Shares page tells them.
    super::routes::shares::mail_offer(&state, &u.0, id, &channel, &to, kind).await;
    let made = state.db(move |s| s.share(id)).await?;
    let share_state = made.map(|s| s.state.as_str()).unwrap_or_default();
    Ok(changed(
        HttpResponse::Created(),
        json!({"id": id.0, "state": share_state}),
        &live,
    ))
}

async fn share_action(state: State, u: ApiUser, path: web::Path<(i64, String)>) -> ApiResult {
    let (id, action) = path.into_inner();
    let op = match action.as_str() {
        "revoke" => ShareOp::Revoke,
        "accept" => ShareOp::Answer(true),
        "decline" => ShareOp::Answer(false),
        "leave" => ShareOp::Leave,
        "follow" => ShareOp::Answer(true),
        "unfollow" => ShareOp::Leave,
        _ => {
            return Err(ApiError(WebError::NotFound(format!(
                "no action {action:?} on shares"
            ))));
        }
    };
    let me = u.0.clone();
    let ((), live) = state.apply(move |s| op.run(s, &me, ShareId(id))).await?;
    if !matches!(op, ShareOp::Answer(true)) {
        return Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live));
    }
    // What an accepted share brings, and whether any key of the user's takes it.
    let me = u.0.clone();
    let r = state
        .db(move |s| receiving::of_share(s, &me, ShareId(id)))
        .await?;
    let mut answer = r.to_json();
    answer["ok"] = json!(true);
    Ok(changed(HttpResponse::Ok(), answer, &live))
}

/// `?q=TEXT&page=N`: channels whose name contains TEXT (any case), 50 a page by name.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChannelsQuery {
    q: String,
    page: usize,
}

fn traffic_json(
    slots: &[crate::domain::listing::Traffic],
    span: crate::web::charts::Span,
) -> serde_json::Value {
    let width = span.secs / i64::try_from(span.slots).unwrap_or(1);
    json!({
        "span": span.name,
        "slot_seconds": width,
        "messages": slots.iter().map(|t| t.messages).sum::<i64>(),
        "bytes": slots.iter().map(|t| t.bytes).sum::<i64>(),
        "deliveries": slots.iter().map(|t| t.deliveries).sum::<i64>(),
        "slots": slots.iter().map(|t| json!({
            "start": rfc3339(t.bucket),
            "messages": t.messages,
            "bytes": t.bytes,
            "deliveries": t.deliveries,
        })).collect::<Vec<_>>(),
    })
}

async fn list_channels(state: State, u: ApiUser, q: web::Query<ChannelsQuery>) -> ApiResult {
    let (text, page) = (q.q.trim().to_owned(), q.page);
    let now = crate::store::now();
    let (entries, more) = super::routes::channels::catalogue_day(&state, u.0.id, text, page, now).await?;
    let list: Vec<_> = entries
        .iter()
        .map(|(e, slots)| {
            json!({
                "channel": e.channel.as_str(),
                "publishers": e.publishers,
                "publisher_count": e.count,
                "last_day": {
                    "messages": slots.iter().map(|s| s.messages).sum::<i64>(),
                    "bytes": slots.iter().map(|s| s.bytes).sum::<i64>(),
                },
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"channels": list, "next_page": more.then_some(page + 1)})))
}

/// `?name=CHANNEL&page=N`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChannelQuery {
    name: String,
    page: usize,
}

async fn channel(state: State, u: ApiUser, q: web::Query<ChannelQuery>) -> ApiResult {
    let c = Channel::new(q.name.trim()).map_err(|e| ApiError(WebError::BadRequest(format!("name: {e}"))))?;
    let t = crate::store::now();
    let spans = crate::web::charts::SPANS;
    let page = q.page;
    let (publishers, series) = super::routes::channels::channel_view(&state, u.0.id, &c, page, t).await?;
    use crate::domain::model::ShareState;
    let more = (page + 1).saturating_mul(crate::config::limits::PER_PAGE) < publishers.total;
    Ok(HttpResponse::Ok().json(json!({
        "channel": c.as_str(),
        "publisher_count": publishers.total,
        "next_page": more.then_some(page + 1),
        "publishers": publishers.rows.iter().map(|(_, n, st)| json!({
            "name": n,
            "shares_with_you": *st == Some(ShareState::Accepted),
            "offers_you": *st == Some(ShareState::Offered),
        })).collect::<Vec<_>>(),
        "traffic": spans.iter().map(|sp| traffic_json(&crate::web::charts::slots(&series, *sp, t), *sp)).collect::<Vec<_>>(),
    })))
}

fn request_json(r: &crate::domain::listing::AccessRequest) -> serde_json::Value {
    json!({
        "id": r.id.0,
        "from": r.from_name,
        "to": r.to_name,
        "channel": r.channel.as_str(),
        "note": r.note,
        "state": r.state.as_str(),
        "share": r.share.map(|s| s.0),
        "created_at": rfc3339(r.created_at),
        "answered_at": r.answered_at.map(rfc3339),
    })
}

/// `?page=N` (incoming) and `?outgoing_page=N`: 50 requests a page, open ones first.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestsQuery {
    page: usize,
    outgoing_page: usize,
}

async fn list_requests(state: State, u: ApiUser, q: web::Query<RequestsQuery>) -> ApiResult {
    let me = u.0.id;
    let (page, out_page) = (q.page, q.outgoing_page);
    let per = super::routes::PER_PAGE;
    let ((incoming, more_in), (outgoing, more_out)) = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            Ok((
                s.access_requests_page(me, true, page, per)?,
                s.access_requests_page(me, false, out_page, per)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "incoming": incoming.iter().map(request_json).collect::<Vec<_>>(),
        "next_page": more_in.then_some(page + 1),
        "outgoing": outgoing.iter().map(request_json).collect::<Vec<_>>(),
        "outgoing_next_page": more_out.then_some(out_page + 1),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    channel: String,
    publisher: String,
    #[serde(default)]
    note: String,
}

async fn make_request(state: State, u: ApiUser, body: web::Json<RequestBody>) -> ApiResult {
    let b = body.into_inner();
    let c = Channel::typed(b.channel.trim())
        .map_err(|e| ApiError(WebError::BadRequest(format!("channel: {e}"))))?;
    let me = u.0.clone();
    let (ch, note) = (c.clone(), b.note.clone());
    let (id, publisher) = state
        .db(move |s| crate::social::access::request_access(s, &me, b.publisher.trim(), &ch, &note))
        .await?;
    // Told exactly as the channel page tells them.
    super::routes::channels::mail_request(&state, &u.0, &publisher, &c, &b.note, id);
    Ok(HttpResponse::Created().json(json!({"id": id.0})))
}

async fn request_action(state: State, u: ApiUser, path: web::Path<(i64, String)>) -> ApiResult {
    let (id, action) = path.into_inner();
    let id = crate::domain::RequestId(id);
    let me = u.0.clone();
    use crate::social::access;
    match action.as_str() {
        "grant" => {
            let ((r, share), live) = state.apply(move |s| access::grant_access(s, &me, id)).await?;
            super::routes::channels::mail_granted(&state, &u.0, &r).await?;
            return Ok(changed(
                HttpResponse::Ok(),
                json!({"ok": true, "share": share.0}),
                &live,
            ));
        }
        "decline" => {
            state
                .db(move |s| access::decline_access(s, &me, id).map(|_| ()))
                .await?;
        }
        "withdraw" => state.db(move |s| access::withdraw_access(s, &me, id)).await?,
        _ => {
            return Err(ApiError(WebError::NotFound(format!(
                "no action {action:?} on requests"
            ))));
        }
    }
    Ok(HttpResponse::Ok().json(json!({"ok": true})))
}

async fn reach(state: State, u: ApiUser, q: web::Query<super::routes::shares::ReachQuery>) -> ApiResult {
    let reach = state.reach(u.0.id, &q.channel, q.page).await?;
    let channels: Vec<_> = reach
        .into_iter()
        .map(|c| {
            let receivers: Vec<_> = c
                .receivers
                .into_iter()
                .map(|r| json!({"user": r.user, "through": r.through, "share": r.share.0, "via": r.via, "count": r.count}))
                .collect();
            json!({
                "channel": c.channel.as_str(),
                "receivers": receivers,
                "total": c.total,
                "lines": c.lines,
                "page": q.page,
                "more": c.more,
            })
        })
        .collect();
    Ok(
        HttpResponse::Ok()
            .json(json!({ "channels": channels, "per_page": crate::social::reach::REACH_PAGE })),
    )
}

async fn list_blocks(state: State, u: ApiUser) -> ApiResult {
    let me = u.0.clone();
    let blocks = state.db(move |s| ops::my_blocks(s, &me)).await?;
    Ok(HttpResponse::Ok().json(json!({ "blocks": blocks })))
}

async fn block(state: State, u: ApiUser, path: web::Path<String>) -> ApiResult {
    let (me, name) = (u.0.clone(), path.into_inner());
    let ((), live) = state.apply(move |s| ops::block_user(s, &me, &name)).await?;
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

async fn unblock(state: State, u: ApiUser, path: web::Path<String>) -> ApiResult {
    let (me, name) = (u.0.clone(), path.into_inner());
    let ((), live) = state.apply(move |s| ops::unblock_user(s, &me, &name)).await?;
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

/// `?page=N` (from 0): 50 groups a page, by name; `next_page` while more remain.
async fn list_groups(state: State, u: ApiUser, q: web::Query<super::routes::PageQuery>) -> ApiResult {
    let at = q.page;
    let (groups, more) = super::routes::groups::my_groups_page(&state, &viewer(&u), Some(at)).await?;
    Ok(HttpResponse::Ok().json(json!({ "groups": groups, "next_page": more.then_some(at + 1) })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct GroupBody {
    name: String,
    description: String,
    user: String,
}

async fn create_group(state: State, u: ApiUser, body: web::Json<GroupBody>) -> ApiResult {
    let b = body.into_inner();
    let me = u.0.clone();
    let (_, live) = state
        .apply(move |s| ops::create_group(s, &me, b.name.trim(), b.description.trim()))
        .await?;
    Ok(changed(HttpResponse::Created(), json!({"ok": true}), &live))
}

async fn group_action(
    state: State,
    u: ApiUser,
    path: web::Path<(String, String)>,
    body: Option<web::Json<GroupBody>>,
) -> ApiResult {
    let (g, action) = path.into_inner();
    let who = body.map(|b| b.into_inner().user).unwrap_or_default();
    let me = u.0.clone();
    let ((), live) = match action.as_str() {
        "invite" => {
            let (group, invitee) = (g.clone(), who.clone());
            let done = state
                .apply(move |s| ops::invite(s, &me, &group, &invitee))
                .await?;
            super::routes::groups::mail_invitation(&state, &u.0, &g, &who).await;
            done
        }
        "remove" => state.apply(move |s| ops::remove_member(s, &me, &g, &who)).await?,
        "accept" => {
            let group = g.clone();
            let ((), live) = state
                .apply(move |s| ops::accept_invitation(s, &me, &group))
                .await?;
            let me = u.0.clone();
            let channels = state.db(move |s| receiving::of_group(s, &me, &g)).await?;
            let list: Vec<_> = channels.iter().map(receiving::Receiving::to_json).collect();
            return Ok(changed(
                HttpResponse::Ok(),
                json!({"ok": true, "channels": list}),
                &live,
            ));
        }
        "decline" => state.apply(move |s| ops::decline_invitation(s, &me, &g)).await?,
        "leave" => state.apply(move |s| ops::leave_group(s, &me, &g)).await?,
        _ => {
            return Err(ApiError(WebError::NotFound(format!(
                "no action {action:?} on groups"
            ))));
        }
    };
    Ok(changed(HttpResponse::Ok(), json!({"ok": true}), &live))
}

/// `?page=N` (from 0): 50 members a page, by name; `next_page` while more remain.
async fn group_members(
    state: State,
    u: ApiUser,
    name: web::Path<String>,
    q: web::Query<super::routes::PageQuery>,
) -> ApiResult {
    let (me, group, at) = (u.0.clone(), name.into_inner(), q.page);
    let (members, more) = state.db(move |s| ops::group_members(s, &me, &group, at)).await?;
    let list: Vec<_> = members
        .iter()
        .map(|(n, r, s)| json!({"name": n, "role": r.as_str(), "state": s.as_str()}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "members": list, "next_page": more.then_some(at + 1) })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogQuery {
    limit: Option<usize>,
    page: usize,
    q: String,
}

/// `?page=N` (from 0) and `?limit=` entries a page (default 50, at most 1000); the answer
/// names `next_page` while older entries remain.
async fn logs(state: State, u: ApiUser, q: web::Query<LogQuery>) -> ApiResult {
    let per = q.limit.unwrap_or(super::routes::PER_PAGE).clamp(1, 1000);
    let (id, at) = (u.0.id, q.page);
    let (entries, more) = state.db(move |s| s.key_log_page(id, None, at, per)).await?;
    let list: Vec<_> = entries
        .iter()
        .map(|e| json!({"at": rfc3339(e.at), "ident": e.ident, "event": e.event, "channel": e.channel, "peer": e.peer, "detail": e.detail}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": list, "next_page": more.then_some(at + 1) })))
}

async fn search(state: State, u: ApiUser, q: web::Query<LogQuery>) -> ApiResult {
    let LogQuery { q: text, page, .. } = q.into_inner();
    if text.trim().is_empty() || text.len() > 200 {
        return Err(ApiError(WebError::BadRequest(
            "q: give 1-200 characters to search for".into(),
        )));
    }
    let mut results = super::routes::pages::search_results(&state, &viewer(&u), text.trim(), page).await?;
    // Times as everywhere in the API (the page's reading form dropped).
    if let Some(log) = results.get_mut("log").and_then(serde_json::Value::as_array_mut) {
        for e in log.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            if let Some(at) = e.remove("at_rfc3339") {
                e.insert("at".into(), at);
            }
            e.remove("bad");
        }
    }
    Ok(HttpResponse::Ok().json(results))
}
