//! The auth challenge: a random 4-byte nonce per connection and sha1(nonce ‖ secret).
//!
//! The nonce is exactly 4 bytes because libhpfeeds (the C client) reads only 4. The hash is
//! compared in constant time so that a remote peer cannot learn it byte by byte.

use std::fmt;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Size of the nonce in the info frame.
pub const NONCE_LEN: usize = 4;
/// Size of a sha1 digest, the proof in an auth frame.
pub const HASH_LEN: usize = 20;

/// Per-connection challenge sent in the info frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; NONCE_LEN]);

/// sha1(nonce ‖ secret), sent by the client in the auth frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthHash(pub [u8; HASH_LEN]);

/// The private half of an authkey. Kept recoverable because the broker must compute the
/// hash for each connection's nonce; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Nonce {
    /// A fresh nonce from the OS CSPRNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut b)?;
        Ok(Self(b))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", hex::encode(self.0))
    }
}

impl fmt::Debug for AuthHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthHash({})", hex::encode(self.0))
    }
}

impl AuthHash {
    /// The hash a client with `secret` sends for `nonce` (as 3.1.0's `hashsecret`).
    pub fn compute(nonce: &Nonce, secret: &Secret) -> Self {
        let mut h = Sha1::new();
        h.update(nonce.0);
        h.update(secret.0.as_bytes());
        Self(h.finalize().into())
    }

    /// Whether this hash proves knowledge of `secret` for `nonce`, in constant time.
    pub fn verifies(&self, nonce: &Nonce, secret: &Secret) -> bool {
        let expected = Self::compute(nonce, secret);
        bool::from(self.0.ct_eq(&expected.0))
    }
}

impl Secret {
    /// Wraps a secret given as text (config, CLI, database).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A strong random secret: 32 bytes from the OS CSPRNG, hex-encoded (64 characters).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b)?;
        Ok(Self(hex::encode(b)))
    }

    /// The secret text, for storage and for printing once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_hashsecret() {
        // hashlib.sha1(b"\x01\x02\x03\x04" + b"secret").hexdigest()
        let h = AuthHash::compute(&Nonce([1, 2, 3, 4]), &Secret::new("secret"));
        assert_eq!(hex::encode(h.0), "bf13c597ffb288ba1d013c277c6a229a8e976b5a");
        assert!(h.verifies(&Nonce([1, 2, 3, 4]), &Secret::new("secret")));
        assert!(!h.verifies(&Nonce([1, 2, 3, 5]), &Secret::new("secret")));
        assert!(!h.verifies(&Nonce([1, 2, 3, 4]), &Secret::new("secreT")));
    }

    #[test]
    fn secrets_are_random_and_hidden() {
        let a = Secret::random().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, Secret::random().unwrap());
        assert_eq!(format!("{a:?}"), "Secret(…)");
    }
}
