//! Small bar charts drawn on the server as inline SVG: traffic over the last hour, day or
//! week, readable without JavaScript and without sending a series to the browser.

use std::fmt::Write as _;

use crate::domain::listing::Traffic;

/// A span a chart covers, cut into equal slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Its name on the page ("hour", "day", "week").
    pub name: &'static str,
    /// Seconds it covers, ending now.
    pub secs: i64,
    /// Bars drawn (each covers `secs / slots`).
    pub slots: usize,
}

/// The spans the catalogue draws: an hour in 5-minute bars, a day in hours, a week in
/// 6-hour bars.
pub const SPANS: [Span; 3] = [
    Span {
        name: "hour",
        secs: 3600,
        slots: 12,
    },
    Span {
        name: "day",
        secs: 86_400,
        slots: 24,
    },
    Span {
        name: "week",
        secs: 7 * 86_400,
        slots: 28,
    },
];

/// `series` (any bucket order) summed into `span`'s slots ending at `now`: messages, bytes
/// and deliveries per slot, oldest first. Buckets outside the span are left out.
pub fn slots(series: &[Traffic], span: Span, now: i64) -> Vec<Traffic> {
    let width = (span.secs / i64::try_from(span.slots.max(1)).unwrap_or(1)).max(1);
    // Slots end where the current one ends, so each starts on a round time (an hour's
    // bars at :00, :05, ...; a day's on the hour).
    let end = now - now.rem_euclid(width) + width;
    let start = end - span.secs;
    let mut out: Vec<Traffic> = (0..span.slots)
        .map(|i| Traffic {
            bucket: start + width * i64::try_from(i).unwrap_or(0),
            ..Traffic::default()
        })
        .collect();
    for t in series {
        if t.bucket < start || t.bucket >= end {
            continue;
        }
        let i = usize::try_from((t.bucket - start).max(0) / width).unwrap_or(0);
        if let Some(s) = out.get_mut(i.min(span.slots.saturating_sub(1))) {
            s.messages += t.messages;
            s.bytes += t.bytes;
            s.deliveries += t.deliveries;
        }
    }
    out
}

/// Escapes text for SVG/HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart of `values` (one per slot, oldest first), `w`×`h` pixels, labelled `label`
/// for screen readers; each bar's title says its slot (`titles`). Empty slots are drawn as
/// a thin base line so that "nothing" reads as zero, not as a missing chart.
pub fn bars(values: &[i64], titles: &[String], (w, h): (u32, u32), label: &str) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1);
    let (wf, hf) = (f64::from(w), f64::from(h));
    let slot = wf / n as f64;
    let bar = (slot - 1.0).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        esc(label)
    );
    let _ = write!(svg, "<title>{}</title>", esc(label));
    for (i, v) in values.iter().enumerate() {
        let bh = if *v > 0 {
            ((*v as f64 / max as f64) * (hf - 1.0)).max(2.0)
        } else {
            1.0
        };
        let x = i as f64 * slot;
        let class = if *v > 0 { "bar" } else { "bar zero" };
        let title = titles.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}"><title>{}</title></rect>"#,
            hf - bh,
            esc(title)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bucket: i64, messages: i64) -> Traffic {
        Traffic {
            bucket,
            messages,
            bytes: messages * 10,
            deliveries: 0,
        }
    }

    #[test]
    fn buckets_fall_into_their_slots_and_old_ones_are_left_out() {
        let now = 100_300; // 100 s into a 5-minute slot that started at 100_200
        let hour = SPANS[0];
        let s = slots(
            &[t(96_900, 1), t(100_200, 2), t(100_200, 3), t(10_000, 50)],
            hour,
            now,
        );
        assert_eq!(s.len(), 12);
        assert_eq!((s[0].bucket, s[11].bucket), (96_900, 100_200));
        assert_eq!(s[0].messages, 1);
        assert_eq!(s[11].messages, 5);
        assert_eq!(s.iter().map(|x| x.messages).sum::<i64>(), 6);
        assert_eq!(s[11].bytes, 50);
    }

    #[test]
    fn charts_escape_their_text_and_scale_to_the_largest_bar() {
        let svg = bars(
            &[0, 5, 10],
            &["a<b".into(), "x".into(), "y".into()],
            (30, 20),
            "chan \"&\"",
        );
        assert!(svg.contains("aria-label=\"chan &quot;&amp;&quot;\""));
        assert!(svg.contains("<title>a&lt;b</title>"));
        assert!(svg.contains("height=\"19.0\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("bar zero"));
    }
}
