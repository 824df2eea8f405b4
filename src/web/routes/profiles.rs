//! *Profiles*: a user as other researchers see them (affiliation, a few words, what they
//! publish, what they share with the viewer and the viewer with them), with the actions a
//! researcher deciding whom to trust needs: offer a share, ask for a channel, block.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::domain::model::ShareState;
use crate::social::ops::SocialError;
use crate::web::State;
use crate::web::error::WebError;
use crate::web::render::{Page, date};
use crate::web::session::Viewer;

/// Profile routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{name}", web::get().to(profile));
}

async fn profile(
    state: State,
    req: HttpRequest,
    v: Viewer,
    name: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let name = name.into_inner();
    let me = v.user.clone();
    let found = state
        .db(move |s| -> Result<_, SocialError> {
            let Some(u) = s.user_by_name(&name)? else {
                return Ok(None);
            };
            // A disabled user, or one who blocks the viewer, has no page for them: the
            // same answer as no such user.
            if u.id != me.id && (!u.enabled || s.is_blocked(u.id, me.id)?) {
                return Ok(None);
            }
            let (affiliation, about) = s.profile(u.id)?;
            let publishes = s.published_channels(u.id)?;
            let (theirs, mine) = s.shares_between(me.id, u.id)?;
            let theirs = s.describe_shares(theirs)?;
            let mine = s.describe_shares(mine)?;
            let blocked = s.is_blocked(me.id, u.id)?;
            Ok(Some((u, affiliation, about, publishes, theirs, mine, blocked)))
        })
        .await?;
    let Some((u, affiliation, about, publishes, theirs, mine, blocked)) = found else {
        return Err(WebError::NotFound("no such user".into()));
    };
    let myself = u.id == v.user.id;
    let share = |s: &crate::domain::listing::ShareInfo| {
        json!({
            "id": s.share.id.0,
            "channel": s.share.channel.as_str(),
            "kind": s.share.kind.as_str(),
            "state": s.share.state.as_str(),
            "via": s.to_name,
            "offered": s.share.state == ShareState::Offered,
        })
    };
    let receiving: Vec<&str> = theirs
        .iter()
        .filter(|s| s.share.state == ShareState::Accepted)
        .map(|s| s.share.channel.as_str())
        .collect();
    let channels: Vec<Value> = publishes
        .iter()
        .map(|c| json!({"channel": c, "receiving": receiving.contains(&c.as_str())}))
        .collect();
    let title = format!("{} · profile", u.name);
    Page::new(
        "profile",
        &title,
        "",
        json!({
            "user": u.name,
            "myself": myself,
            "affiliation": affiliation,
            "about": about,
            "since": date(u.created_at),
            "channels": channels,
            "theirs": theirs.iter().map(share).collect::<Vec<_>>(),
            "mine": mine.iter().map(share).collect::<Vec<_>>(),
            "blocked": blocked,
        }),
    )
    .render(&state, &req, Some(&v))
}
