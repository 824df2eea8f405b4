//! `channel_traffic` and `access_requests`: the channel catalogue. Traffic is added by each
//! node's broker in 5-minute buckets, off the hot path; requests for access are asked by a
//! researcher and answered by the publisher.

use std::collections::HashMap;

use diesel::prelude::*;

use super::audit;
use crate::config::limits::{TRAFFIC_BUCKET_SECS, TRAFFIC_KEEP_SECS};
use crate::domain::listing::{AccessRequest, RequestState, Traffic};
use crate::domain::{RequestId, ShareId, UserId};
use crate::store::on_backend;
use crate::store::schema::{
    access_requests, authkey_channels, authkeys, channel_traffic, user_blocks, users,
};
use crate::store::{Store, StoreError, now};
use crate::wire::Channel;

/// The start of the traffic bucket holding unix second `at`.
pub fn bucket_of(at: i64) -> i64 {
    at - at.rem_euclid(TRAFFIC_BUCKET_SECS)
}

/// Which publishers `viewer` may see: enabled, and neither side blocking the other.
macro_rules! visible_publishers {
    ($viewer:expr) => {{
        use diesel::dsl::{exists, not};
        let v: i64 = $viewer;
        let blocks_viewer = user_blocks::table
            .filter(user_blocks::blocker_id.eq(authkeys::owner_id))
            .filter(user_blocks::blocked_id.eq(v));
        let blocked_by_viewer = user_blocks::table
            .filter(user_blocks::blocker_id.eq(v))
            .filter(user_blocks::blocked_id.eq(authkeys::owner_id));
        authkey_channels::table
            .inner_join(authkeys::table.inner_join(users::table))
            .filter(authkey_channels::can_publish.eq(true))
            .filter(authkeys::enabled.eq(true))
            .filter(users::enabled.eq(true))
            .filter(not(exists(blocks_viewer)))
            .filter(not(exists(blocked_by_viewer)))
    }};
}

type RequestRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    Option<i64>,
    i64,
    Option<i64>,
);

impl Store {
    /// Adds each channel's traffic to bucket `bucket` (creating its row), and deletes
    /// traffic older than [`TRAFFIC_KEEP_SECS`].
    pub fn add_channel_traffic(&self, bucket: i64, rows: &[(Channel, Traffic)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        // Off every hot path: it waits out a long writer rather than failing.
        crate::store::connection::patiently(&mut conn, |conn| {
            conn.transaction(|conn| {
                for (channel, t) in rows {
                    on_backend!(conn, |c| diesel::insert_into(channel_traffic::table)
                        .values((
                            channel_traffic::channel.eq(channel.as_str()),
                            channel_traffic::bucket.eq(bucket),
                        ))
                        .on_conflict_do_nothing()
                        .execute(c))?;
                    diesel::update(channel_traffic::table.find((channel.as_str(), bucket)))
                        .set((
                            channel_traffic::messages.eq(channel_traffic::messages + t.messages),
                            channel_traffic::bytes.eq(channel_traffic::bytes + t.bytes),
                            channel_traffic::deliveries.eq(channel_traffic::deliveries + t.deliveries),
                        ))
                        .execute(conn)?;
                }
                diesel::delete(
                    channel_traffic::table.filter(channel_traffic::bucket.lt(bucket - TRAFFIC_KEEP_SECS)),
                )
                .execute(conn)?;
                Ok(())
            })
        })
    }

    /// The traffic of each of `channels` since unix second `since`, oldest bucket first.
    pub fn channel_traffic(
        &self,
        channels: &[Channel],
        since: i64,
    ) -> Result<HashMap<Channel, Vec<Traffic>>, StoreError> {
        let mut conn = self.conn()?;
        let names: Vec<&str> = channels.iter().map(Channel::as_str).collect();
        let mut out: HashMap<Channel, Vec<Traffic>> = HashMap::new();
        for chunk in names.chunks(500) {
            let rows: Vec<(String, i64, i64, i64, i64)> = channel_traffic::table
                .filter(channel_traffic::channel.eq_any(chunk))
                .filter(channel_traffic::bucket.ge(since))
                .order((channel_traffic::channel, channel_traffic::bucket))
                .select((
                    channel_traffic::channel,
                    channel_traffic::bucket,
                    channel_traffic::messages,
                    channel_traffic::bytes,
                    channel_traffic::deliveries,
                ))
                .load(&mut conn)?;
            for (c, bucket, messages, bytes, deliveries) in rows {
                let Ok(c) = Channel::new(&c) else { continue };
                out.entry(c).or_default().push(Traffic {
                    bucket,
                    messages,
                    bytes,
                    deliveries,
                });
            }
        }
        Ok(out)
    }

    /// The user named `name` (any case) with a key that publishes on `channel`, if `viewer`
    /// may see them (enabled, and neither blocking the other).
    pub fn channel_publisher(
        &self,
        viewer: UserId,
        channel: &Channel,
        name: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<i64> = visible_publishers!(viewer.0)
            .filter(authkey_channels::channel.eq(channel.as_str()))
            .filter(crate::store::lower(users::name).eq(name.to_lowercase()))
            .select(users::id)
            .first(&mut conn)
            .optional()?;
        Ok(row.map(UserId))
    }

    /// Records `from`'s request to `to` for `channel`; a conflict when one is open already.
    pub fn add_access_request(
        &self,
        from: UserId,
        to: UserId,
        channel: &Channel,
        note: &str,
        actor: &str,
    ) -> Result<RequestId, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id: i64 = diesel::insert_into(access_requests::table)
                .values((
                    access_requests::from_user_id.eq(from.0),
                    access_requests::to_user_id.eq(to.0),
                    access_requests::channel.eq(channel.as_str()),
                    access_requests::note.eq(note),
                    access_requests::state.eq(RequestState::Open.as_str()),
                    access_requests::created_at.eq(now()),
                ))
                .returning(access_requests::id)
                .get_result(conn)
                .map_err(|e| {
                    crate::store::conflict(e, || {
                        format!("you already asked for {channel}; it waits for an answer")
                    })
                })?;
            audit::record(
                conn,
                actor,
                "access.request",
                &format!("request#{id}"),
                channel.as_str(),
            )?;
            Ok(RequestId(id))
        })
    }

    /// How many of `from`'s requests wait for an answer.
    pub fn open_requests_from(&self, from: UserId) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let n: i64 = access_requests::table
            .filter(access_requests::from_user_id.eq(from.0))
            .filter(access_requests::state.eq(RequestState::Open.as_str()))
            .count()
            .get_result(&mut conn)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// How many requests for access wait for `to`'s answer (the menu's count).
    pub fn open_requests_to(&self, to: UserId) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let n: i64 = access_requests::table
            .filter(access_requests::to_user_id.eq(to.0))
            .filter(access_requests::state.eq(RequestState::Open.as_str()))
            .count()
            .get_result(&mut conn)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// One request.
    pub fn access_request(&self, id: RequestId) -> Result<Option<AccessRequest>, StoreError> {
        let q = access_requests::table
            .filter(access_requests::id.eq(id.0))
            .into_boxed();
        Ok(self.requests_where(q, 0, 1)?.0.into_iter().next())
    }

    /// Page `page` (`per` a page, open ones first, then newest) of the requests made to
    /// (`incoming`) or by `user`; and whether more follow.
    pub fn access_requests_page(
        &self,
        user: UserId,
        incoming: bool,
        page: usize,
        per: usize,
    ) -> Result<(Vec<AccessRequest>, bool), StoreError> {
        let q = if incoming {
            access_requests::table
                .filter(access_requests::to_user_id.eq(user.0))
                .into_boxed()
        } else {
            access_requests::table
                .filter(access_requests::from_user_id.eq(user.0))
                .into_boxed()
        };
        self.requests_where(q, page, per)
    }

    /// The latest requests `from` made for `channel` (at most 100), open ones first.
    pub fn access_requests_for(
        &self,
        from: UserId,
        channel: &Channel,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let q = access_requests::table
            .filter(access_requests::from_user_id.eq(from.0))
            .filter(access_requests::channel.eq(channel.as_str().to_owned()))
            .into_boxed();
        Ok(self.requests_where(q, 0, 100)?.0)
    }

    fn requests_where(
        &self,
        q: access_requests::BoxedQuery<'static, crate::store::connection::MultiBackend>,
        page: usize,
        per: usize,
    ) -> Result<(Vec<AccessRequest>, bool), StoreError> {
        let mut conn = self.conn()?;
        let rows: Vec<RequestRow> = q
            .order((
                access_requests::state.eq(RequestState::Open.as_str()).desc(),
                access_requests::id.desc(),
            ))
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select((
                access_requests::id,
                access_requests::from_user_id,
                access_requests::to_user_id,
                access_requests::channel,
                access_requests::note,
                access_requests::state,
                access_requests::share_id,
                access_requests::created_at,
                access_requests::answered_at,
            ))
            .load(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        let mut ids: Vec<i64> = rows.iter().flat_map(|r| [r.1, r.2]).collect();
        ids.sort_unstable();
        ids.dedup();
        let names: HashMap<i64, String> = users::table
            .filter(users::id.eq_any(&ids))
            .select((users::id, users::name))
            .load::<(i64, String)>(&mut conn)?
            .into_iter()
            .collect();
        let name = |id: i64| names.get(&id).cloned().unwrap_or_default();
        let list = rows
            .into_iter()
            .filter_map(
                |(id, from, to, channel, note, state, share, created_at, answered_at)| {
                    Some(AccessRequest {
                        id: RequestId(id),
                        from: UserId(from),
                        from_name: name(from),
                        to: UserId(to),
                        to_name: name(to),
                        channel: Channel::new(&channel).ok()?,
                        note,
                        state: RequestState::parse(&state)?,
                        share: share.map(ShareId),
                        created_at,
                        answered_at,
                    })
                },
            )
            .collect();
        Ok((list, more))
    }

    /// Moves an open request to `to` (with the share that granted it); false when it was
    /// no longer open.
    pub fn answer_access_request(
        &self,
        id: RequestId,
        to: RequestState,
        share: Option<ShareId>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::update(
                access_requests::table
                    .find(id.0)
                    .filter(access_requests::state.eq(RequestState::Open.as_str())),
            )
            .set((
                access_requests::state.eq(to.as_str()),
                access_requests::share_id.eq(share.map(|s| s.0)),
                access_requests::answered_at.eq(now()),
            ))
            .execute(conn)?;
            if n == 1 {
                audit::record(
                    conn,
                    actor,
                    &format!("access.{}", to.as_str()),
                    &format!("request#{}", id.0),
                    "",
                )?;
            }
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_their_width() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(299), 0);
        assert_eq!(bucket_of(300), 300);
        assert_eq!(bucket_of(1_700_000_123) % TRAFFIC_BUCKET_SECS, 0);
    }
}
