//! Requests for access: a researcher who finds a channel in the catalogue asks one of its
//! publishers for it; the publisher grants (a share of their own data on that channel to
//! the requester, live at once: asking was the requester's consent) or declines.

use crate::config::limits::{MAX_ACCESS_REQUEST_NOTE, MAX_OPEN_ACCESS_REQUESTS};
use crate::domain::listing::{AccessRequest, RequestState, User};
use crate::domain::model::{Grantee, ShareKind, ShareState};
use crate::domain::{RequestId, ShareId};
use crate::social::ops::{Result, SocialError};
use crate::store::Store;
use crate::wire::Channel;

/// `actor` asks `publisher` for `channel`, with a note. The publisher must publish on it
/// as `actor` may see (enabled, neither blocking the other), and not be `actor`.
pub fn request_access(
    store: &Store,
    actor: &User,
    publisher: &str,
    channel: &Channel,
    note: &str,
) -> Result<(RequestId, User)> {
    let note = note.trim();
    if let Some(p) = crate::domain::text::problem(note, MAX_ACCESS_REQUEST_NOTE, true) {
        return Err(SocialError::Invalid(format!("note: {p}")));
    }
    let Some(to) = store.channel_publisher(actor.id, channel, publisher)? else {
        return Err(SocialError::NotFound(format!(
            "{publisher} does not publish on {channel}"
        )));
    };
    if to == actor.id {
        return Err(SocialError::Invalid("you publish on it yourself".into()));
    }
    if let Some(s) = store.live_share(to, channel, Grantee::User(actor.id))? {
        return Err(SocialError::Conflict(match s.state {
            ShareState::Offered => {
                format!("{publisher} already offers you {channel}: accept it on Shared with me")
            }
            _ => format!("{publisher} already shares {channel} with you"),
        }));
    }
    if store.open_requests_from(actor.id)? >= MAX_OPEN_ACCESS_REQUESTS {
        return Err(SocialError::Conflict(format!(
            "you have {MAX_OPEN_ACCESS_REQUESTS} requests waiting for an answer; withdraw some first"
        )));
    }
    let publisher = store
        .user_by_id(to)?
        .ok_or_else(|| SocialError::NotFound(format!("no user named {publisher:?}")))?;
    let id = store.add_access_request(actor.id, to, channel, note, &actor.name)?;
    Ok((id, publisher))
}

/// A request as `actor` may see it: made by them or to them.
fn visible(store: &Store, actor: &User, id: RequestId) -> Result<AccessRequest> {
    match store.access_request(id)? {
        Some(r) if r.from == actor.id || r.to == actor.id => Ok(r),
        _ => Err(SocialError::NotFound(format!("no request {}", id.0))),
    }
}

fn answered(
    store: &Store,
    actor: &User,
    r: &AccessRequest,
    to: RequestState,
    share: Option<ShareId>,
) -> Result<()> {
    if store.answer_access_request(r.id, to, share, &actor.name)? {
        Ok(())
    } else {
        Err(SocialError::Conflict(format!(
            "request {} was answered already",
            r.id.0
        )))
    }
}

/// The publisher grants a request: their own data on the channel flows to the requester
/// from now on, and nothing more: an offer of exactly that is accepted, otherwise a new
/// accepted share of their own data is made (a wider offer waiting stays pending).
pub fn grant_access(store: &Store, actor: &User, id: RequestId) -> Result<(AccessRequest, ShareId)> {
    let r = visible(store, actor, id)?;
    if r.to != actor.id {
        return Err(SocialError::Forbidden(format!(
            "request {} is not yours to answer",
            id.0
        )));
    }
    if r.state != RequestState::Open {
        return Err(SocialError::Conflict(format!(
            "request {} is {}",
            id.0,
            r.state.as_str()
        )));
    }
    if store.is_blocked(r.from, actor.id)? {
        answered(store, actor, &r, RequestState::Withdrawn, None)?;
        return Err(SocialError::Conflict(format!(
            "{} no longer takes data from you",
            r.from_name
        )));
    }
    let share = match store.live_share(actor.id, &r.channel, Grantee::User(r.from))? {
        Some(s) if s.state == ShareState::Accepted => s.id,
        // An offer of exactly what was asked for is what the request consents to.
        Some(s) if s.kind == ShareKind::Own && !s.onward => {
            store.transition_share(s.id, &[ShareState::Offered], ShareState::Accepted, &actor.name)?;
            s.id
        }
        // A wider offer (what the sharer receives too, or onward travel) is more than the
        // requester asked for: the grant is a share of its own beside it, and the offer
        // stays pending for them to answer (accepting it later takes the grant's place).
        _ => store.add_share(
            actor.id,
            &r.channel,
            Grantee::User(r.from),
            (ShareKind::Own, false),
            ShareState::Accepted,
            &actor.name,
        )?,
    };
    answered(store, actor, &r, RequestState::Granted, Some(share))?;
    Ok((r, share))
}

/// The publisher declines a request; nothing else changes.
pub fn decline_access(store: &Store, actor: &User, id: RequestId) -> Result<AccessRequest> {
    let r = visible(store, actor, id)?;
    if r.to != actor.id {
        return Err(SocialError::Forbidden(format!(
            "request {} is not yours to answer",
            id.0
        )));
    }
    answered(store, actor, &r, RequestState::Declined, None)?;
    Ok(r)
}

/// The requester takes an open request back.
pub fn withdraw_access(store: &Store, actor: &User, id: RequestId) -> Result<()> {
    let r = visible(store, actor, id)?;
    if r.from != actor.id {
        return Err(SocialError::Forbidden(format!(
            "request {} is not yours to withdraw",
            id.0
        )));
    }
    answered(store, actor, &r, RequestState::Withdrawn, None)
}
