//! A hub for the worst cases (issue 32's sharing-graph page): one user with hundreds of
//! shares out and in, groups owned and joined, and public offers taken up, the picture the
//! *Graph* page must still draw at once.

use super::{Inserts, Rng, channel_name};
use crate::store::{AnyConnection, StoreError};

/// What the hub has: (shares out, shares in, groups owned, groups joined, public offers).
pub const HUB: (usize, usize, usize, usize, usize) = (300, 300, 10, 10, 50);

/// Members of each group the hub owns or joins (besides the hub).
const HUB_GROUP_MEMBERS: usize = 20;

/// Writes the hub's edges: `hub` is the hub's id, `uid(i)` the id of community user `i` of
/// `users`, `next_share`/`next_group` the last ids taken (moved past what is written).
#[allow(clippy::too_many_arguments)]
pub(super) fn edges(
    conn: &mut AnyConnection,
    rng: &mut Rng,
    hub: i64,
    users: usize,
    uid: &dyn Fn(usize) -> i64,
    next_share: &mut i64,
    next_group: &mut i64,
    t: i64,
) -> Result<(), StoreError> {
    let (out, inc, owned, joined, offers) = HUB;
    let mut groups = Vec::new();
    {
        let mut rows = Inserts::new(
            conn,
            "INSERT INTO groups (id, name, owner_id, description, created_at)",
        );
        for g in 0..owned + joined {
            *next_group += 1;
            let owner = if g < owned { hub } else { uid(rng.below(users)) };
            rows.push(format!("({}, 'hub-group-{g}', {owner}, '', {t})", *next_group))?;
            groups.push((*next_group, owner));
        }
        rows.flush()?;
    }
    let mut members = Inserts::new(
        conn,
        "INSERT INTO group_members (group_id, user_id, role, state, created_at)",
    );
    for (g, owner) in &groups {
        members.push(format!("({g}, {owner}, 'owner', 'active', {t})"))?;
        if *owner != hub {
            members.push(format!("({g}, {hub}, 'member', 'active', {t})"))?;
        }
        for _ in 0..HUB_GROUP_MEMBERS.min(users) {
            let u = uid(rng.below(users));
            if u != *owner {
                members.push(format!("({g}, {u}, 'member', 'active', {t})"))?;
            }
        }
    }
    members.flush()?;
    drop(members);

    let mut shares = Inserts::new(
        conn,
        "INSERT INTO shares (id, from_user_id, channel, to_kind, to_user_id, to_group_id, \
         share_type, state, onward, created_at, updated_at)",
    );
    let mut public = Vec::new();
    let kind = |rng: &mut Rng| if rng.percent(20) { "redistribute" } else { "own" };
    // Channels other than the chains' `sensor.0`, so that the chain figures stay the same.
    let channel = |rng: &mut Rng| channel_name(1 + rng.below(49));
    for k in 0..out + inc + offers + owned {
        *next_share += 1;
        let (from, to_kind, to_user, to_group) = if k < out {
            (hub, "user", uid(rng.below(users)).to_string(), "NULL".to_owned())
        } else if k < out + inc {
            (uid(rng.below(users)), "user", hub.to_string(), "NULL".to_owned())
        } else if k < out + inc + offers {
            public.push(*next_share);
            (hub, "everyone", "NULL".to_owned(), "NULL".to_owned())
        } else {
            let (g, _) = groups[k - out - inc - offers];
            (hub, "group", "NULL".to_owned(), g.to_string())
        };
        let state = if to_kind == "everyone" || rng.percent(90) {
            "accepted"
        } else {
            "offered"
        };
        // A public offer per channel (a second on one would be refused): their own channels.
        let on = if to_kind == "everyone" {
            format!("hub.offer.{k}")
        } else {
            channel(rng)
        };
        shares.push(format!(
            "({}, {from}, '{on}', '{to_kind}', {to_user}, {to_group}, '{}', '{state}', FALSE, {t}, {t})",
            *next_share,
            kind(rng)
        ))?;
    }
    shares.flush()?;
    drop(shares);
    let mut follows = Inserts::new(conn, "INSERT INTO share_follows (share_id, user_id, created_at)");
    for s in public {
        for _ in 0..HUB_GROUP_MEMBERS.min(users) {
            follows.push(format!("({s}, {}, {t})", uid(rng.below(users))))?;
        }
    }
    follows.flush()?;
    Ok(())
}
