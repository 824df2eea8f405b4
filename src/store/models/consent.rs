//! `share_follows` (who took up which public offer) and `user_blocks` (who blocked whom):
//! the per-user consent the ACL derivation reads beside the shares themselves.

use std::collections::HashSet;

use diesel::prelude::*;

use crate::store::on_backend;

use super::audit;
use crate::domain::{ShareId, UserId};
use crate::store::schema::{share_follows, shares, user_blocks};
use crate::store::{Store, StoreError, now};

impl Store {
    /// `user` takes up public offer `share`; false when they already had.
    pub fn follow_share(&self, share: ShareId, user: UserId, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let at = now();
            let n = on_backend!(conn, |c| diesel::insert_into(share_follows::table)
                .values((
                    share_follows::share_id.eq(share.0),
                    share_follows::user_id.eq(user.0),
                    share_follows::created_at.eq(at),
                ))
                .on_conflict_do_nothing()
                .execute(c))?;
            if n == 1 {
                audit::record(conn, actor, "share.follow", &format!("share#{}", share.0), "")?;
            }
            Ok(n == 1)
        })
    }

    /// `user` stops taking public offer `share`; false when they did not take it.
    pub fn unfollow_share(&self, share: ShareId, user: UserId, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::delete(
                share_follows::table
                    .filter(share_follows::share_id.eq(share.0))
                    .filter(share_follows::user_id.eq(user.0)),
            )
            .execute(conn)?;
            if n == 1 {
                audit::record(conn, actor, "share.unfollow", &format!("share#{}", share.0), "")?;
            }
            Ok(n == 1)
        })
    }

    /// The public offers `user` took up.
    pub fn follows_of(&self, user: UserId) -> Result<HashSet<ShareId>, StoreError> {
        let mut conn = self.conn()?;
        Ok(share_follows::table
            .filter(share_follows::user_id.eq(user.0))
            .select(share_follows::share_id)
            .load::<i64>(&mut conn)?
            .into_iter()
            .map(ShareId)
            .collect())
    }

    /// `blocker` blocks `blocked`: recorded, and every share `blocked` offered to
    /// `blocker` and not yet answered is declined in the same transaction. False when the
    /// block existed.
    pub fn block_user(&self, blocker: UserId, blocked: UserId, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let at = now();
            let n = on_backend!(conn, |c| diesel::insert_into(user_blocks::table)
                .values((
                    user_blocks::blocker_id.eq(blocker.0),
                    user_blocks::blocked_id.eq(blocked.0),
                    user_blocks::created_at.eq(at),
                ))
                .on_conflict_do_nothing()
                .execute(c))?;
            let declined = diesel::update(
                shares::table
                    .filter(shares::from_user_id.eq(blocked.0))
                    .filter(shares::to_user_id.eq(blocker.0))
                    .filter(shares::state.eq("offered")),
            )
            .set((shares::state.eq("declined"), shares::updated_at.eq(now())))
            .execute(conn)?;
            if n == 1 {
                audit::record(
                    conn,
                    actor,
                    "user.block",
                    &format!("user#{}", blocked.0),
                    &format!("{declined} offers declined"),
                )?;
            }
            Ok(n == 1)
        })
    }

    /// `blocker` lifts a block; false when there was none.
    pub fn unblock_user(&self, blocker: UserId, blocked: UserId, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::delete(
                user_blocks::table
                    .filter(user_blocks::blocker_id.eq(blocker.0))
                    .filter(user_blocks::blocked_id.eq(blocked.0)),
            )
            .execute(conn)?;
            if n == 1 {
                audit::record(conn, actor, "user.unblock", &format!("user#{}", blocked.0), "")?;
            }
            Ok(n == 1)
        })
    }

    /// Whom `blocker` blocked.
    pub fn blocked_by(&self, blocker: UserId) -> Result<HashSet<UserId>, StoreError> {
        let mut conn = self.conn()?;
        Ok(user_blocks::table
            .filter(user_blocks::blocker_id.eq(blocker.0))
            .select(user_blocks::blocked_id)
            .load::<i64>(&mut conn)?
            .into_iter()
            .map(UserId)
            .collect())
    }

    /// Whether `blocker` blocked `blocked`.
    pub fn is_blocked(&self, blocker: UserId, blocked: UserId) -> Result<bool, StoreError> {
        Ok(self.blocked_by(blocker)?.contains(&blocked))
    }
}
