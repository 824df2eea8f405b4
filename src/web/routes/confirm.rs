//! The pages that ask before what cannot be undone in one click (a revoke, a leave, a
//! block, a member removed): plain forms that post again with `confirm=yes`, so they work
//! without scripts.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::domain::ShareId;
use crate::domain::model::Grantee;
use crate::social::ops::SocialError;
use crate::web::WebState;
use crate::web::error::WebError;
use crate::web::render::Page;
use crate::web::session::Viewer;

/// The page that asks before a revoke or a leave (it works without scripts), or `None`
/// when the share is not the viewer's to act on that way (the action itself then refuses).
pub(crate) async fn share(
    state: &WebState,
    req: &HttpRequest,
    v: &Viewer,
    id: ShareId,
    action: &str,
    back: &str,
) -> Result<Option<HttpResponse>, WebError> {
    let me = v.user.clone();
    let found = state
        .db(move |s| -> Result<_, SocialError> {
            let Some(share) = s.share(id)? else {
                return Ok(None);
            };
            let from = s.user_by_id(share.from)?.map(|u| u.name).unwrap_or_default();
            // Only the grantee leaves (a member, for a group's share).
            let grantee = match share.to {
                Grantee::User(u) => u == me.id,
                Grantee::Group(g) => s.membership(g, me.id)?.is_some(),
                Grantee::Everyone => false,
            };
            if share.from != me.id && !grantee {
                return Ok(None);
            }
            let to = match share.to {
                Grantee::User(u) if u == me.id => "you".to_owned(),
                Grantee::User(u) => s.user_by_id(u)?.map(|u| u.name).unwrap_or_default(),
                Grantee::Group(g) => format!(
                    "every member of the group {}",
                    s.group_name(g)?.unwrap_or_default()
                ),
                Grantee::Everyone => "everyone who took it up".to_owned(),
            };
            Ok(Some((share, from, to)))
        })
        .await?;
    let Some((share, from, to)) = found else {
        return Ok(None);
    };
    let channel = share.channel.as_str();
    let (heading, text, button) = match action {
        "revoke" if share.from == v.user.id => (
            format!("Revoke your share of {channel}?"),
            format!(
                "It stops carrying data at once: {to} (and whoever receives it through them) no longer                  receives your {channel}. To share it again you offer it anew, and it must be accepted again."
            ),
            "Revoke share",
        ),
        "leave" if share.from != v.user.id => (
            format!("Leave {from}'s share of {channel}?"),
            format!(
                "Your keys stop receiving {from}'s {channel} at once. Only {from} can offer it to you again."
            ),
            "Leave share",
        ),
        _ => return Ok(None),
    };
    let page = Page::new(
        "confirm",
        &heading,
        "shares",
        json!({
            "heading": heading,
            "text": text,
            "action": format!("/shares/{}/{action}", id.0),
            "button": button,
            "cancel": back,
            "hidden": {"back": if back == "/shares" { "shares" } else { "" }},
        }),
    )
    .render(state, req, Some(v))?;
    Ok(Some(page))
}
