//! The website's side of `users` (password hashes, verified emails), `tokens` (email links,
//! API tokens), `web_sessions` and `server_secrets`.
//!
//! Only hashes of tokens and session ids are stored: the raw values exist in the mail, the
//! cookie or the API client, never in the database. Consuming a one-time token is one
//! conditional UPDATE, so a link clicked twice at once works once.

use diesel::prelude::*;

use crate::store::on_backend;
use sha2::{Digest, Sha256};

use super::audit;
use crate::domain::UserId;
use crate::domain::listing::User;
use crate::store::schema::{groups, server_secrets, tokens, users, web_sessions};
use crate::store::{Backend, Store, StoreError, conflict, lower, now, page_limit, page_offset, page_rows};

/// What a one-time or standing token is for (the `tokens.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The link in a sign-up or email-change mail; the payload is the address to confirm.
    VerifyEmail,
    /// The link in a password-reset mail.
    PasswordReset,
    /// A standing API token (`Authorization: Bearer …`).
    Api,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::Api => "api",
        }
    }
}

/// A user with what logging in needs.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user.
    pub user: User,
    /// Argon2id PHC string; `None` for users made by the CLI who never set a password.
    pub password_hash: Option<String>,
    /// Whether the address was confirmed through the mailed link.
    pub email_verified: bool,
}

/// Uses up every outstanding token of `user` (API tokens, reset and email links) and ends
/// every login session but `keep`: what a credential change leaves valid is nothing minted
/// before it.
fn void_credentials(
    conn: &mut crate::store::connection::AnyConnection,
    user: UserId,
    keep: Option<&str>,
) -> QueryResult<()> {
    diesel::update(
        tokens::table
            .filter(tokens::user_id.eq(user.0))
            .filter(tokens::used_at.is_null()),
    )
    .set(tokens::used_at.eq(now()))
    .execute(conn)?;
    let keep = keep.map(token_hash).unwrap_or_default();
    diesel::delete(
        web_sessions::table
            .filter(web_sessions::user_id.eq(user.0))
            .filter(web_sessions::token_hash.ne(keep)),
    )
    .execute(conn)?;
    Ok(())
}

/// Length of a token from [`random_token`].
pub const TOKEN_LEN: usize = 43;

/// A fresh random token (256 bits, URL-safe base64: 43 characters, short enough that a
/// mailed link stays on one line) for links, cookies and API clients.
pub fn random_token() -> Result<String, StoreError> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| StoreError::Open {
        url: "randomness".into(),
        message: e.to_string(),
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// What is stored for a token: its SHA-256, so the table alone opens nothing.
pub fn token_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

type UserCols = (i64, String, String, bool, i64, Option<String>, bool);

fn account(r: UserCols) -> Account {
    let (id, name, email, enabled, created_at, password_hash, email_verified) = r;
    Account {
        user: User {
            id: UserId(id),
            name,
            email,
            enabled,
            created_at,
        },
        password_hash,
        email_verified,
    }
}

macro_rules! account_columns {
    () => {
        (
            users::id,
            users::name,
            users::email,
            users::enabled,
            users::created_at,
            users::password_hash,
            users::email_verified,
        )
    };
}

/// A name read by raw SQL.
#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// Creates an account with a password, not yet verified. A taken name or address is a
    /// [`StoreError::Conflict`] that does not say which (no probing for addresses).
    pub fn create_account(&self, name: &str, email: &str, password_hash: &str) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id: i64 = diesel::insert_into(users::table)
                .values((
                    users::name.eq(name),
                    users::email.eq(email),
                    users::password_hash.eq(password_hash),
                    users::created_at.eq(now()),
                ))
                .returning(users::id)
                .get_result(conn)
                .map_err(|e| {
                    conflict(e, || {
                        "that user name or email address is already registered".into()
                    })
                })?;
            audit::record(conn, name, "user.signup", name, "")?;
            let row: UserCols = users::table.find(id).select(account_columns!()).first(conn)?;
            Ok(account(row).user)
        })
    }

    /// The account whose name or email is `login`.
    pub fn account_by_login(&self, login: &str) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .filter(
                lower(users::name)
                    .eq(login.to_lowercase())
                    .or(lower(users::email).eq(login.to_lowercase())),
            )
            .select(account_columns!())
            .first::<UserCols>(&mut conn)
            .optional()?
            .map(account))
    }

    /// The account registered with `email` (compared without regard to case).
    pub fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .filter(lower(users::email).eq(email.to_lowercase()))
            .select(account_columns!())
            .first::<UserCols>(&mut conn)
            .optional()?
            .map(account))
    }

    /// The account with id `id`.
    pub fn account(&self, id: UserId) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .find(id.0)
            .select(account_columns!())
            .first::<UserCols>(&mut conn)
            .optional()?
            .map(account))
    }

    /// Replaces a password hash and ends everything minted for the account before: every
    /// login session but `keep` (none after a reset), every API token, every outstanding
    /// reset link and every pending email-change link. Whoever knew the old password, or
    /// held anything minted with it (an email change started with it included), holds
    /// nothing now.
    pub fn set_password(&self, user: UserId, hash: &str, keep: Option<&str>) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            diesel::update(users::table.find(user.0))
                .set(users::password_hash.eq(hash))
                .execute(conn)?;
            void_credentials(conn, user, keep)?;
            let name: String = users::table.find(user.0).select(users::name).first(conn)?;
            audit::record(conn, &name, "user.password", &name, "")?;
            Ok(())
        })
    }

    /// Marks `email` confirmed for `user`, making it the account's address if it was not.
    /// A *changed* address ends everything minted for the account before, as a new
    /// password does: reset links mailed to the old address, other pending links, API
    /// tokens and every login session (a link never makes one, so all are ended).
    pub fn confirm_email(&self, user: UserId, email: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let old: String = users::table.find(user.0).select(users::email).first(conn)?;
            diesel::update(users::table.find(user.0))
                .set((users::email.eq(email), users::email_verified.eq(true)))
                .execute(conn)
                .map_err(|e| conflict(e, || "that email address is already registered".into()))?;
            if !old.eq_ignore_ascii_case(email) {
                void_credentials(conn, user, None)?;
            }
            let name: String = users::table.find(user.0).select(users::name).first(conn)?;
            audit::record(conn, &name, "user.email", &name, email)?;
            Ok(())
        })
    }

    /// Gives `user` the address `email` on an operator's word (an imported user has a
    /// placeholder): unconfirmed until the user opens a link mailed there (`user invite`),
    /// and a changed address ends what was minted for the old one, as a confirmed change does.
    pub fn set_email(&self, user: UserId, email: &str, actor: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let (name, old): (String, String) = users::table
                .find(user.0)
                .select((users::name, users::email))
                .first(conn)?;
            if old == email {
                return Ok(());
            }
            diesel::update(users::table.find(user.0))
                .set((users::email.eq(email), users::email_verified.eq(false)))
                .execute(conn)
                .map_err(|e| conflict(e, || format!("the address {email:?} belongs to another user")))?;
            void_credentials(conn, user, None)?;
            audit::record(conn, actor, "user.email", &name, email)?;
            Ok(())
        })
    }

    /// Stores a new token for `user` and returns its raw value (shown or mailed once).
    pub fn create_token(
        &self,
        kind: TokenKind,
        user: UserId,
        payload: &str,
        ttl_secs: Option<i64>,
    ) -> Result<String, StoreError> {
        let raw = random_token()?;
        let mut conn = self.conn()?;
        let at = now();
        conn.transaction(|conn| {
            // A new mailed link voids the older ones of its kind: only the newest works. A
            // reset link's payload is the address that asked for it, and a new one voids
            // only those asked from the same address, so that a stranger asking cannot
            // void the link the owner is about to open.
            if kind == TokenKind::PasswordReset {
                diesel::update(
                    tokens::table
                        .filter(tokens::user_id.eq(user.0))
                        .filter(tokens::kind.eq(kind.as_str()))
                        .filter(tokens::payload.eq(payload))
                        .filter(tokens::used_at.is_null()),
                )
                .set(tokens::used_at.eq(at))
                .execute(conn)?;
            } else if kind != TokenKind::Api {
                diesel::update(
                    tokens::table
                        .filter(tokens::user_id.eq(user.0))
                        .filter(tokens::kind.eq(kind.as_str()))
                        .filter(tokens::used_at.is_null()),
                )
                .set(tokens::used_at.eq(at))
                .execute(conn)?;
            }
            diesel::insert_into(tokens::table)
                .values((
                    tokens::token_hash.eq(token_hash(&raw)),
                    tokens::kind.eq(kind.as_str()),
                    tokens::user_id.eq(user.0),
                    tokens::payload.eq(payload),
                    tokens::created_at.eq(at),
                    tokens::expires_at.eq(ttl_secs.map(|t| at + t)),
                ))
                .execute(conn)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(raw)
    }

    /// The user a one-time token would be used up for, without using it: lets a handler
    /// refuse a dead link before it spends anything (a password hash) on the request.
    pub fn peek_token(&self, kind: TokenKind, raw: &str) -> Result<Option<UserId>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<Option<i64>> = tokens::table
            .filter(tokens::token_hash.eq(token_hash(raw)))
            .filter(tokens::kind.eq(kind.as_str()))
            .filter(tokens::used_at.is_null())
            .filter(tokens::expires_at.is_null().or(tokens::expires_at.gt(now())))
            .select(tokens::user_id)
            .first(&mut conn)
            .optional()?;
        Ok(row.flatten().map(UserId))
    }

    /// A one-time token that was used already, with its user and payload (a confirmation
    /// link opened a second time, as mail scanners do, is answered as done, not expired).
    pub fn used_token(&self, kind: TokenKind, raw: &str) -> Result<Option<(UserId, String)>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<(Option<i64>, String)> = tokens::table
            .filter(tokens::token_hash.eq(token_hash(raw)))
            .filter(tokens::kind.eq(kind.as_str()))
            .filter(tokens::used_at.is_not_null())
            .select((tokens::user_id, tokens::payload))
            .first(&mut conn)
            .optional()?;
        Ok(row.and_then(|(u, p)| u.map(|u| (UserId(u), p))))
    }

    /// Uses up a one-time token: its user and payload, or `None` when it is unknown,
    /// expired or already used.
    pub fn consume_token(&self, kind: TokenKind, raw: &str) -> Result<Option<(UserId, String)>, StoreError> {
        let mut conn = self.conn()?;
        let at = now();
        let row: Option<(Option<i64>, String)> = diesel::update(
            tokens::table
                .filter(tokens::token_hash.eq(token_hash(raw)))
                .filter(tokens::kind.eq(kind.as_str()))
                .filter(tokens::used_at.is_null())
                .filter(tokens::expires_at.is_null().or(tokens::expires_at.gt(at))),
        )
        .set(tokens::used_at.eq(at))
        .returning((tokens::user_id, tokens::payload))
        .get_result(&mut conn)
        .optional()?;
        Ok(row.and_then(|(u, p)| u.map(|u| (UserId(u), p))))
    }

    /// The enabled user a standing API token belongs to; stamps the token's last use (at
    /// most once a minute, so the API's reads do not each write).
    pub fn api_token_user(&self, raw: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn()?;
        let hash = token_hash(raw);
        let row: Option<UserCols> = tokens::table
            .inner_join(users::table.on(tokens::user_id.eq(users::id.nullable())))
            .filter(tokens::token_hash.eq(&hash))
            .filter(tokens::kind.eq(TokenKind::Api.as_str()))
            .filter(tokens::used_at.is_null())
            .filter(users::enabled.eq(true))
            .select(account_columns!())
            .first(&mut conn)
            .optional()?;
        if row.is_some() {
            let at = now();
            diesel::update(
                tokens::table.filter(tokens::token_hash.eq(&hash)).filter(
                    tokens::last_used_at
                        .is_null()
                        .or(tokens::last_used_at.lt(at - 60)),
                ),
            )
            .set(tokens::last_used_at.eq(at))
            .execute(&mut conn)?;
        }
        Ok(row.map(|r| account(r).user))
    }

    /// `user`'s standing API tokens: (id, created, last used), newest first.
    pub fn api_tokens(&self, user: UserId) -> Result<Vec<(i64, i64, Option<i64>)>, StoreError> {
        let mut conn = self.conn()?;
        Ok(tokens::table
            .filter(tokens::user_id.eq(user.0))
            .filter(tokens::kind.eq(TokenKind::Api.as_str()))
            .filter(tokens::used_at.is_null())
            .order(tokens::id.desc())
            .select((tokens::id, tokens::created_at, tokens::last_used_at))
            .load(&mut conn)?)
    }

    /// Withdraws one of `user`'s API tokens; false when it is not theirs or not standing.
    pub fn revoke_api_token(&self, user: UserId, id: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        Ok(diesel::update(
            tokens::table
                .filter(tokens::id.eq(id))
                .filter(tokens::user_id.eq(user.0))
                .filter(tokens::kind.eq(TokenKind::Api.as_str()))
                .filter(tokens::used_at.is_null()),
        )
        .set(tokens::used_at.eq(now()))
        .execute(&mut conn)?
            == 1)
    }

    /// How many standing API tokens `user` has.
    pub fn api_token_count(&self, user: UserId) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        Ok(tokens::table
            .filter(tokens::user_id.eq(user.0))
            .filter(tokens::kind.eq(TokenKind::Api.as_str()))
            .filter(tokens::used_at.is_null())
            .count()
            .get_result(&mut conn)?)
    }

    /// Withdraws every API token of `user`.
    pub fn revoke_api_tokens(&self, user: UserId) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        Ok(diesel::update(
            tokens::table
                .filter(tokens::user_id.eq(user.0))
                .filter(tokens::kind.eq(TokenKind::Api.as_str()))
                .filter(tokens::used_at.is_null()),
        )
        .set(tokens::used_at.eq(now()))
        .execute(&mut conn)?)
    }

    /// Opens a login session and returns the raw id for the cookie.
    pub fn create_session(&self, user: UserId, ttl_secs: i64, peer: &str) -> Result<String, StoreError> {
        let raw = random_token()?;
        let mut conn = self.conn()?;
        let at = now();
        // Expired sessions are swept here, so the table stays as large as the live ones.
        diesel::delete(web_sessions::table.filter(web_sessions::expires_at.le(at))).execute(&mut conn)?;
        diesel::insert_into(web_sessions::table)
            .values((
                web_sessions::token_hash.eq(token_hash(&raw)),
                web_sessions::user_id.eq(user.0),
                web_sessions::created_at.eq(at),
                web_sessions::expires_at.eq(at + ttl_secs),
                web_sessions::peer.eq(peer),
            ))
            .execute(&mut conn)?;
        Ok(raw)
    }

    /// The enabled user of a live session.
    pub fn session_user(&self, raw: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<UserCols> = web_sessions::table
            .inner_join(users::table)
            .filter(web_sessions::token_hash.eq(token_hash(raw)))
            .filter(web_sessions::expires_at.gt(now()))
            .filter(users::enabled.eq(true))
            .select(account_columns!())
            .first(&mut conn)
            .optional()?;
        Ok(row.map(|r| account(r).user))
    }

    /// Ends one login session.
    pub fn delete_session(&self, raw: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(web_sessions::table.filter(web_sessions::token_hash.eq(token_hash(raw))))
            .execute(&mut conn)?;
        Ok(())
    }

    /// A named server secret, created by `make` the first time it is asked for.
    pub fn server_secret(&self, name: &str, make: impl FnOnce() -> String) -> Result<String, StoreError> {
        use crate::store::sealing::{is_sealed, open};
        // Sealed like authkey secrets when a server key is configured (bound to the name),
        // so that a copy of the database alone does not forge the site's cookies.
        let bound = format!("server-secret:{name}");
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        let fresh = make();
        let value = match &sealer {
            Some(s) => s.seal(&bound, &fresh)?,
            None => fresh,
        };
        on_backend!(&mut conn, |c| diesel::insert_into(server_secrets::table)
            .values((server_secrets::name.eq(name), server_secrets::value.eq(&value)))
            .on_conflict_do_nothing()
            .execute(c))?;
        let stored: String = server_secrets::table
            .find(name)
            .select(server_secrets::value)
            .first(&mut conn)?;
        let plain = open(sealer.as_ref(), &bound, &stored)?;
        // Written before a server key was configured: sealed now.
        if let (Some(s), false) = (&sealer, is_sealed(&stored)) {
            diesel::update(server_secrets::table.find(name))
                .set(server_secrets::value.eq(s.seal(&bound, &plain)?))
                .execute(&mut conn)?;
        }
        Ok(plain)
    }

    /// A LIKE pattern for "contains `q`, whatever the case", to match against `lower(column)`
    /// (SQLite's LIKE ignores ASCII case, PostgreSQL's none: both then behave the same;
    /// SQLite's `lower()` folds ASCII only, PostgreSQL's every letter).
    pub(crate) fn like_nocase(&self, q: &str) -> String {
        match self.backend() {
            Backend::Postgres => like_pattern(&q.to_lowercase()),
            Backend::Sqlite(_) => like_pattern(&q.to_ascii_lowercase()),
        }
    }

    /// Enabled users whose name contains `q`, for share and invitation forms.
    pub fn search_users(&self, q: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .search_users_page(q, 0, usize::try_from(limit).unwrap_or(0))?
            .0)
    }

    /// Page `page` (`per` a page, by name) of [`Self::search_users`], and whether more follow.
    pub fn search_users_page(
        &self,
        q: &str,
        page: usize,
        per: usize,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let mut conn = self.conn()?;
        let p = self.like_nocase(q);
        // Only confirmed users are suggested: an unconfirmed sign-up may be anyone's address.
        let rows = users::table
            .filter(users::enabled.eq(true))
            .filter(users::email_verified.eq(true))
            .filter(lower(users::name).like(p).escape('\\'))
            .order(users::name)
            .limit(page_limit(per))
            .offset(page_offset(page, per))
            .select(users::name)
            .load(&mut conn)?;
        Ok(page_rows(rows, per))
    }

    /// Groups whose name or description contains `q`: (name, description).
    pub fn search_groups(&self, q: &str, limit: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .search_groups_page(q, 0, usize::try_from(limit).unwrap_or(0))?
            .0)
    }

    /// Page `page` (`per` a page, by name) of [`Self::search_groups`], and whether more follow.
    pub fn search_groups_page(
        &self,
        q: &str,
        page: usize,
        per: usize,
    ) -> Result<(Vec<(String, String)>, bool), StoreError> {
        let mut conn = self.conn()?;
        let p = self.like_nocase(q);
        let rows = groups::table
            .filter(
                lower(groups::name)
                    .like(&p)
                    .escape('\\')
                    .or(lower(groups::description).like(&p).escape('\\')),
            )
            .order(groups::name)
            .limit(page_limit(per))
            .offset(page_offset(page, per))
            .select((groups::name, groups::description))
            .load(&mut conn)?;
        Ok(page_rows(rows, per))
    }

    /// Channel names in use (listed by a key or shared) that contain `q`. Channel names are
    /// tags, not owned rooms: knowing one exists gives nothing.
    pub fn search_channels(&self, q: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .search_channels_page(q, 0, usize::try_from(limit).unwrap_or(0))?
            .0)
    }

    /// Page `page` (`per` a page, by name) of [`Self::search_channels`], and whether more
    /// follow.
    pub fn search_channels_page(
        &self,
        q: &str,
        page: usize,
        per: usize,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let mut conn = self.conn()?;
        let p = self.like_nocase(q);
        // Rows are many (every key lists channels, every share names one), names few: walk
        // the distinct names along each channel index (a loose index scan, one seek a name)
        // rather than scan a million rows for each search.
        let [a, b, c] = match self.backend() {
            Backend::Postgres => ["$1", "$2", "$3"],
            Backend::Sqlite(_) => ["?", "?", "?"],
        };
        let walk = |t: &str, n: &str| {
            format!(
                "{n}(ch) AS (SELECT MIN(channel) FROM {t} \
                 UNION ALL SELECT (SELECT MIN(channel) FROM {t} WHERE channel > {n}.ch) FROM {n} WHERE {n}.ch IS NOT NULL)"
            )
        };
        let sql = format!(
            "WITH RECURSIVE {}, {} SELECT ch AS name FROM (SELECT ch FROM k UNION SELECT ch FROM s) u \
             WHERE ch IS NOT NULL AND lower(ch) LIKE {a} ESCAPE '\\' ORDER BY ch LIMIT {b} OFFSET {c}",
            walk("authkey_channels", "k"),
            walk("shares", "s")
        );
        let rows: Vec<Name> = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(&p)
            .bind::<diesel::sql_types::BigInt, _>(page_limit(per))
            .bind::<diesel::sql_types::BigInt, _>(page_offset(page, per))
            .load(&mut conn)?;
        Ok(page_rows(rows.into_iter().map(|r| r.name).collect(), per))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (crate::store::scratch::ScratchDb, Store) {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let s = Store::open(db.url()).unwrap();
        (db, s)
    }

    #[test]
    fn tokens_are_one_time_and_typed() {
        let (_d, s) = store();
        let u = s.create_account("a", "a@x.org", "h").unwrap();
        let t = s
            .create_token(TokenKind::VerifyEmail, u.id, "a@x.org", Some(60))
            .unwrap();
        assert_eq!(s.consume_token(TokenKind::PasswordReset, &t).unwrap(), None);
        assert_eq!(
            s.consume_token(TokenKind::VerifyEmail, &t).unwrap(),
            Some((u.id, "a@x.org".into()))
        );
        assert_eq!(s.consume_token(TokenKind::VerifyEmail, &t).unwrap(), None);
        let expired = s
            .create_token(TokenKind::PasswordReset, u.id, "", Some(-1))
            .unwrap();
        assert_eq!(s.consume_token(TokenKind::PasswordReset, &expired).unwrap(), None);
    }

    #[test]
    fn sessions_end_with_password_change_but_the_kept_one() {
        let (_d, s) = store();
        let u = s.create_account("a", "a@x.org", "h").unwrap();
        let one = s.create_session(u.id, 3600, "").unwrap();
        let two = s.create_session(u.id, 3600, "").unwrap();
        assert_eq!(s.session_user(&one).unwrap().unwrap().id, u.id);
        s.set_password(u.id, "h2", Some(&two)).unwrap();
        assert!(s.session_user(&one).unwrap().is_none());
        assert!(s.session_user(&two).unwrap().is_some());
        s.delete_session(&two).unwrap();
        assert!(s.session_user(&two).unwrap().is_none());
    }

    #[test]
    fn channel_search_walks_distinct_names_in_any_case() {
        use crate::domain::listing::NewAuthkey;
        use crate::domain::model::{Grantee, ShareKind, ShareState};
        use crate::wire::{Channel, Ident, Secret};
        let (_d, s) = store();
        let u = s.create_account("a", "a@x.org", "h").unwrap();
        let ch = |n: &str| Channel::new(n).unwrap();
        for (i, list) in [vec!["Sensor.One", "x_y"], vec!["Sensor.One", "other"]]
            .into_iter()
            .enumerate()
        {
            s.add_authkey(
                &NewAuthkey {
                    owner: u.id,
                    ident: Ident::new(&format!("k{i}")).unwrap(),
                    secret: Secret::new("s"),
                    publish: list.iter().map(|n| ch(n)).collect(),
                    subscribe: vec![],
                    comment: String::new(),
                },
                "t",
            )
            .unwrap();
        }
        s.add_share(
            u.id,
            &ch("dionaea.caps"),
            Grantee::Everyone,
            (ShareKind::Own, false),
            ShareState::Accepted,
            "t",
        )
        .unwrap();
        assert_eq!(
            s.search_channels("SENSOR", 10).unwrap(),
            vec!["Sensor.One".to_owned()]
        );
        assert_eq!(
            s.search_channels("_", 10).unwrap(),
            vec!["x_y".to_owned()],
            "escaped"
        );
        // In the database's collation: sorted here to compare.
        let mut both = s.search_channels(".", 10).unwrap();
        both.sort();
        assert_eq!(both, vec!["Sensor.One".to_owned(), "dionaea.caps".to_owned()]);
        let (first, more) = s.search_channels_page(".", 0, 1).unwrap();
        let (second, last) = s.search_channels_page(".", 1, 1).unwrap();
        assert!(more && !last && first.len() == 1 && second.len() == 1 && first != second);
        assert_eq!(s.search_channels("e", 1).unwrap().len(), 1, "limited");
    }

    #[test]
    fn search_escapes_like_wildcards() {
        let (_d, s) = store();
        for (n, e) in [
            ("al_ice", "a@x.org"),
            ("alxice", "b@x.org"),
            ("al_ice2", "d@x.org"),
        ] {
            let u = s.create_account(n, e, "h").unwrap();
            if n != "al_ice2" {
                s.confirm_email(u.id, e).unwrap();
            }
        }
        assert_eq!(
            s.search_users("l_i", 10).unwrap(),
            vec!["al_ice".to_owned()],
            "escaped, and only confirmed users"
        );
        assert_eq!(s.search_users("%", 10).unwrap(), Vec::<String>::new());
        assert_eq!(
            s.search_users("L_I", 10).unwrap(),
            vec!["al_ice".to_owned()],
            "search ignores case on either backend"
        );
        assert!(s.create_account("al_ice", "c@x.org", "h").is_err());
        assert!(
            s.create_account("AL_ICE", "c@x.org", "h").is_err(),
            "names ignore case"
        );
        assert!(
            s.create_account("other", "A@X.org", "h").is_err(),
            "addresses ignore case"
        );
    }
}
