//! How commands print what they list: an aligned table for people or one JSON object per
//! line for scripts, from the same rows; and progress bars for long work.
//!
//! Tables are plain (no borders, no colours, no wrapping) so they stay greppable and
//! diff well; a cell never holds a newline.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// A row of a listing: its JSON object is the row serialized, its table cells come from
/// [`Listing::cells`] under [`Listing::HEADER`].
pub trait Listing: Serialize {
    /// Column titles of the table.
    const HEADER: &'static [&'static str];
    /// One cell per column of [`Listing::HEADER`].
    fn cells(&self) -> Vec<String>;
}

/// Prints `rows` as JSON lines when `json`, else as a table (a header even when empty, so
/// that a person sees the list is empty rather than broken).
pub fn print<T: Listing>(rows: &[T], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        write!(out, "{}", table(T::HEADER, rows.iter().map(Listing::cells)))?;
    }
    out.flush()?;
    Ok(())
}

thread_local! {
    /// Lines a changing command says, held back while [`defer`] is on.
    static HELD: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Says what a command did: printed now, or held while a change is not yet known to be
/// live (see [`defer`]), so that "revoked" is never on screen before it holds.
pub fn say(line: String) {
    let held = HELD.with_borrow_mut(|h| match h {
        Some(lines) => {
            lines.push(line);
            None
        }
        None => Some(line),
    });
    if let Some(line) = held {
        println!("{line}");
    }
}

/// From now on [`say`] holds its lines until [`release`].
pub fn defer() {
    HELD.with_borrow_mut(|h| *h = Some(Vec::new()));
}

/// Prints the held lines and stops holding.
pub fn release() {
    for line in HELD.with_borrow_mut(Option::take).unwrap_or_default() {
        println!("{line}");
    }
}

/// An error and its causes in one line, each cause once: a message that already quotes its
/// cause (`cannot listen on …: Address already in use (os error 98)`) is not followed by
/// it again, as `{:#}` would.
pub fn one_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `text` as it may be printed on a terminal: control characters (ESC, the C1 set, NUL,
/// bare CR…) and bidirectional overrides written as `\u{..}` escapes, so that text from a
/// file or a database cannot move the cursor, recolour or rewrite what the operator reads.
/// Newlines and tabs stay.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c.is_control() && !matches!(c, '\n' | '\t')) || crate::domain::text::is_bidi_control(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// An aligned plain-text table: columns separated by two spaces, no trailing blanks, a
/// newline after every line.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for r in rows {
        // A newline inside a cell would break the one-row-per-line promise; other control
        // characters (ESC sequences from an imported file) must not reach the terminal.
        t.add_row(
            r.into_iter()
                .map(|c| terminal_safe(&c.replace(['\n', '\r'], " ")))
                .collect::<Vec<_>>(),
        );
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    let mut s = String::new();
    for line in t.lines() {
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// A progress bar on stderr for long work, drawn only on a terminal (indicatif hides it
/// otherwise, so logs and pipes stay clean).
pub fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// A spinner with a running count and the elapsed time, for work whose length is not known
/// in advance (a benchmark run); on a terminal only, like [`progress`].
pub fn spinner(what: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 127.0.0.1:1: {source}")]
        struct Bind {
            source: std::io::Error,
        }
        let io = std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "Address already in use (os error 98)",
        );
        let e = anyhow::Error::from(Bind { source: io });
        assert_eq!(
            one_message(&e),
            "cannot listen on 127.0.0.1:1: Address already in use (os error 98)"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_message(&e), "outer: inner");
    }

    #[test]
    fn terminal_output_carries_no_escape_sequences() {
        assert_eq!(terminal_safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(terminal_safe("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(terminal_safe("a\u{9b}b\rc"), "a\\u{9b}b\\u{d}c");
        assert_eq!(terminal_safe("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn tables_align_and_keep_one_row_per_line() {
        let t = table(
            &["ID", "NAME", "NOTE"],
            [
                vec!["1".into(), "alice".into(), "first\nline".into()],
                vec!["22".into(), "bob".into(), String::new()],
            ],
        );
        assert_eq!(t, "ID  NAME   NOTE\n1   alice  first line\n22  bob\n");
    }

    #[test]
    fn an_empty_listing_still_has_its_header() {
        assert_eq!(table(&["A", "B"], Vec::<Vec<String>>::new()), "A  B\n");
    }
}
