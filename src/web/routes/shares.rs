//! *Shares* (what I share, with whom, own or redistribute; offer and revoke) and *Shared
//! with me* (incoming shares, direct or through a group, to accept, decline or leave).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FieldErrors, see_other, see_other_live};
use crate::domain::ShareId;
use crate::domain::listing::{ShareFilter, ShareInfo};
use crate::domain::model::{Grantee, ShareKind, ShareState};
use crate::social::ops::{self, GranteeName, SocialError};
use crate::social::receiving;
use crate::web::error::WebError;
use crate::web::render::Page;
use crate::web::routes::accounts::mail;
use crate::web::session::{CsrfForm, Viewer};
use crate::web::{State, WebState};
use crate::wire::Channel;

/// Share routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/shares", web::get().to(shares_page))
        .route("/shares", web::post().to(offer))
        .route("/shares/clear-ended", web::post().to(clear_ended))
        .route("/shares/{id}/{action}", web::post().to(act))
        .route("/shared-with-me", web::get().to(shared_page))
        .route("/reach", web::get().to(reach_page))
        .route("/blocks", web::post().to(block));
}

/// Whether a share in this state still matters (shown first, actionable).
fn live(state: ShareState) -> bool {
    matches!(state, ShareState::Offered | ShareState::Accepted)
}

fn share_json(s: &ShareInfo) -> Value {
    json!({
        "id": s.share.id.0,
        "channel": s.share.channel.as_str(),
        "from": s.from_name,
        "to": s.to_name,
        "to_user": match s.share.to {
            Grantee::User(_) => s.to_name.strip_prefix("user ").map(str::to_owned),
            _ => None,
        },
        "kind": s.share.kind.as_str(),
        "state": s.share.state.as_str(),
        "live": live(s.share.state),
        "redistribute": s.share.kind == ShareKind::Redistribute,
        "onward": s.share.onward,
        "public": s.share.to == Grantee::Everyone,
        "taken_up": s.followed,
        "offered": crate::web::render::date(s.created_at),
        "changed": crate::web::render::date(s.updated_at),
        "offered_at": crate::web::render::time(s.created_at),
        "changed_at": crate::web::render::time(s.updated_at),
        "answered": s.share.state != ShareState::Offered,
    })
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct OfferForm {
    channel: String,
    to_kind: String,
    to: String,
    kind: String,
    onward: String,
}

/// `?show=all|active|pending|ended&page=N`: which shares a list shows, and which page.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    show: String,
    page: usize,
    /// A user (or with `to_kind=group`, a group) to fill in the offer form with (from a
    /// profile page or a search result).
    to: String,
    /// `group` when `to` names a group.
    to_kind: String,
    /// Which page of the requests for access the viewer was asked.
    requests: usize,
}

impl ListQuery {
    /// The filter asked for; an unknown word is a 400 naming the ones there are.
    fn filter(&self) -> Result<ShareFilter, WebError> {
        ShareFilter::parse(&self.show)
            .ok_or_else(|| WebError::BadRequest(format!("show: one of {}", filter_words().join(", "))))
    }
}

fn filter_words() -> Vec<&'static str> {
    ShareFilter::ALL.iter().map(|f| f.as_str()).collect()
}

/// The filter links above a list: each with its URL (`base` + `show=`), the current one marked.
fn filters_json(base: &str, current: ShareFilter) -> Value {
    ShareFilter::ALL
        .iter()
        .map(|f| {
            json!({
                "word": f.as_str(),
                "href": format!("{base}show={}", f.as_str()),
                "current": *f == current,
            })
        })
        .collect()
}

async fn shares_ctx(
    state: &WebState,
    v: &Viewer,
    form: &OfferForm,
    errors: &FieldErrors,
    (filter, at): (ShareFilter, usize),
    requests_at: usize,
) -> Result<Value, WebError> {
    let me = v.user.clone();
    let (outgoing, more, users, groups, channels, owned) = state
        .db(move |s| -> Result<_, SocialError> {
            let (out, more) = ops::my_outgoing(s, &me, filter, at)?;
            // A share to a group the viewer owns is answered by the viewer, here too.
            let owned = owned_groups(s, &me)?;
            let users = s.search_users("", 500)?;
            // Suggestions for the form, as for users: the first 500, not every group.
            let groups: Vec<String> = s.search_groups("", 500)?.into_iter().map(|(n, _)| n).collect();
            let mut channels: Vec<String> = s
                .authkeys_of(me.id)?
                .into_iter()
                .flat_map(|k| k.publish.into_iter().chain(k.subscribe))
                .map(|c| c.as_str().to_owned())
                .collect();
            channels.sort();
            channels.dedup();
            Ok((out, more, users, groups, channels, owned))
        })
        .await?;
    let shares: Vec<Value> = outgoing
        .iter()
        .map(|s| {
            let mut j = share_json(s);
            let for_my_group = matches!(s.share.to, Grantee::Group(g) if owned.contains(&g));
            j["can_answer"] = json!(for_my_group && s.share.state == ShareState::Offered);
            j
        })
        .collect();
    let users: Vec<String> = users.into_iter().filter(|u| *u != v.user.name).collect();
    let (requests, requests_more) = super::channels::requests_json(state, v, true, requests_at).await?;
    let open_requests = requests.iter().filter(|r| r["open"] == json!(true)).count();
    Ok(crate::web::routes::paged(
        json!({
            "requests": requests,
            "open_requests": open_requests,
            "requests_page": requests_pager("/shares", requests_at, requests_more),
            "shares": shares,
            "users": users,
            "groups": groups,
            "channels": channels,
            "form": {
                "channel": form.channel,
                "to": form.to,
                "to_user": form.to_kind.is_empty() || form.to_kind == "user",
                "to_group": form.to_kind == "group",
                "to_everyone": form.to_kind == "everyone",
                "redistribute": form.kind == "redistribute",
                "onward": !form.onward.is_empty(),
            },
            "errors": errors.to_json(),
            "filters": filters_json("/shares?", filter),
            "show": filter.as_str(),
            "filtered": filter != ShareFilter::All,
            "base": match filter {
                ShareFilter::All => "/shares?".to_owned(),
                f => format!("/shares?show={}&", f.as_str()),
            },
        }),
        at,
        more,
    ))
}

async fn shares_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let list = (q.filter()?, q.page);
    let form = OfferForm {
        to: q.to.trim().to_owned(),
        to_kind: if q.to_kind == "group" {
            "group".into()
        } else {
            String::new()
        },
        ..OfferForm::default()
    };
    let ctx = shares_ctx(&state, &v, &form, &FieldErrors::default(), list, q.requests).await?;
    Page::new("shares", "Shares", "shares", ctx).render(&state, &req, Some(&v))
}

/// Parses the offer form; field errors name what is wrong.
fn parse_offer(f: &OfferForm) -> Result<(Channel, GranteeName, ShareKind), FieldErrors> {
    let mut errors = FieldErrors::default();
    let channel = Channel::typed(f.channel.trim());
    if let Err(e) = &channel {
        errors.add("channel", format!("enter a channel name ({e})"));
    }
    let to = f.to.trim();
    let grantee = match f.to_kind.as_str() {
        "user" | "" if to.is_empty() => {
            errors.add("to", "enter the user to share with");
            None
        }
        "user" | "" => Some(GranteeName::User(to.to_owned())),
        "group" if to.is_empty() => {
            errors.add("to", "enter the group to share with");
            None
        }
        "group" => Some(GranteeName::Group(to.to_owned())),
        "everyone" => Some(GranteeName::Everyone),
        _ => {
            errors.add("to_kind", "choose a user, a group or everyone");
            None
        }
    };
    let kind = match f.kind.as_str() {
        "" | "own" => Some(ShareKind::Own),
        "redistribute" => Some(ShareKind::Redistribute),
        _ => {
            errors.add("kind", "choose own data or redistribute");
            None
        }
    };
    match (channel, grantee, kind) {
        (Ok(c), Some(g), Some(k)) if errors.is_empty() => Ok((c, g, k)),
        _ => Err(errors),
    }
}

/// Mails the grantee (or the grantee group's owner) about a new offer, unless it was
/// declined on the spot (the grantee blocks the sharer: they are not told).
pub(crate) async fn mail_offer(
    state: &WebState,
    from: &crate::domain::listing::User,
    id: ShareId,
    channel: &Channel,
    to: &GranteeName,
    kind: ShareKind,
) {
    let who = to.clone();
    let target = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            if s.share(id)?.is_none_or(|sh| sh.state != ShareState::Offered) {
                return Ok(None);
            }
            Ok(match &who {
                GranteeName::User(n) => s.user_by_name(n)?.map(|u| (u.name, u.email, None)),
                GranteeName::Group(g) => match s.group_by_name(g)? {
                    Some((_, owner)) => s.user_by_id(owner)?.map(|u| (u.name, u.email, Some(g.clone()))),
                    None => None,
                },
                GranteeName::Everyone => None,
            })
        })
        .await;
    let Ok(Some((name, email, group))) = target else {
        return;
    };
    if super::accounts::sender_may_mail(state, from) {
        let from = from.name.as_str();
        mail(
            state,
            &email,
            &format!("{from} shares {channel} with you on hpfriends"),
            "mail/share",
            &json!({
                "name": name,
                "from": from,
                "channel": channel.as_str(),
                "group": group,
                "redistribute": kind == ShareKind::Redistribute,
                "link": format!("{}/shared-with-me", state.site_url),
            }),
        );
    }
}

async fn offer(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<OfferForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let refuse = |errors: FieldErrors| {
        let state = state.clone();
        let (req, v, f) = (req.clone(), v.clone(), f.clone());
        async move {
            let ctx = shares_ctx(&state, &v, &f, &errors, (ShareFilter::All, 0), 0).await?;
            Page::new("shares", "Shares", "shares", ctx)
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .render(&state, &req, Some(&v))
        }
    };
    let (channel, to, kind) = match parse_offer(&f) {
        Ok(x) => x,
        Err(errors) => return refuse(errors).await,
    };
    let me = v.user.clone();
    let (c, t) = (channel.clone(), to.clone());
    let onward = !f.onward.is_empty();
    let (id, live) = match state
        .apply(move |s| ops::offer_share(s, &me, &c, &t, kind, onward))
        .await
    {
        Ok(done) => done,
        Err(e @ (SocialError::NotFound(_) | SocialError::Invalid(_))) => {
            let mut errors = FieldErrors::default();
            errors.add("to", e.to_string());
            return refuse(errors).await;
        }
        Err(e @ SocialError::Conflict(_)) => {
            let mut errors = FieldErrors::default();
            errors.add("channel", e.to_string());
            return refuse(errors).await;
        }
        Err(e) => return Err(e.into()),
    };
    if to == GranteeName::Everyone {
        return Ok(see_other_live(&state, "/shares", Some("share-everyone"), &live));
    }
    if matches!(to, GranteeName::Group(_))
        && state
            .db(move |s| s.share(id))
            .await?
            .is_some_and(|s| s.state == ShareState::Accepted)
    {
        // Their own group: the owner answers for it, so it is accepted as made.
        return Ok(see_other_live(&state, "/shares", Some("share-own-group"), &live));
    }
    mail_offer(&state, &v.user, id, &channel, &to, kind).await;
    Ok(see_other_live(&state, "/shares", Some("share-offered"), &live))
}

/// Where an answer came from: `shares` when a group's owner answered on the Shares page
/// (a share of their own to their group), else the "Shared with me" page.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ActForm {
    back: String,
    /// `yes` on the confirmation page's form (revoke and leave ask first).
    confirm: String,
}

async fn act(
    state: State,
    req: HttpRequest,
    v: Viewer,
    path: web::Path<(i64, String)>,
    form: CsrfForm<ActForm>,
) -> Result<HttpResponse, WebError> {
    let (id, action) = path.into_inner();
    let id = ShareId(id);
    let me = v.user.clone();
    let (op, back, ok): (ShareOp, &str, &str) = match action.as_str() {
        "revoke" => (ShareOp::Revoke, "/shares", "share-revoked"),
        "accept" => (ShareOp::Answer(true), "/shared-with-me", "share-accepted"),
        "decline" => (ShareOp::Answer(false), "/shared-with-me", "share-declined"),
        "leave" => (ShareOp::Leave, "/shared-with-me", "share-left"),
        "follow" => (ShareOp::Answer(true), "/shared-with-me", "share-followed"),
        "unfollow" => (ShareOp::Leave, "/shared-with-me", "share-unfollowed"),
        _ => return Err(WebError::NotFound(format!("no action {action:?} on shares"))),
    };
    if matches!(action.as_str(), "revoke" | "leave") && form.0.confirm != "yes" {
        let cancel = if form.0.back == "shares" { "/shares" } else { back };
        if let Some(page) = super::confirm::share(&state, &req, &v, id, &action, cancel).await? {
            return Ok(page);
        }
    }
    let ((), live) = state.apply(move |s| op.run(s, &me, id)).await?;
    let back = if form.0.back == "shares" {
        "/shares".to_owned()
    } else if matches!(op, ShareOp::Answer(true)) {
        // The page says which of the viewer's keys receive what was just accepted.
        format!("{back}?share={}#receiving", id.0)
    } else {
        back.to_owned()
    };
    Ok(see_other_live(&state, &back, Some(ok), &live))
}

/// The links to the previous and next page of a requests list on `path` (`#requests`):
/// made here of a fixed path and numbers, so the template writes them unescaped.
fn requests_pager(path: &str, at: usize, more: bool) -> Value {
    json!({
        "page": at + 1,
        "prev": (at > 0).then(|| format!("{path}?requests={}#requests", at - 1)),
        "next": more.then(|| format!("{path}?requests={}#requests", at + 1)),
    })
}

/// `list=outgoing` (the Shares page) or `incoming` (Shared with me).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ClearForm {
    list: String,
}

/// Clears the ended shares from one of the viewer's lists, then shows that list again.
async fn clear_ended(state: State, v: Viewer, form: CsrfForm<ClearForm>) -> Result<HttpResponse, WebError> {
    let (outgoing, back) = match form.0.list.as_str() {
        "outgoing" => (true, "/shares"),
        "incoming" => (false, "/shared-with-me"),
        _ => return Err(WebError::BadRequest("list: outgoing or incoming".into())),
    };
    let me = v.user.clone();
    state.db(move |s| ops::clear_ended(s, &me, outgoing)).await?;
    Ok(see_other(back, Some("shares-cleared")))
}

/// What can be done to a share, by its sharer or its grantee.
#[derive(Debug, Clone, Copy)]
pub enum ShareOp {
    /// The sharer withdraws it.
    Revoke,
    /// The grantee accepts (true) or declines (false).
    Answer(bool),
    /// The grantee stops receiving it.
    Leave,
}

impl ShareOp {
    /// Carries out the operation as `actor`.
    pub fn run(
        self,
        s: &crate::store::Store,
        actor: &crate::domain::listing::User,
        id: ShareId,
    ) -> Result<(), SocialError> {
        match self {
            Self::Revoke => ops::revoke_share(s, actor, id),
            Self::Answer(yes) => ops::answer_share(s, actor, id, yes),
            Self::Leave => ops::leave_share(s, actor, id),
        }
    }
}

/// The groups `me` owns: shares offered to them are `me`'s to answer.
fn owned_groups(
    s: &crate::store::Store,
    me: &crate::domain::listing::User,
) -> Result<Vec<crate::domain::GroupId>, crate::store::StoreError> {
    Ok(s.groups_of(me.id)?
        .into_iter()
        .filter(|g| {
            g.place_of(&me.name)
                .is_some_and(|(role, _)| role == crate::domain::model::GroupRole::Owner)
        })
        .map(|g| g.id)
        .collect())
}

/// `?offers=N`: which page of open public offers to list (from 0).
#[derive(Deserialize, Default)]
#[serde(default)]
struct OffersPage {
    offers: usize,
    /// Which page of what is shared with the viewer.
    page: usize,
    /// Which of what is shared with the viewer (`all`, `active`, `pending`, `ended`).
    show: String,
    /// Which page of the viewer's own requests for access.
    requests: usize,
    /// A share just accepted or taken up: the page says which keys receive it.
    share: Option<i64>,
}

async fn shared_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    page: web::Query<OffersPage>,
) -> Result<HttpResponse, WebError> {
    let me = v.user.clone();
    let (at, inc_at) = (page.offers, page.page);
    let filter = ShareFilter::parse(&page.show)
        .ok_or_else(|| WebError::BadRequest(format!("show: one of {}", filter_words().join(", "))))?;
    let (incoming, inc_more, offers, more, owned_groups, blocks) = state
        .db(move |s| -> Result<_, SocialError> {
            let (inc, inc_more) = ops::my_incoming(s, &me, filter, inc_at)?;
            let (offers, more) = ops::public_offers(s, &me, at)?;
            let blocks = ops::my_blocks(s, &me)?;
            let owned = owned_groups(s, &me)?;
            Ok((inc, inc_more, offers, more, owned, blocks))
        })
        .await?;
    let receiving = match page.share {
        Some(id) => {
            super::receiving::receiving_json(&state, &v, move |s, me| {
                Ok(vec![receiving::of_share(s, me, ShareId(id))?])
            })
            .await?
        }
        None => Value::Null,
    };
    let me_id = v.user.id;
    let shares: Vec<Value> = incoming
        .iter()
        .chain(offers.iter())
        .map(|s| {
            let answers = match s.share.to {
                Grantee::User(u) => u == me_id,
                Grantee::Group(g) => owned_groups.contains(&g),
                Grantee::Everyone => false,
            };
            let mut j = share_json(s);
            j["via"] = json!(match s.share.to {
                Grantee::User(_) => "you".to_owned(),
                Grantee::Everyone => "a public offer".to_owned(),
                Grantee::Group(_) => s.to_name.clone(),
            });
            let open = s.share.to == Grantee::Everyone && s.share.state == ShareState::Accepted;
            j["can_answer"] = json!(answers && s.share.state == ShareState::Offered);
            j["can_leave"] = json!(answers && s.share.state == ShareState::Accepted);
            j["can_follow"] = json!(open && !s.followed);
            j["can_unfollow"] = json!(s.share.to == Grantee::Everyone && s.followed);
            j
        })
        .collect();
    let pending = shares.iter().filter(|s| s["can_answer"] == json!(true)).count();
    let (my_requests, requests_more) =
        super::channels::requests_json(&state, &v, false, page.requests).await?;
    Page::new(
        "shared_with_me",
        "Shared with me",
        "shared",
        crate::web::routes::paged(
            json!({
                "receiving": receiving,
                "shares": shares,
                "pending": pending,
                "my_requests": my_requests,
                "requests_page": requests_pager("/shared-with-me", page.requests, requests_more),
                "blocks": blocks,
                "offers_page": at + 1,
                "offers_has_prev": at > 0,
                "offers_prev": at.saturating_sub(1),
                "offers_next": more.then_some(at + 1),
                "offers_at": at,
                "page_at": inc_at,
                "filters": filters_json("/shared-with-me?", filter),
                "show": filter.as_str(),
                "filtered": filter != ShareFilter::All,
            }),
            inc_at,
            inc_more,
        ),
    )
    .render(&state, &req, Some(&v))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BlockForm {
    user: String,
    action: String,
    /// `yes` on the confirmation page's form.
    confirm: String,
}

/// Blocks (or, with `action=unblock`, unblocks) a user, from *Shared with me*.
async fn block(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<BlockForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let me = v.user.clone();
    let name = f.user.trim().to_owned();
    let (unblock, ok) = match f.action.as_str() {
        "" | "block" => (false, "user-blocked"),
        "unblock" => (true, "user-unblocked"),
        _ => return Err(WebError::BadRequest("action: block or unblock".into())),
    };
    if !unblock && f.confirm != "yes" && !name.is_empty() {
        let heading = format!("Block {name}?");
        return Page::new(
            "confirm",
            &heading,
            "shared",
            json!({
                "heading": heading,
                "text": format!(
                    "Nothing of {name}'s reaches you from then on, by any path (through others \
                     too), and their offers to you are declined, those waiting now included. \
                     You can unblock them later; declined offers stay declined."
                ),
                "action": "/blocks",
                "button": format!("Block {name}"),
                "cancel": "/shared-with-me",
                "hidden": {"user": name, "action": "block"},
            }),
        )
        .render(&state, &req, Some(&v));
    }
    let ((), live) = state
        .apply(move |s| {
            if unblock {
                ops::unblock_user(s, &me, &name)
            } else {
                ops::block_user(s, &me, &name)
            }
        })
        .await?;
    Ok(see_other_live(&state, "/shared-with-me", Some(ok), &live))
}

/// `?channel=NAME&page=N`: one channel's page N of receivers; without `channel`, page N of
/// each (the page and the API).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ReachQuery {
    /// The channel (empty: every one).
    pub(crate) channel: String,
    /// From 0.
    pub(crate) page: usize,
}

/// *Reach*: where the viewer's data goes, per channel they share, and through whom (a page
/// of receivers per channel, the rest a link away).
async fn reach_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<ReachQuery>,
) -> Result<HttpResponse, WebError> {
    let reach = state.reach(v.user.id, &q.channel, q.page).await?;
    let page = q.page;
    let channels: Vec<Value> = reach
        .into_iter()
        .map(|c| {
            let receivers: Vec<Value> = c
                .receivers
                .into_iter()
                .map(|r| {
                    json!({
                        "user": r.user,
                        "through": r.through.join(" → "),
                        "direct": r.through.is_empty(),
                        "share": r.share.0,
                        "via": r.via,
                    })
                })
                .collect();
            let link = |p: usize| {
                format!(
                    "/reach?channel={}&page={p}",
                    crate::web::render::url_component(c.channel.as_str())
                )
            };
            json!({
                "channel": c.channel.as_str(),
                "receivers": receivers,
                "total": c.total,
                "paged": c.more || page > 0,
                "next": c.more.then(|| link(page + 1)),
                "previous": (page > 0).then(|| link(page - 1)),
            })
        })
        .collect();
    Page::new(
        "reach",
        "Reach of my data",
        "shares",
        json!({ "channels": channels, "per_page": crate::social::reach::REACH_PAGE }),
    )
    .render(&state, &req, Some(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_parsed_with_field_errors() {
        let f = OfferForm {
            channel: "dionaea.capture".into(),
            to_kind: "user".into(),
            to: "bob".into(),
            kind: "redistribute".into(),
            onward: String::new(),
        };
        let (c, g, k) = parse_offer(&f).unwrap();
        assert_eq!(c.as_str(), "dionaea.capture");
        assert_eq!(g, GranteeName::User("bob".into()));
        assert_eq!(k, ShareKind::Redistribute);
        let bad = OfferForm {
            channel: String::new(),
            to_kind: "group".into(),
            to: String::new(),
            kind: "weird".into(),
            onward: String::new(),
        };
        let e = parse_offer(&bad).unwrap_err();
        assert!(e.0.contains_key("channel") && e.0.contains_key("to") && e.0.contains_key("kind"));
    }
}
