//! Free text people type (a group's description, a key's comment, a profile, a note to a
//! publisher, an address) ends up in other people's pages, mails and terminals. Control
//! characters (NUL, ESC and the rest of C0 and C1) and the bidirectional overrides that
//! make text read differently from what it is (the "Trojan Source" characters) have no
//! place there; line breaks only where the field is several lines.

/// Whether `c` is a bidirectional embedding, override, isolate or mark.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What is wrong with `text` for a field of at most `max` characters, on one line unless
/// `multiline` (then `\n`, `\r\n` and tabs are fine); `None` when it may be stored.
pub fn problem(text: &str, max: usize, multiline: bool) -> Option<String> {
    if text.chars().count() > max {
        return Some(format!("at most {max} characters"));
    }
    for c in text.chars() {
        let allowed_break = multiline && matches!(c, '\n' | '\r' | '\t');
        if c.is_control() && !allowed_break {
            return Some(if matches!(c, '\n' | '\r') {
                "one line: no line breaks".to_owned()
            } else {
                format!("no control characters (found U+{:04X})", u32::from(c))
            });
        }
        if is_bidi_control(c) {
            return Some(format!(
                "no bidirectional control characters (found U+{:04X})",
                u32::from(c)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_refused() {
        assert_eq!(problem("sensor in Berlin, rack 3", 100, false), None);
        assert_eq!(problem("Grüße — 日本 ✓", 100, false), None);
        assert_eq!(problem("line one\nline two\r\n\tindented", 100, true), None);
        assert!(
            problem("line one\nline two", 100, false)
                .unwrap()
                .contains("one line")
        );
        assert!(problem("a\0b", 100, true).unwrap().contains("U+0000"));
        assert!(problem("\u{1b}[31mred", 100, true).unwrap().contains("U+001B"));
        assert!(
            problem("c1 \u{85} next line", 100, true)
                .unwrap()
                .contains("U+0085")
        );
        assert!(
            problem("admin\u{202E}gpj.exe", 100, false)
                .unwrap()
                .contains("U+202E")
        );
        assert!(problem("\u{2066}isolate", 100, false).unwrap().contains("U+2066"));
        assert!(problem("aaaa", 3, false).unwrap().contains("at most 3"));
    }
}
