//! *Channels*: the catalogue of every channel in use, who publishes on it and how much
//! (server-drawn charts), and requests for access from the requester to a publisher, which
//! the publisher answers on the Shares page or from the mail it gets.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FieldErrors, see_other, see_other_live};
use crate::config::limits::CATALOGUE_NAMES;
use crate::domain::listing::{AccessRequest, CatalogueEntry, RequestState, Traffic, User};
use crate::domain::model::ShareState;
use crate::domain::{RequestId, UserId};
use crate::social::access;
use crate::social::ops::SocialError;
use crate::store::now;
use crate::web::charts::{self, SPANS, Span};
use crate::web::error::WebError;
use crate::web::render::{Page, bytes, date, time, url_component};
use crate::web::routes::accounts::{mail, sender_may_mail};
use crate::web::session::{CsrfForm, Viewer};
use crate::web::{State, WebState};
use crate::wire::Channel;

/// Channel routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::get().to(catalogue))
        .route("/channel", web::get().to(channel_page))
        .route("/channel/request", web::post().to(request))
        .route("/requests/{id}/{action}", web::post().to(answer));
}

/// `?q=TEXT&page=N`: channels whose name contains TEXT, page N.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CatalogueQuery {
    q: String,
    page: usize,
}

/// The link to a channel's page.
pub fn channel_href(c: &Channel) -> String {
    format!("/channel?name={}", url_component(c.as_str()))
}

/// One chart's bars and a title per bar: `what` of each slot.
fn chart(
    slots: &[Traffic],
    span: Span,
    label: &str,
    what: fn(&Traffic) -> i64,
    unit: fn(i64) -> String,
) -> String {
    let values: Vec<i64> = slots.iter().map(what).collect();
    let titles: Vec<String> = slots
        .iter()
        .map(|t| format!("{} from {}", unit(what(t)), time(t.bucket)))
        .collect();
    let size = if span.name == "day" && label.ends_with("(list)") {
        (120, 24)
    } else {
        (240, 48)
    };
    charts::bars(&values, &titles, size, label.trim_end_matches(" (list)"))
}

fn messages(n: i64) -> String {
    format!("{n} messages")
}

/// Page `page` of the catalogue as `viewer` sees it (channels containing `text`), each with
/// its traffic over the last day in hourly slots ending at `now`; and whether more follow.
/// Who publishes where comes from the live graph; the database is asked only for the names
/// on the page and the page's traffic.
pub async fn catalogue_day(
    state: &WebState,
    viewer: UserId,
    text: String,
    page: usize,
    now: i64,
) -> Result<(Vec<(CatalogueEntry, Vec<Traffic>)>, bool), WebError> {
    let day = SPANS[1];
    let (found, more) = state
        .read_live(move |g| g.catalogue(viewer, &text, page, super::PER_PAGE, CATALOGUE_NAMES))
        .await?;
    let (found, names, traffic) = state
        .db(move |s| -> Result<_, SocialError> {
            let ids: Vec<UserId> = found.iter().flat_map(|e| e.first.iter().copied()).collect();
            let names = s.user_names(&ids)?;
            let channels: Vec<Channel> = found.iter().map(|e| e.channel.clone()).collect();
            let traffic = s.channel_traffic(&channels, now - day.secs)?;
            Ok((found, names, traffic))
        })
        .await?;
    let rows = found
        .into_iter()
        .map(|e| {
            let series = traffic.get(&e.channel).map(Vec::as_slice).unwrap_or(&[]);
            let slots = charts::slots(series, day, now);
            let publishers = e.first.iter().filter_map(|u| names.get(u).cloned()).collect();
            let entry = CatalogueEntry {
                channel: e.channel,
                count: e.count,
                publishers,
            };
            (entry, slots)
        })
        .collect();
    Ok((rows, more))
}

/// A channel's publishers as one viewer sees them, a page at a time.
pub struct ChannelPublishers {
    /// Page `page`'s: id, name, and the state of a live share of theirs to the viewer on it.
    pub rows: Vec<(UserId, String, Option<ShareState>)>,
    /// How many in all.
    pub total: usize,
}

/// One channel as `viewer` sees it: page `page` of its publishers (the viewer first, then
/// the oldest accounts; from the live graph) and its traffic over the last week.
pub async fn channel_view(
    state: &WebState,
    viewer: UserId,
    channel: &Channel,
    page: usize,
    now: i64,
) -> Result<(ChannelPublishers, Vec<Traffic>), WebError> {
    let c = channel.clone();
    let (rows, total) = state
        .read_live(move |g| g.publishers_page(viewer, &c, page, super::PER_PAGE))
        .await?;
    let c = channel.clone();
    let week = SPANS[2].secs;
    let (rows, names, mut traffic) = state
        .db(move |s| -> Result<_, SocialError> {
            let ids: Vec<UserId> = rows.iter().map(|(u, _)| *u).collect();
            let names = s.user_names(&ids)?;
            let traffic = s.channel_traffic(std::slice::from_ref(&c), now - week)?;
            Ok((rows, names, traffic))
        })
        .await?;
    let rows = rows
        .into_iter()
        .filter_map(|(u, st)| names.get(&u).map(|n| (u, n.clone(), st)))
        .collect();
    Ok((
        ChannelPublishers { rows, total },
        traffic.remove(channel).unwrap_or_default(),
    ))
}

async fn catalogue(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<CatalogueQuery>,
) -> Result<HttpResponse, WebError> {
    let (text, at) = (q.q.trim().to_owned(), q.page);
    let day = SPANS[1];
    let t = now();
    let (entries, more) = catalogue_day(&state, v.user.id, text, at, t).await?;
    let rows: Vec<Value> = entries
        .iter()
        .map(|(e, slots)| {
            let total: i64 = slots.iter().map(|s| s.messages).sum();
            let volume: i64 = slots.iter().map(|s| s.bytes).sum();
            let me = &v.user.name;
            json!({
                "channel": e.channel.as_str(),
                "publishers": e.publishers.iter().map(|p| json!({"name": p, "you": p == me})).collect::<Vec<_>>(),
                "count": e.count,
                "more": e.count.saturating_sub(e.publishers.len()),
                "chart": chart(slots, day, &format!("messages on {} per hour, last day (list)", e.channel), |t| t.messages, messages),
                "messages": total,
                "volume": bytes(volume),
            })
        })
        .collect();
    let base = format!("/channels?q={}&", url_component(q.q.trim()));
    Page::new(
        "channels",
        "Channels",
        "channels",
        super::paged(
            json!({ "channels": rows, "q": q.q.trim(), "base": base }),
            at,
            more,
        ),
    )
    .render(&state, &req, Some(&v))
}

/// `?name=CHANNEL&page=N` (N: the page of its publishers, from 0).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChannelQuery {
    name: String,
    page: usize,
}

fn request_json(r: &AccessRequest) -> Value {
    json!({
        "id": r.id.0,
        "from": r.from_name,
        "to": r.to_name,
        "channel": r.channel.as_str(),
        "note": r.note,
        "state": r.state.as_str(),
        "open": r.state == RequestState::Open,
        "asked": date(r.created_at),
        "asked_at": time(r.created_at),
        "answered_at": r.answered_at.map(time),
    })
}

/// Page `page` of the requests made to (`incoming`) or by `v`, for the Shares and
/// Shared-with-me pages; and whether more follow.
pub async fn requests_json(
    state: &WebState,
    v: &Viewer,
    incoming: bool,
    page: usize,
) -> Result<(Vec<Value>, bool), WebError> {
    let me = v.user.id;
    let (list, more) = state
        .db(move |s| s.access_requests_page(me, incoming, page, super::PER_PAGE))
        .await?;
    Ok((list.iter().map(request_json).collect(), more))
}

async fn channel_ctx(
    state: &WebState,
    v: &Viewer,
    channel: Channel,
    page: usize,
    errors: &FieldErrors,
) -> Result<Value, WebError> {
    let t = now();
    let (publishers, series) = channel_view(state, v.user.id, &channel, page, t).await?;
    let me = v.user.id;
    let mine = state
        .db({
            let c = channel.clone();
            move |s| s.access_requests_for(me, &c)
        })
        .await?;
    let spans: Vec<Value> = SPANS
        .iter()
        .map(|span| {
            let slots = charts::slots(&series, *span, t);
            let per = match span.name {
                "hour" => "5 minutes",
                "day" => "hour",
                _ => "6 hours",
            };
            json!({
                "name": span.name,
                "messages": slots.iter().map(|s| s.messages).sum::<i64>(),
                "volume": bytes(slots.iter().map(|s| s.bytes).sum::<i64>()),
                "deliveries": slots.iter().map(|s| s.deliveries).sum::<i64>(),
                "messages_chart": chart(&slots, *span, &format!("messages on {channel} per {per}, last {}", span.name), |t| t.messages, messages),
                "bytes_chart": chart(&slots, *span, &format!("bytes on {channel} per {per}, last {}", span.name), |t| t.bytes, bytes),
            })
        })
        .collect();
    let more = (page + 1).saturating_mul(super::PER_PAGE) < publishers.total;
    let rows: Vec<Value> = publishers
        .rows
        .iter()
        .map(|(id, name, share)| {
            let open = mine.iter().any(|r| r.to == *id && r.state == RequestState::Open);
            json!({
                "name": name,
                "you": *id == v.user.id,
                "receiving": *share == Some(ShareState::Accepted),
                "offered": *share == Some(ShareState::Offered),
                "requested": open,
                "can_request": *id != v.user.id && share.is_none() && !open,
            })
        })
        .collect();
    let base = format!("/channel?name={}&", url_component(channel.as_str()));
    Ok(super::paged(
        json!({
            "channel": channel.as_str(),
            "channel_url": url_component(channel.as_str()),
            "spans": spans,
            "publishers": rows,
            "total": publishers.total,
            "base": base,
            "requests": mine.iter().map(request_json).collect::<Vec<_>>(),
            "errors": errors.to_json(),
        }),
        page,
        more,
    ))
}

fn parse_channel(name: &str) -> Result<Channel, WebError> {
    Channel::new(name.trim()).map_err(|e| WebError::BadRequest(format!("name: {e}")))
}

async fn channel_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<ChannelQuery>,
) -> Result<HttpResponse, WebError> {
    let channel = parse_channel(&q.name)?;
    let title = format!("Channel {channel}");
    let ctx = channel_ctx(&state, &v, channel, q.page, &FieldErrors::default()).await?;
    Page::new("channel", &title, "channels", ctx).render(&state, &req, Some(&v))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestForm {
    channel: String,
    publisher: String,
    note: String,
}

async fn request(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<RequestForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let channel = parse_channel(&f.channel)?;
    let me = v.user.clone();
    let (c, p, note) = (channel.clone(), f.publisher.trim().to_owned(), f.note.clone());
    match state
        .db(move |s| access::request_access(s, &me, &p, &c, &note))
        .await
    {
        Ok((id, publisher)) => {
            mail_request(&state, &v.user, &publisher, &channel, &f.note, id);
            let back = format!("{}#publishers", channel_href(&channel));
            Ok(see_other(&back, Some("access-requested")))
        }
        Err(WebError::NotFound(m) | WebError::BadRequest(m) | WebError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.add("request", m);
            let title = format!("Channel {channel}");
            let ctx = channel_ctx(&state, &v, channel, 0, &errors).await?;
            Page::new("channel", &title, "channels", ctx)
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .render(&state, &req, Some(&v))
        }
        Err(e) => Err(e),
    }
}

/// Mails `publisher` that `from` asks for `channel` (within the sender's hourly bound).
pub(crate) fn mail_request(
    state: &WebState,
    from: &User,
    publisher: &User,
    channel: &Channel,
    note: &str,
    id: RequestId,
) {
    if sender_may_mail(state, from) {
        mail(
            state,
            &publisher.email,
            &format!("{} asks for {channel} on hpfriends", from.name),
            "mail/access_request",
            &json!({
                "name": publisher.name,
                "from": from.name,
                "channel": channel.as_str(),
                "note": note.trim(),
                "link": format!("{}/shares#request-{}", state.site_url, id.0),
            }),
        );
    }
}

/// Mails the requester of `r` that `granter` granted it, with a link to watch it flow.
pub(crate) async fn mail_granted(
    state: &WebState,
    granter: &User,
    r: &AccessRequest,
) -> Result<(), WebError> {
    let from = r.from;
    let Some(to) = state.db(move |s| s.user_by_id(from)).await? else {
        return Ok(());
    };
    let (who, channel) = (to.clone(), r.channel.clone());
    let receiving = state
        .db(move |s| crate::social::receiving::receiving(s, &who, std::slice::from_ref(&channel)))
        .await?;
    let keys: Vec<&str> = receiving
        .iter()
        .flat_map(|r| r.receiving_keys.iter().map(crate::wire::Ident::as_str))
        .collect();
    if sender_may_mail(state, granter) {
        mail(
            state,
            &to.email,
            &format!("{} grants you {} on hpfriends", granter.name, r.channel),
            "mail/access_granted",
            &json!({
                "name": to.name,
                "from": granter.name,
                "channel": r.channel.as_str(),
                "link": format!("{}/live?channel={}", state.site_url, url_component(r.channel.as_str())),
                "keys": keys.join(", "),
                "new_key": format!("{}/authkeys?subscribe={}", state.site_url, url_component(r.channel.as_str())),
            }),
        );
    }
    Ok(())
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize, Default)]
struct NoFields {}

/// Grant, decline (the publisher) or withdraw (the requester) a request for access.
async fn answer(
    state: State,
    v: Viewer,
    path: web::Path<(i64, String)>,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, WebError> {
    let (id, action) = path.into_inner();
    let id = RequestId(id);
    let me = v.user.clone();
    match action.as_str() {
        "grant" => {
            let ((r, _), live) = state.apply(move |s| access::grant_access(s, &me, id)).await?;
            mail_granted(&state, &v.user, &r).await?;
            Ok(see_other_live(
                &state,
                "/shares#requests",
                Some("access-granted"),
                &live,
            ))
        }
        "decline" => {
            state.db(move |s| access::decline_access(s, &me, id)).await?;
            Ok(see_other("/shares#requests", Some("access-declined")))
        }
        "withdraw" => {
            state.db(move |s| access::withdraw_access(s, &me, id)).await?;
            Ok(see_other("/shared-with-me#requests", Some("access-withdrawn")))
        }
        _ => Err(WebError::NotFound(format!("no action {action:?} on requests"))),
    }
}
