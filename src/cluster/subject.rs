//! NATS subjects for hpfeeds channels. A channel name may hold any byte a client sends
//! (dots, `*`, `>`, spaces), and each of those would change what a subject means to NATS;
//! so every byte outside `[A-Za-z0-9_-]` is escaped as `~XX` (hex), and a channel is always
//! exactly one token under the cluster's prefix (`hpfeeds` by default, `nats_prefix`): no
//! channel can reach another's subject or a wildcard, and communities that share a NATS
//! server under different prefixes never see each other's traffic.

pub use crate::config::limits::DEFAULT_NATS_PREFIX as DEFAULT_PREFIX;
pub use crate::config::valid_nats_prefix as valid_prefix;

/// The subject carrying `channel`'s publishes under `prefix`.
pub fn of_channel(prefix: &str, channel: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + channel.len() + 9);
    s.push_str(prefix);
    s.push('.');
    for b in channel.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            s.push(char::from(b));
        } else {
            s.push('~');
            s.push_str(&format!("{b:02X}"));
        }
    }
    s
}

/// The channel a subject under `prefix` carries, or `None` for a subject no channel maps to.
pub fn channel_of(prefix: &str, subject: &str) -> Option<Vec<u8>> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn dots_and_wildcards_stay_inside_one_token() {
        let p = DEFAULT_PREFIX;
        assert_eq!(of_channel(p, "dionaea.capture"), "hpfeeds.dionaea~2Ecapture");
        assert_eq!(of_channel(p, "a.>"), "hpfeeds.a~2E~3E");
        assert_eq!(of_channel(p, "* x"), "hpfeeds.~2A~20x");
        assert_eq!(of_channel(p, "~"), "hpfeeds.~7E");
        assert_eq!(of_channel("hp.site-1", "c"), "hp.site-1.c");
        assert_eq!(channel_of(p, "hpfeeds.a.b"), None);
        assert_eq!(channel_of(p, "other.x"), None);
        assert_eq!(channel_of(p, "hpfeeds.~4"), None);
        assert_eq!(channel_of(p, "hpfeedsx.c"), None);
        assert!(valid_prefix("hpfeeds") && valid_prefix("a.b-c_1"));
        assert!(
            !valid_prefix("")
                && !valid_prefix("a.")
                && !valid_prefix("a.*")
                && !valid_prefix("a.>")
                && !valid_prefix("a b")
        );
    }

    proptest! {
        #[test]
        fn escaping_round_trips_and_never_splits(channel in "\\PC{1,40}") {
            let subject = of_channel(DEFAULT_PREFIX, &channel);
            let token = &subject[DEFAULT_PREFIX.len() + 1..];
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-~".contains(&b)));
            prop_assert_eq!(channel_of(DEFAULT_PREFIX, &subject), Some(channel.into_bytes()));
        }
    }
}
