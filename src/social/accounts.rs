//! An operator's account tools: a user's address set on the operator's word, and an
//! invitation that lets a user who never chose a password (imported from another broker,
//! or added with `user add`) choose one and confirm the address in one step, so that a
//! migrated community can sign in to the website.

use crate::domain::listing::User;
use crate::store::Store;
use crate::store::models::accounts::TokenKind;

use super::ops::{Result, SocialError, find_user, valid_email};

/// How long an invitation link works unless the operator says otherwise, in days.
pub const INVITE_DAYS: u32 = 7;
/// The longest an invitation link may work, in days: a link in a mailbox is a password.
pub const INVITE_MAX_DAYS: u32 = 30;
/// What an invitation's token carries: a reset asked for on the website carries the
/// address that asked, so neither voids the other (see `Store::create_token`).
pub const INVITE_PAYLOAD: &str = "invite";

/// An invitation made: whom it is for and the link's token (mailed once, never stored raw).
#[derive(Debug)]
pub struct Invitation {
    /// The invited user, with the address the link goes to.
    pub user: User,
    /// The raw token of the `/reset/TOKEN` link.
    pub token: String,
    /// How long the link works, in days.
    pub days: u32,
}

/// Whether `email` is a placeholder that reaches nobody (RFC 2606's `.invalid`, which
/// `import` gives users until the operator knows their address).
pub fn is_placeholder(email: &str) -> bool {
    email
        .rsplit('@')
        .next()
        .is_some_and(|domain| domain.to_ascii_lowercase().ends_with(".invalid"))
}

/// Sets user `name`'s address to `email`, unconfirmed until the user opens a link mailed
/// there; a changed address ends the user's sessions, API tokens and links (as a confirmed
/// change on the website does).
pub fn set_email(store: &Store, name: &str, email: &str, actor: &str) -> Result<User> {
    let email = email.trim();
    if !valid_email(email) || is_placeholder(email) {
        return Err(SocialError::Invalid(format!("invalid email address {email:?}")));
    }
    let u = find_user(store, name)?;
    store.set_email(u.id, email, actor)?;
    find_user(store, name)
}

/// A link for user `name` to choose a password (and so confirm the address it is mailed
/// to), working for `days`; a new invitation voids the user's earlier ones.
pub fn invite(store: &Store, name: &str, days: u32) -> Result<Invitation> {
    if !(1..=INVITE_MAX_DAYS).contains(&days) {
        return Err(SocialError::Invalid(format!(
            "an invitation works for 1 to {INVITE_MAX_DAYS} days, not {days}"
        )));
    }
    let user = find_user(store, name)?;
    if !user.enabled {
        return Err(SocialError::Invalid(format!(
            "{name} is disabled: enable the user first (hpfriends user enable {name})"
        )));
    }
    if is_placeholder(&user.email) {
        return Err(SocialError::Invalid(format!(
            "{name} has no address yet ({}): set one first (hpfriends user set-email {name} ADDRESS)",
            user.email
        )));
    }
    let token = store.create_token(
        TokenKind::PasswordReset,
        user.id,
        INVITE_PAYLOAD,
        Some(i64::from(days) * 86_400),
    )?;
    Ok(Invitation { user, token, days })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_the_invalid_top_level_domain_only() {
        assert!(is_placeholder("sensor-org@imported.invalid"));
        assert!(is_placeholder("x@EXAMPLE.INVALID"));
        assert!(!is_placeholder("x@invalid.example.org"));
        assert!(!is_placeholder("x@example.org"));
    }
}
