//! Passwords: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), verified in
//! constant time, on blocking threads so hashing never stalls a worker.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::error::WebError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (hashing cost must not be the attacker's choice).
pub const MAX_LEN: usize = 1024;

fn argon() -> Result<Argon2<'static>, WebError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// What is wrong with a new password, if anything.
pub fn weakness(password: &str, name: &str) -> Option<String> {
    if password.chars().count() < MIN_LEN {
        return Some(format!("use at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Some(format!("use at most {MAX_LEN} bytes"));
    }
    if password.eq_ignore_ascii_case(name) {
        return Some("the password must not be your user name".into());
    }
    None
}

/// The PHC string to store.
pub async fn hash(password: String) -> Result<String, WebError> {
    actix_web::web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| WebError::Internal(e.to_string()))
    })
    .await?
}

/// A fixed hash checked when the account does not exist, so that an unknown user and a
/// wrong password take the same time.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W4d1wVxH2wKkNKGZt3ZtUl8jS1Pv0g7YQdMT2HdQ7mQ";

/// Whether `password` matches `stored` (or, with none stored, burns the same time and fails).
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, WebError> {
    actix_web::web::block(move || {
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY.to_owned());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return Ok(false);
        };
        let ok = argon()?.verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(ok && real)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn hashes_verify_and_unknown_users_fail() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify("correct horse battery".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery".into(), Some(h)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
        assert!(PasswordHash::new(DUMMY).is_ok());
        assert!(weakness("short", "a").is_some());
        assert!(weakness("alice12345", "ALICE12345").is_some());
        assert!(weakness("a good long passphrase", "alice").is_none());
    }
}
