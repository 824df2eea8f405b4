//! *Groups*: create, invite (mailed), accept or decline, leave, remove members.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FieldErrors, see_other_live};
use crate::domain::model::{GroupRole, MemberState};
use crate::social::ops::{self, SocialError};
use crate::social::receiving;
use crate::web::error::WebError;
use crate::web::render::Page;
use crate::web::routes::accounts::mail;
use crate::web::session::{CsrfForm, Viewer};
use crate::web::{State, WebState};

/// Group routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(page))
        .route("/groups", web::post().to(create))
        .route("/groups/{name}/members", web::get().to(members_page))
        .route("/groups/{name}/{action}", web::post().to(act));
}

/// The viewer's groups as JSON, with what the viewer may do in each.
pub async fn my_groups(state: &WebState, v: &Viewer) -> Result<Vec<Value>, WebError> {
    Ok(my_groups_page(state, v, None).await?.0)
}

/// One page of [`my_groups`] (all for `None`), and whether more follow.
pub async fn my_groups_page(
    state: &WebState,
    v: &Viewer,
    page: Option<usize>,
) -> Result<(Vec<Value>, bool), WebError> {
    let me = v.user.clone();
    let (groups, more) = state.db(move |s| ops::my_groups_page(s, &me, page)).await?;
    let list = groups
        .iter()
        .map(|g| {
            let mine = g.place_of(&v.user.name);
            let owner = mine.is_some_and(|(r, _)| r == GroupRole::Owner);
            let invited = mine.is_some_and(|(_, s)| s == MemberState::Invited);
            let members: Vec<Value> = g
                .members
                .iter()
                .map(|(n, role, st)| {
                    json!({
                        "name": n,
                        "role": role.as_str(),
                        "state": st.as_str(),
                        "removable": owner && *role != GroupRole::Owner,
                    })
                })
                .collect();
            json!({
                "name": g.name,
                "owner": g.owner,
                "description": g.description,
                "members": members,
                "active": g.active_count,
                "member_count": g.member_count,
                "more_members": g.member_count > g.members.len(),
                "is_owner": owner,
                "invited": invited,
                "can_leave": !owner && !invited,
            })
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
    (at, receiving): (usize, Value),
) -> Result<HttpResponse, WebError> {
    let (groups, more) = my_groups_page(state, v, Some(at)).await?;
    let users = state.db(|s| s.search_users("", 500)).await?;
    Page::new(
        "groups",
        "Groups",
        "groups",
        crate::web::routes::paged(
            json!({
                "receiving": receiving,
                "groups": groups,
                "users": users,
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

/// `?page=N`, and `joined=GROUP` after the viewer joined it: the page then says which of
/// their keys receive what is shared with the group.
#[derive(Deserialize, Default)]
#[serde(default)]
struct GroupsQuery {
    page: usize,
    joined: String,
}

async fn page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    q: web::Query<GroupsQuery>,
) -> Result<HttpResponse, WebError> {
    let receiving = if q.joined.is_empty() {
        Value::Null
    } else {
        let group = q.joined.clone();
        super::receiving::receiving_json(&state, &v, move |s, me| receiving::of_group(s, me, &group)).await?
    };
    render_page(
        &state,
        &req,
        &v,
        json!({}),
        &FieldErrors::default(),
        StatusCode::OK,
        (q.page, receiving),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateForm {
    name: String,
    description: String,
}

async fn create(
    state: State,
    req: HttpRequest,
    v: Viewer,
    form: CsrfForm<CreateForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.0;
    let name = f.name.trim().to_owned();
    let description = f.description.trim().to_owned();
    let mut errors = FieldErrors::default();
    if !ops::valid_name(&name) {
        errors.add("name", "use 1-64 letters, digits, '.', '_' or '-'");
    }
    if let Some(p) =
        crate::domain::text::problem(&description, crate::config::limits::MAX_GROUP_DESCRIPTION, true)
    {
        errors.add("description", p);
    }
    if errors.is_empty() {
        let me = v.user.clone();
        let (n, d) = (name.clone(), description.clone());
        match state.apply(move |s| ops::create_group(s, &me, &n, &d)).await {
            Ok((_, live)) => return Ok(see_other_live(&state, "/groups", Some("group-created"), &live)),
            Err(e @ (SocialError::Conflict(_) | SocialError::Invalid(_))) => {
                errors.add("name", e.to_string())
            }
            Err(e) => return Err(e.into()),
        }
    }
    let form = json!({"name": name, "description": description});
    render_page(
        &state,
        &req,
        &v,
        form,
        &errors,
        StatusCode::UNPROCESSABLE_ENTITY,
        (0, Value::Null),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemberForm {
    user: String,
    /// `yes` on the confirmation page's form (removing a member and leaving ask first).
    confirm: String,
}

async fn act(
    state: State,
    req: HttpRequest,
    v: Viewer,
    path: web::Path<(String, String)>,
    form: CsrfForm<MemberForm>,
) -> Result<HttpResponse, WebError> {
    let (group, action) = path.into_inner();
    let who = form.0.user.trim().to_owned();
    let ask = match action.as_str() {
        "remove" if !who.is_empty() => Some((
            format!("Remove {who} from {group}?"),
            format!(
                "{who} stops receiving at once what is shared with {group}, and can come back only \
                 when invited again."
            ),
            format!("Remove {who}"),
        )),
        "leave" => Some((
            format!("Leave {group}?"),
            format!(
                "Your keys stop receiving at once what is shared with {group}; you can come back \
                 only when its owner invites you again."
            ),
            format!("Leave {group}"),
        )),
        _ => None,
    };
    if let Some((heading, text, button)) = ask.filter(|_| form.0.confirm != "yes") {
        return Page::new(
            "confirm",
            &heading,
            "groups",
            json!({
                "heading": heading,
                "text": text,
                "action": format!("/groups/{}/{action}", crate::web::render::url_component(&group)),
                "button": button,
                "cancel": "/groups",
                "hidden": {"user": who},
            }),
        )
        .render(&state, &req, Some(&v));
    }
    let me = v.user.clone();
    let g = group.clone();
    let w = who.clone();
    let result = match action.as_str() {
        "invite" | "remove" if who.is_empty() => Err(SocialError::Invalid("enter a user name".into())),
        "invite" => state
            .apply(move |s| ops::invite(s, &me, &g, &w))
            .await
            .map(|((), live)| ("group-invited", live)),
        "remove" => state
            .apply(move |s| ops::remove_member(s, &me, &g, &w))
            .await
            .map(|((), live)| ("group-removed", live)),
        "accept" => state
            .apply(move |s| ops::accept_invitation(s, &me, &g))
            .await
            .map(|((), live)| ("group-joined", live)),
        "decline" => state
            .apply(move |s| ops::decline_invitation(s, &me, &g))
            .await
            .map(|((), live)| ("group-declined", live)),
        "leave" => state
            .apply(move |s| ops::leave_group(s, &me, &g))
            .await
            .map(|((), live)| ("group-left", live)),
        _ => return Err(WebError::NotFound(format!("no action {action:?} on groups"))),
    };
    match result {
        Ok((ok, live)) => {
            if action == "invite" {
                mail_invitation(&state, &v.user, &group, &who).await;
            }
            let back = if action == "accept" {
                format!(
                    "/groups?joined={}#receiving",
                    crate::web::render::url_component(&group)
                )
            } else {
                "/groups".to_owned()
            };
            Ok(see_other_live(&state, &back, Some(ok), &live))
        }
        // A form with a user field: the error goes next to it, in that group's box.
        Err(e @ (SocialError::NotFound(_) | SocialError::Invalid(_) | SocialError::Conflict(_)))
            if matches!(action.as_str(), "invite" | "remove") =>
        {
            let mut errors = FieldErrors::default();
            // Next to the user field of that group's box, or above the page when the viewer
            // has no such box (not their group).
            let owned = my_groups(&state, &v)
                .await?
                .iter()
                .any(|g| g["name"] == group.as_str() && g["is_owner"] == true);
            if owned {
                errors.add("group", group);
                errors.add("user", e.to_string());
            } else {
                errors.add("form", e.to_string());
            }
            render_page(
                &state,
                &req,
                &v,
                json!({"user": who}),
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
                (0, Value::Null),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Mails the invitee, within the inviter's hourly mail bound (`mails_per_sender`).
pub(crate) async fn mail_invitation(
    state: &WebState,
    from: &crate::domain::listing::User,
    group: &str,
    who: &str,
) {
    let (w, by) = (who.to_owned(), from.id);
    // Nothing for someone who blocked the inviter (no invitation was made either).
    let invitee = state
        .db(move |s| -> Result<_, crate::store::StoreError> {
            match s.user_by_name(&w)? {
                Some(u) if !s.is_blocked(u.id, by)? => Ok(Some(u)),
                _ => Ok(None),
            }
        })
        .await;
    if let Ok(Some(u)) = invitee
        && super::accounts::sender_may_mail(state, from)
    {
        let from = from.name.as_str();
        mail(
            state,
            &u.email,
            &format!("{from} invites you to the group {group} on hpfriends"),
            "mail/group",
            &json!({"name": u.name, "from": from, "group": group, "link": format!("{}/groups", state.site_url)}),
        );
    }
}

/// A group's members and invitees, 50 a page (the group box lists the first 50).
async fn members_page(
    state: State,
    req: HttpRequest,
    v: Viewer,
    name: web::Path<String>,
    q: web::Query<crate::web::routes::PageQuery>,
) -> Result<HttpResponse, WebError> {
    let (me, group, at) = (v.user.clone(), name.into_inner(), q.page);
    let g = group.clone();
    let (members, more) = state.db(move |s| ops::group_members(s, &me, &g, at)).await?;
    let members: Vec<Value> = members
        .iter()
        .map(|(n, role, st)| json!({"name": n, "role": role.as_str(), "state": st.as_str()}))
        .collect();
    Page::new(
        "group_members",
        &format!("Members of {group}"),
        "groups",
        crate::web::routes::paged(
            json!({
                "members_base": format!("/groups/{group}/members?"),
                "group": group,
                "members": members,
            }),
            at,
            more,
        ),
    )
    .render(&state, &req, Some(&v))
}
