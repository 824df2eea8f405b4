//! Passwords: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), verified in
//! constant time, on blocking threads so hashing never stalls a worker.
//!
//! Hashing is the one thing on the site whose memory an anonymous client can ask for, so it
//! is bounded twice: at most [`MAX_PASSWORD_HASHES_AT_ONCE`] (one per core) run at once, the
//! rest wait up to [`PASSWORD_HASH_WAIT`] and are then answered `503`; and each running hash
//! fills a memory block taken from a pool that is allocated once and reused, so a flood of
//! logins or bogus resets costs the same few blocks as one login and nothing ratchets up.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::error::WebError;
use crate::config::limits::{MAX_PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_WAIT};

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (hashing cost must not be the attacker's choice).
pub const MAX_LEN: usize = 1024;

/// Memory of one hash in KiB (OWASP's 19 MiB).
const M_COST: u32 = 19 * 1024;
/// Passes.
const T_COST: u32 = 2;
/// Lanes.
const P_COST: u32 = 1;
/// Bytes of the stored hash.
const OUT_LEN: usize = 32;

fn argon(m: u32, t: u32, p: u32) -> Result<Argon2<'static>, WebError> {
    let params = Params::new(m, t, p, None).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The slots and the reused memory blocks of the hashing pool.
struct Pool {
    slots: Semaphore,
    blocks: Mutex<Vec<Vec<Block>>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        slots: Semaphore::new(slots()),
        blocks: Mutex::new(Vec::new()),
    })
}

/// Hashes that may run at once: one per core, at most [`MAX_PASSWORD_HASHES_AT_ONCE`].
pub fn slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_PASSWORD_HASHES_AT_ONCE)
}

/// Hashes `pwd` with `salt` under the given costs into `out`, in a block from the pool
/// (allocated the first time only). Runs on the calling (blocking) thread.
fn fill(m: u32, t: u32, p: u32, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), WebError> {
    let a = argon(m, t, p)?;
    let need = a.params().block_count();
    let taken = pool().blocks.lock().map_or(None, |mut v| v.pop());
    let mut blocks = taken.unwrap_or_default();
    if blocks.len() != need {
        // Only a stored hash with other costs (none this site writes) reaches here.
        blocks = vec![Block::default(); need];
    }
    let r = a
        .hash_password_into_with_memory(pwd, salt, out, &mut blocks[..])
        .map_err(|e| WebError::Internal(e.to_string()));
    // Only blocks of this site's own cost go back to the pool (at most one per slot).
    if need == Params::new(M_COST, T_COST, P_COST, None).map_or(0, |p| p.block_count())
        && let Ok(mut v) = pool().blocks.lock()
    {
        v.push(blocks);
    }
    r
}

/// Runs `job` on a blocking thread once a hashing slot is free; `503` after
/// [`PASSWORD_HASH_WAIT`] without one.
async fn with_slot<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let permit = tokio::time::timeout(PASSWORD_HASH_WAIT, pool().slots.acquire())
        .await
        .map_err(|_| WebError::Busy("checking passwords"))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let r = actix_web::web::block(job).await?;
    drop(permit);
    r
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
    with_slot(move || {
        let salt = SaltString::generate(&mut OsRng);
        let mut raw = [0u8; 16];
        let salt_bytes = salt
            .decode_b64(&mut raw)
            .map_err(|e| WebError::Internal(e.to_string()))?;
        let mut out = [0u8; OUT_LEN];
        fill(M_COST, T_COST, P_COST, password.as_bytes(), salt_bytes, &mut out)?;
        let out = Output::new(&out).map_err(|e| WebError::Internal(e.to_string()))?;
        Ok(format!(
            "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${out}",
            salt.as_str()
        ))
    })
    .await
}

/// A fixed hash checked when the account does not exist, so that an unknown user and a
/// wrong password take the same time.
const DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W4d1wVxH2wKkNKGZt3ZtUl8jS1Pv0g7YQdMT2HdQ7mQ";

/// Whether `password` matches the PHC string `phc` (computed on this thread).
fn matches(password: &[u8], phc: &str) -> Result<bool, WebError> {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Ok(false);
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return Ok(false);
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return Ok(false);
    }
    let cost = |name: &str| parsed.params.get_decimal(name);
    let (Some(m), Some(t), Some(p)) = (cost("m"), cost("t"), cost("p")) else {
        return Ok(false);
    };
    // A stored hash never asks for more memory than this site's own cost.
    if m > M_COST || t > 16 || p > 16 {
        return Ok(false);
    }
    let mut raw = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut raw) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    if fill(m, t, p, password, salt, &mut out).is_err() {
        return Ok(false);
    }
    let computed = Output::new(&out).map_err(|e| WebError::Internal(e.to_string()))?;
    // Output's equality is constant-time.
    Ok(computed == expected)
}

/// Whether `password` matches `stored` (or, with none stored, burns the same time and fails).
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, WebError> {
    with_slot(move || {
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY.to_owned());
        Ok(matches(password.as_bytes(), &phc)? && real)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

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

    #[actix_rt::test]
    async fn hashes_of_the_argon2_crate_verify_and_greedy_ones_are_refused() {
        // A hash the crate wrote the usual way (as earlier versions of this site did).
        let salt = SaltString::generate(&mut OsRng);
        let old = argon(M_COST, T_COST, P_COST)
            .unwrap()
            .hash_password(b"an older passphrase", &salt)
            .unwrap()
            .to_string();
        assert!(
            verify("an older passphrase".into(), Some(old.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("another passphrase".into(), Some(old)).await.unwrap());
        // Cheaper costs verify too; a stored hash asking for more memory is refused unrun.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"cheap passphrase", &salt)
        .unwrap()
        .to_string();
        assert!(verify("cheap passphrase".into(), Some(cheap)).await.unwrap());
        let greedy = format!(
            "$argon2id$v=19$m=4194304,t=2,p=1${}$W4d1wVxH2wKkNKGZt3ZtUl8jS1Pv0g7YQdMT2HdQ7mQ",
            salt.as_str()
        );
        assert!(!verify("x".into(), Some(greedy)).await.unwrap());
    }
}
