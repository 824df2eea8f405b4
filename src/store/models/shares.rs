//! `shares`: `from —channel→ (user | group | everyone)`, own or redistribute, with the
//! offered → accepted → revoked/left life. Transitions are conditional updates, so a
//! concurrent change cannot slip between a check and the write.

use std::collections::HashMap;

use crate::store::AnyConnection;
use diesel::prelude::*;

use crate::domain::listing::{ShareFilter, ShareInfo};

use super::audit;
use crate::domain::model::{Grantee, Share, ShareKind, ShareState};
use crate::domain::{GroupId, ShareId, UserId};
use crate::store::on_backend;
use crate::store::schema::{groups, shares, users};
use crate::store::{ID_RANGE, Store, StoreError, by_id_ranges_after, in_chunks, now};
use crate::wire::Channel;

type ShareRow = (
    i64,
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    String,
    String,
    bool,
);

fn to_share(r: ShareRow) -> Option<Share> {
    share_from(r, |c| Channel::new(c).ok())
}

/// [`to_share`], the channel name turned into a [`Channel`] by `channel`.
fn share_from(r: ShareRow, channel_of: impl FnOnce(&str) -> Option<Channel>) -> Option<Share> {
    let (id, from, channel, to_kind, to_user, to_group, kind, state, onward) = r;
    let to = match (to_kind.as_str(), to_user, to_group) {
        ("user", Some(u), _) => Grantee::User(UserId(u)),
        ("group", _, Some(g)) => Grantee::Group(GroupId(g)),
        ("everyone", _, _) => Grantee::Everyone,
        _ => return None,
    };
    Some(Share {
        id: ShareId(id),
        from: UserId(from),
        channel: channel_of(&channel)?,
        to,
        kind: kind.parse().ok()?,
        state: state.parse().ok()?,
        onward,
    })
}

macro_rules! share_columns {
    () => {
        (
            shares::id,
            shares::from_user_id,
            shares::channel,
            shares::to_kind,
            shares::to_user_id,
            shares::to_group_id,
            shares::share_type,
            shares::state,
            shares::onward,
        )
    };
}

/// The dashboard's share figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareCounts {
    /// Outgoing shares accepted (live).
    pub live_out: usize,
    /// Incoming shares accepted.
    pub accepted_in: usize,
    /// Incoming shares waiting for an answer.
    pub pending_in: usize,
}

/// The shares that reach `user` (see [`Store::shares_to_page`]), as a query to refine.
///
/// The three ways in are a UNION of index look-ups (`to_user_id`, `to_group_id` of each
/// active group, the user's follows), not one OR over the table, and no joins for SQLite's
/// planner (without statistics) to order badly: either made it read every share, 50-90 ms
/// at 100,000 users, where this is under 2 ms. The schema's CHECK ties `to_user_id` and
/// `to_group_id` to their kinds, and only public offers can be followed. The only value put
/// in the text is the user id, an integer.
/// The shares `user` makes, as listed.
fn outgoing_from(user: UserId) -> shares::BoxedQuery<'static, crate::store::connection::MultiBackend> {
    shares::table.filter(shares::from_user_id.eq(user.0)).into_boxed()
}

/// `query` narrowed to what `user`'s list shows under `filter`: the filter's states, and
/// nothing `user` cleared.
fn listed(
    query: shares::BoxedQuery<'static, crate::store::connection::MultiBackend>,
    user: UserId,
    filter: ShareFilter,
) -> shares::BoxedQuery<'static, crate::store::connection::MultiBackend> {
    use crate::store::schema::share_dismissals;
    use diesel::dsl::{exists, not};
    let cleared = share_dismissals::table
        .filter(share_dismissals::user_id.eq(user.0))
        .filter(share_dismissals::share_id.eq(shares::id));
    let query = query.filter(not(exists(cleared)));
    match filter.states() {
        None => query,
        Some(states) => query.filter(shares::state.eq_any(states.iter().map(|s| s.as_str()))),
    }
}

fn incoming_to(user: UserId) -> shares::BoxedQuery<'static, crate::store::connection::MultiBackend> {
    use crate::store::schema::user_blocks;
    use diesel::dsl::{exists, not};
    let u = user.0;
    let reaching = format!(
        "shares.id IN (\
         SELECT id FROM shares WHERE to_user_id = {u} \
         UNION ALL SELECT id FROM shares WHERE to_group_id IN \
           (SELECT group_id FROM group_members WHERE user_id = {u} AND state = 'active') \
         UNION ALL SELECT share_id FROM share_follows WHERE user_id = {u}) \
         AND (shares.to_kind <> 'user' OR shares.to_user_id = {u})"
    );
    let blocked = user_blocks::table
        .filter(user_blocks::blocker_id.eq(u))
        .filter(user_blocks::blocked_id.eq(shares::from_user_id));
    shares::table
        .filter(shares::from_user_id.ne(u))
        .filter(not(exists(blocked)))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&reaching))
        .into_boxed()
}

/// Every share (`only: None`) or the shares of these ids, read on `conn` (inside the
/// caller's transaction).
/// Moves share `id` to `to` if it is in one of `from`; how many rows moved (0 or 1).
fn move_state(
    conn: &mut AnyConnection,
    id: ShareId,
    from: &[ShareState],
    to: ShareState,
) -> Result<usize, diesel::result::Error> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    diesel::update(shares::table.find(id.0).filter(shares::state.eq_any(&from)))
        .set((shares::state.eq(to.as_str()), shares::updated_at.eq(now())))
        .execute(conn)
}

pub(crate) fn shares_in(conn: &mut AnyConnection, only: Option<&[i64]>) -> Result<Vec<Share>, StoreError> {
    let query = || shares::table.order(shares::id).select(share_columns!());
    let Some(ids) = only else {
        let max: Option<i64> = shares::table.select(diesel::dsl::max(shares::id)).first(conn)?;
        return shares_by_id_range(conn, 0, max);
    };
    let rows: Vec<ShareRow> = in_chunks(ids, |c| query().filter(shares::id.eq_any(c)).load(conn))?;
    Ok(rows.into_iter().filter_map(to_share).collect())
}

/// The shares whose id is past `after` and at most `through` (`None`: there are none).
pub(crate) fn shares_by_id_range(
    conn: &mut AnyConnection,
    after: i64,
    through: Option<i64>,
) -> Result<Vec<Share>, StoreError> {
    let query = || shares::table.order(shares::id).select(share_columns!());
    let mut out = Vec::new();
    let mut names = crate::store::ChannelNames::default();
    by_id_ranges_after(
        after,
        through,
        ID_RANGE,
        |lo, hi| {
            query()
                .filter(shares::id.gt(lo))
                .filter(shares::id.le(hi))
                .load::<ShareRow>(conn)
        },
        |rows| {
            out.extend(
                rows.into_iter()
                    .filter_map(|r| share_from(r, |c| names.channel(c).ok())),
            );
        },
    )?;
    Ok(out)
}

impl Store {
    /// Records a new share of `kind` (and whether it allows onward travel) in `state`
    /// (offered; accepted for public offers; declined when the grantee blocks the sharer).
    pub fn add_share(
        &self,
        from: UserId,
        channel: &Channel,
        to: Grantee,
        (kind, onward): (ShareKind, bool),
        state: ShareState,
        actor: &str,
    ) -> Result<ShareId, StoreError> {
        let (to_kind, to_user, to_group) = match to {
            Grantee::User(u) => ("user", Some(u.0), None),
            Grantee::Group(g) => ("group", None, Some(g.0)),
            Grantee::Everyone => ("everyone", None, None),
        };
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let t = now();
            let id: i64 = diesel::insert_into(shares::table)
                .values((
                    shares::from_user_id.eq(from.0),
                    shares::channel.eq(channel.as_str()),
                    shares::to_kind.eq(to_kind),
                    shares::to_user_id.eq(to_user),
                    shares::to_group_id.eq(to_group),
                    shares::share_type.eq(kind.as_str()),
                    shares::state.eq(state.as_str()),
                    shares::onward.eq(onward),
                    shares::created_at.eq(t),
                    shares::updated_at.eq(t),
                ))
                .returning(shares::id)
                .get_result(conn)
                .map_err(|e| crate::store::conflict(e, || format!("{channel} is already shared that way")))?;
            audit::record(
                conn,
                actor,
                "share.offer",
                &format!("share#{id}"),
                &format!("{channel} {kind} {to:?} {state} onward={onward}"),
            )?;
            Ok(ShareId(id))
        })
    }

    /// The channels shared with `group` and accepted for it, by name: what its members
    /// receive through it.
    pub fn group_channels(&self, group: GroupId) -> Result<Vec<Channel>, StoreError> {
        let mut conn = self.conn()?;
        let names: Vec<String> = shares::table
            .filter(shares::to_kind.eq("group"))
            .filter(shares::to_group_id.eq(group.0))
            .filter(shares::state.eq(ShareState::Accepted.as_str()))
            .select(shares::channel)
            .distinct()
            .order(shares::channel)
            .load(&mut conn)?;
        Ok(names.iter().filter_map(|c| Channel::new(c).ok()).collect())
    }

    /// One share.
    pub fn share(&self, id: ShareId) -> Result<Option<Share>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<ShareRow> = shares::table
            .find(id.0)
            .select(share_columns!())
            .first(&mut conn)
            .optional()?;
        Ok(row.and_then(to_share))
    }

    /// Moves a share to `to` if it is in one of `from`; false when it was not.
    pub fn transition_share(
        &self,
        id: ShareId,
        from: &[ShareState],
        to: ShareState,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = move_state(conn, id, from, to)?;
            if n == 1 {
                audit::record(
                    conn,
                    actor,
                    &format!("share.{to}"),
                    &format!("share#{}", id.0),
                    "",
                )?;
            }
            Ok(n == 1)
        })
    }

    /// The live share of `channel` from `from` to `to`, the accepted one first: at most one
    /// offered and one accepted can exist (a unique index), so two racing offers cannot both
    /// land; the two stand together only when a grant answered a request beside a wider
    /// offer still waiting (see [`Self::accept_replacing`]).
    pub fn live_share(
        &self,
        from: UserId,
        channel: &Channel,
        to: Grantee,
    ) -> Result<Option<Share>, StoreError> {
        let mut conn = self.conn()?;
        let q = shares::table
            .filter(shares::from_user_id.eq(from.0))
            .filter(shares::channel.eq(channel.as_str()))
            .filter(shares::state.eq_any([ShareState::Offered.as_str(), ShareState::Accepted.as_str()]))
            .select(share_columns!())
            .into_boxed();
        let q = match to {
            Grantee::User(u) => q
                .filter(shares::to_kind.eq("user"))
                .filter(shares::to_user_id.eq(u.0)),
            Grantee::Group(g) => q
                .filter(shares::to_kind.eq("group"))
                .filter(shares::to_group_id.eq(g.0)),
            Grantee::Everyone => q.filter(shares::to_kind.eq("everyone")),
        };
        // 'accepted' sorts before 'offered'.
        let rows: Vec<ShareRow> = q.order(shares::state.asc()).limit(1).load(&mut conn)?;
        Ok(rows.into_iter().find_map(to_share))
    }

    /// The offer `id` is accepted and the accepted share `replaces` (same sharer, channel and
    /// grantee, narrower: a grant) ends as left, in one transaction, so that the grantee never
    /// receives through both nor, between the two, through neither. False when either is no
    /// longer in the state this expects.
    pub fn accept_replacing(&self, id: ShareId, replaces: ShareId, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let done = conn.transaction(|conn| {
            if move_state(conn, replaces, &[ShareState::Accepted], ShareState::Left)? != 1 {
                return Ok(false);
            }
            if move_state(conn, id, &[ShareState::Offered], ShareState::Accepted)? != 1 {
                // Roll the first update back with the transaction.
                return Err(StoreError::Conflict(format!(
                    "share {} is no longer offered",
                    id.0
                )));
            }
            audit::record(
                conn,
                actor,
                "share.accepted",
                &format!("share#{}", id.0),
                &format!("replaces share#{}", replaces.0),
            )?;
            Ok(true)
        });
        match done {
            Err(StoreError::Conflict(_)) => Ok(false),
            done => done,
        }
    }

    /// The shares `user` makes, and those that concern them: offered to them, to one of
    /// `groups`, or public offers they took up; read with SQL filters on indexed columns,
    /// not by scanning every share. Public offers not taken up are
    /// [`Self::public_offers_for`], a page at a time.
    pub fn shares_around(
        &self,
        user: UserId,
        groups: &[GroupId],
        follows: &[ShareId],
    ) -> Result<(Vec<Share>, Vec<Share>), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let outgoing: Vec<ShareRow> = shares::table
                .filter(shares::from_user_id.eq(user.0))
                .order(shares::id)
                .select(share_columns!())
                .load(conn)?;
            let mut incoming: Vec<ShareRow> = shares::table
                .filter(shares::to_kind.eq("user"))
                .filter(shares::to_user_id.eq(user.0))
                .select(share_columns!())
                .load(conn)?;
            let group_ids: Vec<i64> = groups.iter().map(|g| g.0).collect();
            incoming.extend(in_chunks(&group_ids, |c| {
                shares::table
                    .filter(shares::to_kind.eq("group"))
                    .filter(shares::to_group_id.eq_any(c))
                    .select(share_columns!())
                    .load(conn)
            })?);
            let follow_ids: Vec<i64> = follows.iter().map(|s| s.0).collect();
            incoming.extend(in_chunks(&follow_ids, |c| {
                shares::table
                    .filter(shares::id.eq_any(c))
                    .select(share_columns!())
                    .load(conn)
            })?);
            let mut incoming: Vec<Share> = incoming
                .into_iter()
                .filter_map(to_share)
                .filter(|s| s.from != user)
                .collect();
            incoming.sort_by_key(|s| s.id);
            incoming.dedup_by_key(|s| s.id);
            Ok((outgoing.into_iter().filter_map(to_share).collect(), incoming))
        })
    }

    /// Page `page` (`per` a page, live first, then by channel and age) of the shares that
    /// reach `user`: offered to them, to a group they are an active member of, or public
    /// offers they took up, not from themself nor from users they blocked; and whether
    /// more follow. One query with subqueries, as the Shared-with-me page lists them.
    pub fn shares_to_page(
        &self,
        user: UserId,
        filter: ShareFilter,
        page: usize,
        per: usize,
    ) -> Result<(Vec<Share>, bool), StoreError> {
        let mut conn = self.conn()?;
        let live = [ShareState::Offered.as_str(), ShareState::Accepted.as_str()];
        let rows: Vec<ShareRow> = listed(incoming_to(user), user, filter)
            .order((shares::state.eq_any(live).desc(), shares::channel, shares::id))
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select(share_columns!())
            .load(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        Ok((rows.into_iter().filter_map(to_share).collect(), more))
    }

    /// How many of `user`'s offers wait for an answer (for the per-user bound).
    pub fn open_offers_from(&self, user: UserId) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let n: i64 = shares::table
            .filter(shares::from_user_id.eq(user.0))
            .filter(shares::state.eq(ShareState::Offered.as_str()))
            .count()
            .get_result(&mut conn)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// For the dashboard, counted in SQL: `user`'s live outgoing shares, and the incoming
    /// ones (as [`Self::shares_to_page`]) accepted and still offered.
    pub fn share_counts(&self, user: UserId) -> Result<ShareCounts, StoreError> {
        let mut conn = self.conn()?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        let out: i64 = shares::table
            .filter(shares::from_user_id.eq(user.0))
            .filter(shares::state.eq(ShareState::Accepted.as_str()))
            .count()
            .get_result(&mut conn)?;
        let mut of = |s: ShareState| -> Result<usize, StoreError> {
            let c: i64 = incoming_to(user)
                .filter(shares::state.eq(s.as_str()))
                .count()
                .get_result(&mut conn)?;
            Ok(n(c))
        };
        Ok(ShareCounts {
            live_out: n(out),
            accepted_in: of(ShareState::Accepted)?,
            pending_in: of(ShareState::Offered)?,
        })
    }

    /// Page `page` (`per` a page) of the shares `user` makes, live ones first, then by
    /// channel and age (as the Shares page lists them); and whether more follow.
    pub fn shares_from_page(
        &self,
        user: UserId,
        filter: ShareFilter,
        page: usize,
        per: usize,
    ) -> Result<(Vec<Share>, bool), StoreError> {
        let mut conn = self.conn()?;
        let live = [ShareState::Offered.as_str(), ShareState::Accepted.as_str()];
        let rows: Vec<ShareRow> = listed(outgoing_from(user), user, filter)
            .order((shares::state.eq_any(live).desc(), shares::channel, shares::id))
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select(share_columns!())
            .load(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        Ok((rows.into_iter().filter_map(to_share).collect(), more))
    }

    /// The live shares between `a` and `b` as each would list them: those of `b`'s that
    /// reach `a` (directly, through a group, or a public offer `a` took up), and `a`'s
    /// offered directly to `b`. For a profile page.
    pub fn shares_between(&self, a: UserId, b: UserId) -> Result<(Vec<Share>, Vec<Share>), StoreError> {
        let mut conn = self.conn()?;
        let live = [ShareState::Offered.as_str(), ShareState::Accepted.as_str()];
        let theirs: Vec<ShareRow> = incoming_to(a)
            .filter(shares::from_user_id.eq(b.0))
            .filter(shares::state.eq_any(live))
            .order((shares::channel, shares::id))
            .select(share_columns!())
            .load(&mut conn)?;
        let mine: Vec<ShareRow> = shares::table
            .filter(shares::from_user_id.eq(a.0))
            .filter(shares::to_kind.eq("user"))
            .filter(shares::to_user_id.eq(b.0))
            .filter(shares::state.eq_any(live))
            .order((shares::channel, shares::id))
            .select(share_columns!())
            .load(&mut conn)?;
        let conv = |rows: Vec<ShareRow>| rows.into_iter().filter_map(to_share).collect();
        Ok((conv(theirs), conv(mine)))
    }

    /// Clears every ended share (declined, revoked, left) from `user`'s outgoing
    /// (`outgoing`) or incoming list; the number cleared. Nothing else changes: an ended
    /// share carries nothing, and the other side still lists it until they clear it too.
    pub fn clear_ended(&self, user: UserId, outgoing: bool, actor: &str) -> Result<usize, StoreError> {
        use crate::store::schema::share_dismissals;
        let mut conn = self.conn()?;
        let side = if outgoing {
            outgoing_from(user)
        } else {
            incoming_to(user)
        };
        let ids: Vec<i64> = listed(side, user, ShareFilter::Ended)
            .select(shares::id)
            .load(&mut conn)?;
        let at = now();
        conn.transaction(|conn| {
            let mut n = 0;
            for chunk in ids.chunks(500) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|id| {
                        (
                            share_dismissals::share_id.eq(*id),
                            share_dismissals::user_id.eq(user.0),
                            share_dismissals::created_at.eq(at),
                        )
                    })
                    .collect();
                n += on_backend!(conn, |c| diesel::insert_into(share_dismissals::table)
                    .values(&rows)
                    .on_conflict_do_nothing()
                    .execute(c))?;
            }
            if n > 0 {
                let list = if outgoing { "outgoing" } else { "incoming" };
                audit::record(conn, actor, "shares.clear", list, &format!("{n} ended"))?;
            }
            Ok(n)
        })
    }

    /// One page (`per` a page, newest first) of the open public offers `user` has not taken
    /// up, leaving out the user's own and those of users it blocked; and whether more follow.
    pub fn public_offers_for(
        &self,
        user: UserId,
        page: usize,
        per: usize,
    ) -> Result<(Vec<Share>, bool), StoreError> {
        use crate::store::schema::{share_follows, user_blocks};
        let mut conn = self.conn()?;
        use diesel::dsl::{exists, not};
        // NOT EXISTS (an anti-join per offer, by primary key) and the index on
        // (to_kind, state, id): the newest offers are walked until a page is full, rather
        // than every public offer filtered and sorted.
        let blocked = user_blocks::table
            .filter(user_blocks::blocker_id.eq(user.0))
            .filter(user_blocks::blocked_id.eq(shares::from_user_id));
        let taken = share_follows::table
            .filter(share_follows::share_id.eq(shares::id))
            .filter(share_follows::user_id.eq(user.0));
        let rows: Vec<ShareRow> = shares::table
            .filter(shares::to_kind.eq("everyone"))
            .filter(shares::state.eq(ShareState::Accepted.as_str()))
            .filter(shares::from_user_id.ne(user.0))
            .filter(not(exists(blocked)))
            .filter(not(exists(taken)))
            .order(shares::id.desc())
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select(share_columns!())
            .load(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        Ok((rows.into_iter().filter_map(to_share).collect(), more))
    }

    /// Every share in the database.
    pub fn all_shares(&self) -> Result<Vec<Share>, StoreError> {
        let mut conn = self.conn()?;
        shares_in(&mut conn, None)
    }

    /// Shares as listed to people: with the sharer's and grantee's names, looked up in two
    /// queries on one connection.
    pub fn describe_shares(&self, list: Vec<Share>) -> Result<Vec<ShareInfo>, StoreError> {
        let mut user_ids: Vec<i64> = list.iter().map(|s| s.from.0).collect();
        let mut group_ids = Vec::new();
        for s in &list {
            match s.to {
                Grantee::User(u) => user_ids.push(u.0),
                Grantee::Group(g) => group_ids.push(g.0),
                Grantee::Everyone => {}
            }
        }
        user_ids.sort_unstable();
        user_ids.dedup();
        group_ids.sort_unstable();
        group_ids.dedup();
        let mut conn = self.conn()?;
        let users: HashMap<i64, String> = in_chunks(&user_ids, |c| {
            users::table
                .filter(users::id.eq_any(c))
                .select((users::id, users::name))
                .load(&mut conn)
        })?
        .into_iter()
        .collect();
        let groups: HashMap<i64, String> = in_chunks(&group_ids, |c| {
            groups::table
                .filter(groups::id.eq_any(c))
                .select((groups::id, groups::name))
                .load(&mut conn)
        })?
        .into_iter()
        .collect();
        let share_ids: Vec<i64> = list.iter().map(|s| s.id.0).collect();
        let dates: HashMap<i64, (i64, i64)> = in_chunks(&share_ids, |c| {
            shares::table
                .filter(shares::id.eq_any(c))
                .select((shares::id, (shares::created_at, shares::updated_at)))
                .load(&mut conn)
        })?
        .into_iter()
        .collect();
        let name =
            |map: &HashMap<i64, String>, id: i64| map.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
        Ok(list
            .into_iter()
            .map(|share| {
                let to_name = match share.to {
                    Grantee::User(u) => format!("user {}", name(&users, u.0)),
                    Grantee::Group(g) => format!("group {}", name(&groups, g.0)),
                    Grantee::Everyone => "everyone".to_owned(),
                };
                let (created_at, updated_at) = dates.get(&share.id.0).copied().unwrap_or_default();
                ShareInfo {
                    from_name: name(&users, share.from.0),
                    to_name,
                    share,
                    followed: false,
                    created_at,
                    updated_at,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_live_offer_of_the_same_share_is_refused_by_the_database() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let a = store.add_user("a", "a@x.org", "t").unwrap();
        let b = store.add_user("b", "b@x.org", "t").unwrap();
        let c = Channel::new("c").unwrap();
        let to = Grantee::User(b.id);
        let offer = || store.add_share(a.id, &c, to, (ShareKind::Own, false), ShareState::Offered, "t");
        let first = offer().unwrap();
        // As a request that raced past the check would: the index says no.
        assert!(matches!(offer(), Err(StoreError::Conflict(_))));
        assert_eq!(store.live_share(a.id, &c, to).unwrap().map(|s| s.id), Some(first));
        // Once it is no longer live, it may be offered again.
        assert!(
            store
                .transition_share(first, &[ShareState::Offered], ShareState::Revoked, "t")
                .unwrap()
        );
        assert!(store.live_share(a.id, &c, to).unwrap().is_none());
        offer().unwrap();
        // To a group, or to everyone, the same holds.
        let e = || {
            store.add_share(
                a.id,
                &c,
                Grantee::Everyone,
                (ShareKind::Own, false),
                ShareState::Accepted,
                "t",
            )
        };
        e().unwrap();
        assert!(matches!(e(), Err(StoreError::Conflict(_))));
    }

    #[test]
    fn describing_more_shares_than_sqlite_binds_parameters_works() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let shape = crate::store::generate::Shape {
            users: 20_000,
            keys_per_user: 0,
            shares_per_user: 2,
            ..Default::default()
        };
        let made = store.generate(shape, 7).unwrap();
        let all = store.all_shares().unwrap();
        assert_eq!(all.len(), made.shares);
        assert!(
            all.len() * 2 > 32_766,
            "more names to look up than one statement may bind"
        );
        let described = store.describe_shares(all).unwrap();
        assert!(described.iter().all(|d| !d.from_name.starts_with('#')));
    }
}
