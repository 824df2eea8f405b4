//! What the broker records about a key's misuse, for its owner to read: a domain value the
//! store persists and the website shows.

/// One recorded misuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogEntry {
    /// Unix seconds.
    pub at: i64,
    /// The ident the client used.
    pub ident: String,
    /// "auth-failed", "publish-denied", "subscribe-denied", "ident-mismatch", or
    /// "suppressed" (a count of entries left out by the rate bound).
    pub event: String,
    /// The channel refused, if any.
    pub channel: Option<String>,
    /// The client's address.
    pub peer: Option<String>,
    /// Free text (the error sent, or how many were suppressed).
    pub detail: String,
}
