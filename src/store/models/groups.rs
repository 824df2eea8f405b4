//! `groups` and `group_members`: invited → active; members leave, owners remove.

use diesel::prelude::*;

use crate::domain::listing::GroupInfo;

use super::audit;
use crate::domain::model::{GroupRole, MemberState};
use crate::domain::{GroupId, UserId};
use crate::store::schema::{group_members, groups, users};
use crate::store::{Store, StoreError, conflict, now};

/// Members listed with each group (the rest a page at a time: [`Store::group_members_page`]).
pub const MEMBERS_LISTED: usize = 50;

/// A stored (role, state); the schema's CHECKs allow nothing else, so an unknown value is
/// left out and logged rather than guessed.
fn place(role: &str, state: &str) -> Option<(GroupRole, MemberState)> {
    match (role.parse(), state.parse()) {
        (Ok(r), Ok(s)) => Some((r, s)),
        _ => {
            tracing::warn!(
                role,
                state,
                "skipping a group membership with an unknown role or state"
            );
            None
        }
    }
}

impl Store {
    /// Creates a group owned (and joined) by `owner`.
    pub fn create_group(
        &self,
        owner: UserId,
        name: &str,
        description: &str,
        actor: &str,
    ) -> Result<GroupId, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id: i64 = diesel::insert_into(groups::table)
                .values((
                    groups::name.eq(name),
                    groups::owner_id.eq(owner.0),
                    groups::description.eq(description),
                    groups::created_at.eq(now()),
                ))
                .returning(groups::id)
                .get_result(conn)
                .map_err(|e| conflict(e, || format!("group name {name:?} is already taken")))?;
            diesel::insert_into(group_members::table)
                .values((
                    group_members::group_id.eq(id),
                    group_members::user_id.eq(owner.0),
                    group_members::role.eq(GroupRole::Owner.as_str()),
                    group_members::state.eq(MemberState::Active.as_str()),
                    group_members::created_at.eq(now()),
                ))
                .execute(conn)?;
            audit::record(conn, actor, "group.create", name, description)?;
            Ok(GroupId(id))
        })
    }

    /// The group called `name`: (id, owner).
    pub fn group_by_name(&self, name: &str) -> Result<Option<(GroupId, UserId)>, StoreError> {
        let mut conn = self.conn()?;
        Ok(groups::table
            .filter(crate::store::lower(groups::name).eq(name.to_lowercase()))
            .select((groups::id, groups::owner_id))
            .first::<(i64, i64)>(&mut conn)
            .optional()?
            .map(|(g, o)| (GroupId(g), UserId(o))))
    }

    /// The name of group `id`, if it exists.
    pub fn group_name(&self, id: GroupId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        Ok(groups::table
            .find(id.0)
            .select(groups::name)
            .first(&mut conn)
            .optional()?)
    }

    /// A user's (role, state) in a group, if any.
    pub fn membership(
        &self,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<(GroupRole, MemberState)>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<(String, String)> = group_members::table
            .find((group.0, user.0))
            .select((group_members::role, group_members::state))
            .first(&mut conn)
            .optional()?;
        Ok(row.and_then(|(r, s)| place(&r, &s)))
    }

    /// Invites `user` into `group`; already a member or invited is a conflict.
    pub fn invite_member(
        &self,
        group: GroupId,
        user: UserId,
        by: UserId,
        actor: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            diesel::insert_into(group_members::table)
                .values((
                    group_members::group_id.eq(group.0),
                    group_members::user_id.eq(user.0),
                    group_members::role.eq(GroupRole::Member.as_str()),
                    group_members::state.eq(MemberState::Invited.as_str()),
                    group_members::invited_by.eq(by.0),
                    group_members::created_at.eq(now()),
                ))
                .execute(conn)
                .map_err(|e| conflict(e, || "already a member or invited".to_owned()))?;
            audit::record(conn, actor, "group.invite", subject, "")?;
            Ok(())
        })
    }

    /// How many invitations `by` sent that wait for an answer, and how many groups `by`
    /// owns (for the per-user bounds).
    pub fn open_invitations_and_groups_of(&self, by: UserId) -> Result<(usize, usize), StoreError> {
        let mut conn = self.conn()?;
        let invited: i64 = group_members::table
            .filter(group_members::invited_by.eq(by.0))
            .filter(group_members::state.eq(MemberState::Invited.as_str()))
            .count()
            .get_result(&mut conn)?;
        let owned: i64 = groups::table
            .filter(groups::owner_id.eq(by.0))
            .count()
            .get_result(&mut conn)?;
        Ok((
            usize::try_from(invited).unwrap_or(0),
            usize::try_from(owned).unwrap_or(0),
        ))
    }

    /// Moves an invited member to active; false when there was no such invitation.
    pub fn activate_member(
        &self,
        group: GroupId,
        user: UserId,
        actor: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::update(
                group_members::table
                    .find((group.0, user.0))
                    .filter(group_members::state.eq(MemberState::Invited.as_str())),
            )
            .set(group_members::state.eq(MemberState::Active.as_str()))
            .execute(conn)?;
            if n == 1 {
                audit::record(conn, actor, "group.accept", subject, "")?;
            }
            Ok(n == 1)
        })
    }

    /// Removes a non-owner membership (leave, decline, remove); false when there was none.
    pub fn remove_member(
        &self,
        group: GroupId,
        user: UserId,
        actor: &str,
        action: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::delete(
                group_members::table
                    .find((group.0, user.0))
                    .filter(group_members::role.ne(GroupRole::Owner.as_str())),
            )
            .execute(conn)?;
            if n == 1 {
                audit::record(conn, actor, action, subject, "")?;
            }
            Ok(n == 1)
        })
    }

    /// Every group's id and name.
    pub fn all_groups(&self) -> Result<Vec<(GroupId, String)>, StoreError> {
        let mut conn = self.conn()?;
        Ok(groups::table
            .select((groups::id, groups::name))
            .load::<(i64, String)>(&mut conn)?
            .into_iter()
            .map(|(id, n)| (GroupId(id), n))
            .collect())
    }

    /// Page `page` (`per` a page, by name) of a group's members and invitees, and whether
    /// more follow.
    pub fn group_members_page(
        &self,
        group: GroupId,
        page: usize,
        per: usize,
    ) -> Result<(Vec<crate::domain::listing::Member>, bool), StoreError> {
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, String)> = group_members::table
            .inner_join(users::table.on(users::id.eq(group_members::user_id)))
            .filter(group_members::group_id.eq(group.0))
            .order(users::name)
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select((users::name, group_members::role, group_members::state))
            .load(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        Ok((
            rows.into_iter()
                .filter_map(|(n, r, st)| place(&r, &st).map(|(r, st)| (n, r, st)))
                .collect(),
            more,
        ))
    }

    /// The groups `user` belongs to or is invited to, with their first members.
    pub fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        Ok(self.groups_where(user, None)?.0)
    }

    /// Page `page` (`per` a page, by name) of [`Self::groups_of`], and whether more follow.
    pub fn groups_page(
        &self,
        user: UserId,
        page: usize,
        per: usize,
    ) -> Result<(Vec<GroupInfo>, bool), StoreError> {
        self.groups_where(user, Some((page, per)))
    }

    fn groups_where(
        &self,
        user: UserId,
        window: Option<(usize, usize)>,
    ) -> Result<(Vec<GroupInfo>, bool), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            // A subquery, not a list of ids: nothing binds a parameter per membership.
            let mine = group_members::table
                .filter(group_members::user_id.eq(user.0))
                .select(group_members::group_id);
            let mut q = groups::table
                .filter(groups::id.eq_any(mine))
                .order(groups::name)
                .select((groups::id, groups::name, groups::owner_id, groups::description))
                .into_boxed();
            if let Some((page, per)) = window {
                q = q
                    .limit(crate::store::page_limit(per))
                    .offset(crate::store::page_offset(page, per));
            }
            let mut rows: Vec<(i64, String, i64, String)> = q.load(conn)?;
            let more = match window {
                Some((_, per)) => {
                    let (page, more) = crate::store::page_rows(rows, per);
                    rows = page;
                    more
                }
                None => false,
            };
            let mut out = Vec::new();
            for (id, name, owner_id, description) in rows {
                let owner: String = users::table.find(owner_id).select(users::name).first(conn)?;
                let listed = || {
                    group_members::table
                        .inner_join(users::table.on(users::id.eq(group_members::user_id)))
                        .filter(group_members::group_id.eq(id))
                        .select((users::name, group_members::role, group_members::state))
                };
                let mut members: Vec<(String, String, String)> = listed()
                    .order(users::name)
                    .limit(i64::try_from(MEMBERS_LISTED).unwrap_or(i64::MAX))
                    .load(conn)?;
                // The viewer's own place is always there, however far down the list.
                let mine: Option<(String, String, String)> = listed()
                    .filter(group_members::user_id.eq(user.0))
                    .first(conn)
                    .optional()?;
                if let Some(m) = mine.filter(|m| !members.contains(m)) {
                    members.push(m);
                    members.sort();
                }
                let counts: Vec<(String, i64)> = group_members::table
                    .filter(group_members::group_id.eq(id))
                    .group_by(group_members::state)
                    .select((group_members::state, diesel::dsl::count_star()))
                    .load(conn)?;
                let count = |state: Option<MemberState>| -> usize {
                    counts
                        .iter()
                        .filter(|(s, _)| state.is_none_or(|st| st.as_str() == s))
                        .map(|(_, n)| usize::try_from(*n).unwrap_or(0))
                        .sum()
                };
                out.push(GroupInfo {
                    id: GroupId(id),
                    name,
                    owner,
                    description,
                    members: members
                        .into_iter()
                        .filter_map(|(n, r, st)| place(&r, &st).map(|(r, st)| (n, r, st)))
                        .collect(),
                    member_count: count(None),
                    active_count: count(Some(MemberState::Active)),
                });
            }
            Ok((out, more))
        })
    }
}
