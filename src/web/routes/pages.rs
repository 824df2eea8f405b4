//! The home page and dashboard, *Logs*, *Search* and *Graph*.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::log::KeyLogEntry;
use crate::social::ops::{self, SocialError};
use crate::store::StoreError;
use crate::web::error::WebError;
use crate::web::graph_svg;
use crate::web::render::{Page, time, url_component};
use crate::web::routes::authkeys::{my_keys, receivable};
use crate::web::session::{MaybeViewer, Viewer};
use crate::web::{State, WebState};

/// Page routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/logs", web::get().to(logs))
        .route("/search", web::get().to(search))
        .route("/graph", web::get().to(graph))
        .route("/graph.svg", web::get().to(graph_image))
        .route("/live", web::get().to(crate::web::live::index))
        .route("/live/events", web::get().to(crate::web::live::events));
}

use crate::web::routes::{PER_PAGE, PageQuery};

fn log_json(e: &KeyLogEntry) -> Value {
    json!({
        "at": time(e.at),
        "at_rfc3339": crate::web::render::rfc3339(e.at),
        "ident": e.ident,
        "event": e.event,
        "channel": e.channel,
        "peer": e.peer,
        "detail": e.detail,
        "bad": e.event != "suppressed",
    })
}

async fn home(state: State, req: HttpRequest, v: MaybeViewer) -> Result<HttpResponse, WebError> {
    let Some(v) = v.0 else {
        return Page::new(
            "home",
            "Share honeypot feeds with the people you trust",
            "",
            json!({}),
        )
        .render(&state, &req, None);
    };
    let me = v.user.clone();
    // Counted in SQL: a user with thousands of shares loads none of them here.
    let (counts, groups, log) = state
        .db(move |s| -> Result<_, SocialError> {
            let counts = s.share_counts(me.id)?;
            let groups = ops::my_groups(s, &me)?;
            let log = s.key_log_of(me.id, 5)?;
            Ok((counts, groups, log))
        })
        .await?;
    let keys = my_keys(&state, &v).await?;
    let invitations: Vec<&str> = groups
        .iter()
        .filter(|g| {
            g.place_of(&v.user.name)
                .is_some_and(|(_, st)| st == crate::domain::model::MemberState::Invited)
        })
        .map(|g| g.name.as_str())
        .collect();
    let connected = keys.iter().filter(|k| !k.connected.is_empty()).count();
    // Feed health over all the viewer's keys: one line each way, and every warning.
    let all: Vec<crate::domain::listing::KeyTraffic> =
        keys.iter().flat_map(|k| k.traffic.iter().copied()).collect();
    let health = crate::web::health::key_json("your keys", false, &all, crate::store::now());
    let warnings: Vec<String> = keys.iter().flat_map(|k| k.warnings()).collect();
    Page::new(
        "dashboard",
        "Dashboard",
        "dashboard",
        json!({
            "name": v.user.name,
            "keys": keys.len(),
            "connected": connected,
            "health": health,
            "warnings": warnings,
            "shares_out": counts.live_out,
            "shares_in": counts.accepted_in,
            "pending_in": counts.pending_in,
            "groups": groups.len(),
            "invitations": invitations,
            "waiting": v.waiting,
            "log": log.iter().map(log_json).collect::<Vec<_>>(),
            "channels": receivable(&state, &v),
        }),
    )
    .render(&state, &req, Some(&v))
}

async fn logs(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, WebError> {
    let (id, at) = (v.user.id, q.page);
    let (log, more, comments) = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            let (log, more) = s.key_log_page(id, None, at, PER_PAGE)?;
            // Keys as their owner knows them: the comment beside the ident.
            let comments: std::collections::HashMap<String, String> = s
                .authkeys_of(id)?
                .into_iter()
                .map(|k| (k.ident.as_str().to_owned(), k.comment))
                .collect();
            Ok((log, more, comments))
        })
        .await?;
    let entries: Vec<Value> = log
        .iter()
        .map(|e| {
            let mut j = log_json(e);
            j["comment"] = json!(comments.get(&e.ident).filter(|c| !c.is_empty()));
            j
        })
        .collect();
    Page::new(
        "logs",
        "Logs",
        "logs",
        crate::web::routes::paged(
            json!({
                "entries": entries,
                "per_page": PER_PAGE,
            }),
            at,
            more,
        ),
    )
    .render(&state, &req, Some(&v))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchQuery {
    q: String,
    page: usize,
}

/// Everything matching `q` that the viewer may see, page `page` of each kind (50 a
/// page): users, groups, channels in use, and lines of the viewer's own key log; with
/// `next_page` while any kind has more.
pub async fn search_results(state: &WebState, v: &Viewer, q: &str, page: usize) -> Result<Value, WebError> {
    let (query, id) = (q.to_owned(), v.user.id);
    let (users, groups, channels, log) = state
        .db(move |s| -> Result<_, StoreError> {
            Ok((
                s.search_users_page(&query, page, PER_PAGE)?,
                s.search_groups_page(&query, page, PER_PAGE)?,
                s.search_channels_page(&query, page, PER_PAGE)?,
                s.key_log_page(id, Some(&query), page, PER_PAGE)?,
            ))
        })
        .await?;
    let more = users.1 || groups.1 || channels.1 || log.1;
    let (users, groups, channels, log) = (users.0, groups.0, channels.0, log.0);
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    Ok(json!({
        "users": users,
        "groups": groups,
        "channels": channels,
        "log": log.iter().map(log_json).collect::<Vec<_>>(),
        "next_page": more.then_some(page + 1),
    }))
}

async fn search(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, WebError> {
    let SearchQuery { q, page } = q.into_inner();
    let q = q.trim().to_owned();
    if q.len() > 200 {
        return Err(WebError::BadRequest(
            "the search text is too long (at most 200 characters)".into(),
        ));
    }
    let results = if q.is_empty() {
        Value::Null
    } else {
        search_results(&state, &v, &q, page).await?
    };
    let total = ["users", "groups", "channels", "log"]
        .iter()
        .map(|k| results[k].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    Page::new(
        "search",
        "Search",
        "search",
        json!({
            "q_param": serde_urlencoded::to_string([("q", &q)]).unwrap_or_default(),
            "q": q,
            "results": results,
            "total": total,
            "searched": !q.is_empty(),
            "page": page + 1,
            "has_prev": page > 0,
            "prev": page.saturating_sub(1),
        }),
    )
    .render(&state, &req, Some(&v))
}

/// `?channel=NAME&with=NAME` on the graph page: only the shares on that channel, or with that
/// user or group (a name; empty: all).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct GraphQuery {
    channel: String,
    with: String,
}

impl GraphQuery {
    fn keeps(&self, s: &crate::domain::listing::ShareInfo) -> bool {
        let (channel, with) = (self.channel.trim(), self.with.trim());
        (channel.is_empty() || s.share.channel.as_str() == channel)
            && (with.is_empty()
                || s.from_name.eq_ignore_ascii_case(with)
                || s.to_name
                    .split_once(' ')
                    .is_some_and(|(_, n)| n.eq_ignore_ascii_case(with)))
    }
}

async fn graph_data(state: &WebState, v: &Viewer, q: &GraphQuery) -> Result<graph_svg::Picture, WebError> {
    let me = v.user.clone();
    let (mut out, mut inc) = state.db(move |s| ops::my_shares(s, &me)).await?;
    out.retain(|s| q.keeps(s));
    inc.retain(|s| q.keeps(s));
    Ok(graph_svg::Picture::of(&v.user.name, &out, &inc))
}

async fn graph(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<GraphQuery>,
) -> Result<HttpResponse, WebError> {
    let picture = graph_data(&state, &v, &q).await?;
    // Past a size a picture is a tangle: a summary by channel, each a link to its own.
    let drawn = picture.arrow_count() <= crate::config::limits::GRAPH_DRAW_MAX;
    let svg = if drawn { picture.svg() } else { String::new() };
    let filter = match (q.channel.trim(), q.with.trim()) {
        ("", "") => String::new(),
        (c, "") => format!("channel={}", url_component(c)),
        ("", w) => format!("with={}", url_component(w)),
        (c, w) => format!("channel={}&with={}", url_component(c), url_component(w)),
    };
    Page::new(
        "graph",
        "Graph",
        "graph",
        json!({
            "svg": svg,
            "drawn": drawn,
            "arrows": picture.arrow_count(),
            "max": crate::config::limits::GRAPH_DRAW_MAX,
            "channels": picture.by_channel(),
            "edges": picture.edge_list(),
            "channel": q.channel.trim(),
            "with_name": q.with.trim(),
            "filtered_by": filter,
        }),
    )
    .render(&state, &req, Some(&v))
}

async fn graph_image(state: State, v: Viewer, q: web::Query<GraphQuery>) -> Result<HttpResponse, WebError> {
    let picture = graph_data(&state, &v, &q).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "no-store"))
        .body(picture.svg()))
}
