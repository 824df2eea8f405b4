//! A synthetic community written straight into the database, for the control-plane
//! benchmark (`hpfriends bench graph`): users with keys, channels, groups, shares of every
//! kind and state, public offers taken up, and a few blocks, in the shape a large honeypot
//! community has. Deterministic for a seed. Rows go in by multi-row inserts in one
//! transaction; the change log the triggers fill meanwhile is folded into the version
//! afterwards (a server starting reads the whole graph anyway).

use std::collections::HashSet;

use diesel::prelude::*;

use super::{AnyConnection, Store, StoreError, now};
use crate::domain::{GroupId, ShareId, UserId};

mod hub;
pub use hub::HUB;

/// The community's shape. The defaults are the benchmark's (see `bench/RESULTS.md`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Users.
    pub users: usize,
    /// Authkeys per user.
    pub keys_per_user: usize,
    /// Channels each user's keys publish and subscribe.
    pub channels_per_user: usize,
    /// Shares each user makes.
    pub shares_per_user: usize,
    /// Distinct channel names in the community.
    pub channel_pool: usize,
    /// One group per this many users, each of 20–200 members.
    pub users_per_group: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            users: 1000,
            keys_per_user: 2,
            channels_per_user: 5,
            shares_per_user: 10,
            channel_pool: 50,
            users_per_group: 100,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Generated {
    /// Users.
    pub users: usize,
    /// Authkeys.
    pub keys: usize,
    /// Shares (any state).
    pub shares: usize,
    /// Accepted shares.
    pub accepted: usize,
    /// Groups.
    pub groups: usize,
    /// Group memberships.
    pub members: usize,
    /// Public offers taken up.
    pub follows: usize,
    /// Blocks.
    pub blocks: usize,
}

/// xorshift64*: enough randomness for a graph, and the same graph for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True with probability `p` percent.
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// Collects rows and writes them as multi-row inserts of `CHUNK` rows.
struct Inserts<'c> {
    conn: &'c mut AnyConnection,
    head: &'static str,
    rows: Vec<String>,
}

impl<'c> Inserts<'c> {
    const CHUNK: usize = 500;

    fn new(conn: &'c mut AnyConnection, head: &'static str) -> Self {
        Self {
            conn,
            head,
            rows: Vec::with_capacity(Self::CHUNK),
        }
    }

    /// `row` holds only numbers and generated names, never outside input.
    fn push(&mut self, row: String) -> QueryResult<()> {
        self.rows.push(row);
        if self.rows.len() >= Self::CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> QueryResult<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        // Both backends skip a row already there (a follow or block drawn twice).
        let sql = format!(
            "{} VALUES {} ON CONFLICT DO NOTHING",
            self.head,
            self.rows.join(",")
        );
        self.rows.clear();
        diesel::sql_query(sql).execute(self.conn)?;
        Ok(())
    }
}

/// The name of channel `i` of the pool.
pub fn channel_name(i: usize) -> String {
    format!("sensor.{i}")
}

impl Store {
    /// Writes a community of `shape` into this (empty) database: users `u0`…, keys
    /// `u0k0`… with secret `s-u0k0`…; see the module doc.
    pub fn generate(&self, shape: Shape, seed: u64) -> Result<Generated, StoreError> {
        let mut conn = self.conn()?;
        let mut rng = Rng(seed | 1);
        let t = now();
        let mut out = Generated::default();
        let postgres = matches!(self.backend(), super::Backend::Postgres);
        conn.transaction(|conn| {
            let first: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "COALESCE((SELECT MAX(id) FROM users), 0)",
            ))
            .get_result(conn)?;
            let uid = |i: usize| first + 1 + i64::try_from(i).unwrap_or(0);
            let mut ins = Inserts::new(
                conn,
                "INSERT INTO users (id, name, email, email_verified, enabled, is_admin, created_at)",
            );
            for i in 0..shape.users {
                ins.push(format!("({}, 'u{i}', 'u{i}@bench.invalid', TRUE, TRUE, FALSE, {t})", uid(i)))?;
            }
            ins.flush()?;
            out.users = shape.users;

            // Each user's channels.
            let pool = shape.channel_pool.max(1);
            let per = shape.channels_per_user.min(pool);
            let channels: Vec<Vec<usize>> = (0..shape.users)
                .map(|_| {
                    let mut mine = Vec::with_capacity(per);
                    while mine.len() < per {
                        let c = rng.below(pool);
                        if !mine.contains(&c) {
                            mine.push(c);
                        }
                    }
                    mine
                })
                .collect();

            let first_key: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "COALESCE((SELECT MAX(id) FROM authkeys), 0)",
            ))
            .get_result(conn)?;
            let mut keys = Inserts::new(
                conn,
                "INSERT INTO authkeys (id, ident, secret, owner_id, enabled, comment, created_at, updated_at)",
            );
            let mut next_key = first_key;
            for i in 0..shape.users {
                for k in 0..shape.keys_per_user {
                    next_key += 1;
                    keys.push(format!(
                        "({next_key}, 'u{i}k{k}', 's-u{i}k{k}', {}, TRUE, '', {t}, {t})",
                        uid(i)
                    ))?;
                }
            }
            keys.flush()?;
            out.keys = shape.users * shape.keys_per_user;
            let mut lists = Inserts::new(
                conn,
                "INSERT INTO authkey_channels (authkey_id, channel, can_publish, can_subscribe)",
            );
            let mut key = first_key;
            for mine in &channels {
                for _ in 0..shape.keys_per_user {
                    key += 1;
                    for c in mine {
                        lists.push(format!("({key}, '{}', TRUE, TRUE)", channel_name(*c)))?;
                    }
                }
            }
            lists.flush()?;

            // Groups of 20–200 (at most everyone), owned by their first member.
            let n_groups = if shape.users >= 20 {
                (shape.users / shape.users_per_group.max(1)).max(1)
            } else {
                0
            };
            let first_group: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "COALESCE((SELECT MAX(id) FROM groups), 0)",
            ))
            .get_result(conn)?;
            let mut group_rows = Vec::new();
            let mut member_rows = Vec::new();
            for g in 0..n_groups {
                let gid = first_group + 1 + i64::try_from(g).unwrap_or(0);
                let size = (20 + rng.below(181)).min(shape.users);
                let mut members: Vec<usize> = Vec::with_capacity(size);
                let mut seen = HashSet::new();
                while members.len() < size {
                    let u = rng.below(shape.users);
                    if seen.insert(u) {
                        members.push(u);
                    }
                }
                group_rows.push(format!("({gid}, 'g{g}', {}, '', {t})", uid(members[0])));
                for (j, u) in members.iter().enumerate() {
                    let (role, state) = if j == 0 {
                        ("owner", "active")
                    } else if rng.percent(90) {
                        ("member", "active")
                    } else {
                        ("member", "invited")
                    };
                    if state == "active" {
                        out.members += 1;
                    }
                    member_rows.push(format!("({gid}, {}, '{role}', '{state}', {t})", uid(*u)));
                }
            }
            let mut groups = Inserts::new(conn, "INSERT INTO groups (id, name, owner_id, description, created_at)");
            for r in group_rows {
                groups.push(r)?;
            }
            groups.flush()?;
            let mut members = Inserts::new(
                conn,
                "INSERT INTO group_members (group_id, user_id, role, state, created_at)",
            );
            for r in member_rows {
                members.push(r)?;
            }
            members.flush()?;
            out.groups = n_groups;

            // Shares: 85% to a user, 10% to a group, 5% public offers; 20% redistribute,
            // 30% onward; 80% accepted, 10% offered, 10% declined or revoked.
            let first_share: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "COALESCE((SELECT MAX(id) FROM shares), 0)",
            ))
            .get_result(conn)?;
            let mut next_share = first_share;
            let mut offers: Vec<i64> = Vec::new();
            let mut live: HashSet<(usize, usize, i64)> = HashSet::new();
            let mut shares = Inserts::new(
                conn,
                "INSERT INTO shares (id, from_user_id, channel, to_kind, to_user_id, to_group_id, \
                 share_type, state, onward, created_at, updated_at)",
            );
            for (i, mine) in channels.iter().enumerate() {
                if shape.users < 2 {
                    break;
                }
                for _ in 0..shape.shares_per_user {
                    let c = mine[rng.below(per)];
                    let roll = rng.below(100);
                    let (kind, to_user, to_group, key) = if roll < 85 || n_groups == 0 {
                        let mut to = rng.below(shape.users);
                        if to == i {
                            to = (to + 1) % shape.users;
                        }
                        ("user", uid(to).to_string(), "NULL".to_owned(), uid(to))
                    } else if roll < 95 {
                        let g = first_group + 1 + i64::try_from(rng.below(n_groups)).unwrap_or(0);
                        ("group", "NULL".to_owned(), g.to_string(), -g)
                    } else {
                        ("everyone", "NULL".to_owned(), "NULL".to_owned(), 0)
                    };
                    if !live.insert((i, c, key)) {
                        continue;
                    }
                    let share_type = if rng.percent(20) { "redistribute" } else { "own" };
                    let onward = if rng.percent(30) { "TRUE" } else { "FALSE" };
                    let s = rng.below(10);
                    let state = match (kind, s) {
                        ("everyone", _) => "accepted",
                        (_, 0) => "offered",
                        (_, 1) => {
                            if rng.percent(50) {
                                "declined"
                            } else {
                                "revoked"
                            }
                        }
                        _ => "accepted",
                    };
                    next_share += 1;
                    if state == "accepted" {
                        out.accepted += 1;
                    }
                    if kind == "everyone" {
                        offers.push(next_share);
                    }
                    shares.push(format!(
                        "({next_share}, {}, '{}', '{kind}', {to_user}, {to_group}, '{share_type}', '{state}', {onward}, {t}, {t})",
                        uid(i),
                        channel_name(c)
                    ))?;
                    out.shares += 1;
                }
            }
            shares.flush()?;

            // Each public offer is taken up by 20 users; 0.5% of users block someone.
            let mut follows = Inserts::new(conn, "INSERT INTO share_follows (share_id, user_id, created_at)");
            for s in offers {
                for _ in 0..20.min(shape.users) {
                    follows.push(format!("({s}, {}, {t})", uid(rng.below(shape.users))))?;
                    out.follows += 1;
                }
            }
            follows.flush()?;
            let mut blocks = Inserts::new(conn, "INSERT INTO user_blocks (blocker_id, blocked_id, created_at)");
            for i in 0..shape.users {
                if shape.users > 1 && rng.below(200) == 0 {
                    let mut b = rng.below(shape.users);
                    if b == i {
                        b = (b + 1) % shape.users;
                    }
                    blocks.push(format!("({}, {}, {t})", uid(i), uid(b)))?;
                    out.blocks += 1;
                }
            }
            blocks.flush()?;

            fold_log(conn, postgres)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Adds the graph's worst cases to a generated community (see [`Worst`]): long
    /// redistribute chains below one head, and a big group with a redistribute share from
    /// the head waiting for its owner's answer, all on `channel`. Chain and group members
    /// are drawn from users `u0`… (`users` of them), chains without repeats while there are
    /// enough users.
    pub fn generate_worst(
        &self,
        w: Worst,
        users: usize,
        channel: &str,
        seed: u64,
    ) -> Result<WorstMade, StoreError> {
        let mut conn = self.conn()?;
        let mut rng = Rng(seed | 1);
        let t = now();
        let postgres = matches!(self.backend(), super::Backend::Postgres);
        let max = |conn: &mut AnyConnection, table: &str| -> Result<i64, StoreError> {
            Ok(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                    "COALESCE((SELECT MAX(id) FROM {table}), 0)"
                )))
                .get_result(conn)?,
            )
        };
        // Users u0… of `generate` are the first ids after whatever came before them.
        let by_name = |conn: &mut AnyConnection, name: &str| -> Result<i64, StoreError> {
            use super::schema::users;
            Ok(users::table
                .filter(users::name.eq(name))
                .select(users::id)
                .first(conn)?)
        };
        conn.transaction(|conn| {
            let u0 = by_name(conn, "u0")?;
            let uid = |i: usize| u0 + i64::try_from(i).unwrap_or(0);
            let first = max(conn, "users")?;
            let made = WorstMade {
                head: UserId(first + 1),
                link: UserId(first + 2),
                owner: UserId(first + 3),
                member: UserId(first + 4),
                hub: UserId(first + 5),
                first_share: ShareId(max(conn, "shares")? + 1),
                group_share: ShareId(0),
                group: GroupId(max(conn, "groups")? + 1),
            };
            let mut ins = Inserts::new(
                conn,
                "INSERT INTO users (id, name, email, email_verified, enabled, is_admin, created_at)",
            );
            for (id, name) in [
                (made.head, WORST_HEAD),
                (made.link, WORST_LINK),
                (made.owner, WORST_OWNER),
                (made.member, WORST_MEMBER),
                (made.hub, WORST_HUB),
            ] {
                ins.push(format!("({}, '{name}', '{name}@bench.invalid', TRUE, TRUE, FALSE, {t})", id.0))?;
            }
            ins.flush()?;
            diesel::sql_query(format!(
                "INSERT INTO groups (id, name, owner_id, description, created_at) VALUES \
                 ({}, 'worst-group', {}, '', {t})",
                made.group.0, made.owner.0
            ))
            .execute(conn)?;
            // Chains: the head's share to the first link, then link to link, every one an
            // accepted redistribute share allowing onward travel. The first chain's first
            // link is the dedicated user `link`.
            let mut pool: Vec<usize> = (0..users).collect();
            let mut next_share = made.first_share.0 - 1;
            let mut shares = Inserts::new(
                conn,
                "INSERT INTO shares (id, from_user_id, channel, to_kind, to_user_id, to_group_id, \
                 share_type, state, onward, created_at, updated_at)",
            );
            let mut push = |shares: &mut Inserts<'_>, from: i64, to: &str, state: &str| {
                next_share += 1;
                let (kind, user, group) = match to.strip_prefix('g') {
                    Some(g) => ("group", "NULL", g),
                    None => ("user", to, "NULL"),
                };
                shares.push(format!(
                    "({next_share}, {from}, '{channel}', '{kind}', {user}, {group}, 'redistribute', '{state}', TRUE, {t}, {t})"
                ))?;
                Ok::<i64, StoreError>(next_share)
            };
            for c in 0..w.chains {
                let mut prev = made.head.0;
                for l in 0..w.chain_length {
                    let next = if c == 0 && l == 0 {
                        made.link.0
                    } else if pool.is_empty() {
                        uid(rng.below(users))
                    } else {
                        uid(pool.swap_remove(rng.below(pool.len())))
                    };
                    push(&mut shares, prev, &next.to_string(), "accepted")?;
                    prev = next;
                }
            }
            let group_share = push(&mut shares, made.head.0, &format!("g{}", made.group.0), "offered")?;
            shares.flush()?;
            let mut members = Inserts::new(
                conn,
                "INSERT INTO group_members (group_id, user_id, role, state, created_at)",
            );
            let g = made.group.0;
            members.push(format!("({g}, {}, 'owner', 'active', {t})", made.owner.0))?;
            members.push(format!("({g}, {}, 'member', 'active', {t})", made.member.0))?;
            for i in 0..w.group_members.min(users) {
                members.push(format!("({g}, {}, 'member', 'active', {t})", uid(i)))?;
            }
            members.flush()?;
            drop(members);
            let mut next_group = made.group.0;
            hub::edges(conn, &mut rng, made.hub.0, users, &uid, &mut next_share, &mut next_group, t)?;
            fold_log(conn, postgres)?;
            Ok(WorstMade {
                group_share: ShareId(group_share),
                ..made
            })
        })
    }
}

/// The graph's worst cases (issue 32): `chains` chains of `chain_length` users below one
/// head, a group of `group_members` users offered a redistribute share by the head, and a
/// hub ([`HUB`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worst {
    /// Chains below the head.
    pub chains: usize,
    /// Users per chain.
    pub chain_length: usize,
    /// Members of the big group (besides its owner and the measured member).
    pub group_members: usize,
}

impl Default for Worst {
    /// The shape the issue measured: 10 chains of 300, a group of 10,000.
    fn default() -> Self {
        Self {
            chains: 10,
            chain_length: 300,
            group_members: 10_000,
        }
    }
}

/// Name of the chains' head.
pub const WORST_HEAD: &str = "chainhead";
/// Name of the first chain's first link.
pub const WORST_LINK: &str = "chainlink";
/// Name of the big group's owner.
pub const WORST_OWNER: &str = "groupowner";
/// Name of the hub (see [`HUB`]).
pub const WORST_HUB: &str = "hub";
/// Name of a member of the big group who receives only through it.
pub const WORST_MEMBER: &str = "groupmember";

/// What [`Store::generate_worst`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstMade {
    /// The chains' head (it also offers the group share).
    pub head: UserId,
    /// The first chain's first link: nothing else brings it the head's data.
    pub link: UserId,
    /// The big group's owner, who answers the group share.
    pub owner: UserId,
    /// A member of the big group that nothing else brings the head's data.
    pub member: UserId,
    /// A user with hundreds of edges of every kind ([`HUB`]).
    pub hub: UserId,
    /// The head's share to `link`.
    pub first_share: ShareId,
    /// The head's redistribute share offered to the group.
    pub group_share: ShareId,
    /// The big group.
    pub group: GroupId,
}

/// Folds the change log the triggers filled while generating into the version, and moves
/// PostgreSQL's sequences past the ids written.
fn fold_log(conn: &mut AnyConnection, postgres: bool) -> Result<(), StoreError> {
    // The triggers logged every row: fold that into the version.
    diesel::sql_query(
        "UPDATE graph_log SET pruned_through = (SELECT COALESCE(MAX(id), pruned_through) FROM graph_changes)",
    )
    .execute(conn)?;
    diesel::sql_query("DELETE FROM graph_changes WHERE id < (SELECT MAX(id) FROM graph_changes)")
        .execute(conn)?;
    // Rows were written with their ids: PostgreSQL's sequences must move past them
    // (SQLite's AUTOINCREMENT follows the largest id by itself).
    if postgres {
        for table in ["users", "authkeys", "groups", "shares"] {
            diesel::sql_query(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            ))
            .execute(conn)?;
        }
    }
    Ok(())
}
