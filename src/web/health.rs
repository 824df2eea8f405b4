//! Feed health at a glance: each key's traffic over the last day as sparklines, when it
//! last sent or got a message, and plain warnings when a key that used to publish went
//! quiet or a subscriber keeps being cut as slow.

use serde_json::{Value, json};

use crate::config::limits::{QUIET_AFTER_SECS, TRAFFIC_BUCKET_SECS};
use crate::domain::listing::{KeyTraffic, Traffic};
use crate::web::charts::{self, SPANS};
use crate::web::render::{bytes, time};

/// The published (`true`) or received side of a key's traffic, as channel traffic.
fn side(series: &[KeyTraffic], published: bool) -> Vec<Traffic> {
    series
        .iter()
        .map(|t| Traffic {
            bucket: t.bucket,
            messages: if published { t.published } else { t.received },
            bytes: if published {
                t.published_bytes
            } else {
                t.received_bytes
            },
            deliveries: 0,
        })
        .collect()
}

/// What is wrong with a key's feed, in words; empty when nothing is. `publishes`: the key
/// is enabled and lists channels to publish on.
pub fn warnings(ident: &str, publishes: bool, series: &[KeyTraffic], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    let last_published = series.iter().filter(|t| t.published > 0).map(|t| t.bucket).max();
    if let Some(last) = last_published
        && publishes
    {
        let until = last + TRAFFIC_BUCKET_SECS;
        if now - until >= QUIET_AFTER_SECS {
            let week: i64 = series.iter().map(|t| t.published).sum();
            out.push(format!(
                "{ident} has published nothing since {} ({week} messages in the week before): is its sensor still running?",
                time(until)
            ));
        }
    }
    let day = now - SPANS[1].secs;
    let cuts: i64 = series
        .iter()
        .filter(|t| t.bucket >= day)
        .map(|t| t.slow_cuts)
        .sum();
    if cuts > 0 {
        out.push(format!(
            "{ident} was cut {cuts} time(s) in the last day as a slow subscriber: it reads more slowly than its channels deliver, and loses what was queued"
        ));
    }
    out
}

/// A key's health for a page: sparklines of what it published and received per hour over
/// the last day, when it last did either, and its warnings.
pub fn key_json(ident: &str, publishes: bool, series: &[KeyTraffic], now: i64) -> Value {
    let day = SPANS[1];
    let chart = |published: bool| {
        let slots = charts::slots(&side(series, published), day, now);
        let values: Vec<i64> = slots.iter().map(|s| s.messages).collect();
        let what = if published { "published" } else { "received" };
        let titles: Vec<String> = slots
            .iter()
            .map(|s| {
                format!(
                    "{} messages ({}) {what} in the hour from {}",
                    s.messages,
                    bytes(s.bytes),
                    time(s.bucket)
                )
            })
            .collect();
        let total: i64 = values.iter().sum();
        (
            charts::bars(
                &values,
                &titles,
                (144, 28),
                &format!("messages {ident} {what} per hour, last day"),
            ),
            total,
        )
    };
    let (published_chart, published_day) = chart(true);
    let (received_chart, received_day) = chart(false);
    let last = series
        .iter()
        .filter(|t| t.published > 0 || t.received > 0)
        .map(|t| t.bucket)
        .max();
    json!({
        "published_chart": published_chart,
        "published_day": published_day,
        "received_chart": received_chart,
        "received_day": received_day,
        "last_message": last.map(|b| format!("between {} and {}", time(b), time(b + TRAFFIC_BUCKET_SECS))),
        "warnings": warnings(ident, publishes, series, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bucket: i64, published: i64, slow_cuts: i64) -> KeyTraffic {
        KeyTraffic {
            bucket,
            published,
            published_bytes: published * 10,
            received: 0,
            received_bytes: 0,
            slow_cuts,
        }
    }

    #[test]
    fn a_key_that_went_quiet_or_keeps_being_cut_is_named() {
        let now = 1_000_000 * 300;
        // Published until two hours ago: quiet.
        let quiet = warnings("k1", true, &[t(now - 7200 - 300, 40, 0)], now);
        assert_eq!(quiet.len(), 1);
        assert!(
            quiet[0].contains("k1 has published nothing since") && quiet[0].contains("40 messages"),
            "{quiet:?}"
        );
        // Published in the last hour, or not a publisher: fine.
        assert!(warnings("k1", true, &[t(now - 600, 1, 0)], now).is_empty());
        assert!(warnings("k1", false, &[t(now - 7200 - 300, 40, 0)], now).is_empty());
        assert!(warnings("k1", true, &[], now).is_empty());
        // Cut as slow in the last day, not two days ago.
        let slow = warnings(
            "k2",
            false,
            &[t(now - 3600, 0, 2), t(now - 2 * 86_400, 0, 5)],
            now,
        );
        assert_eq!(slow.len(), 1);
        assert!(slow[0].contains("cut 2 time(s)"), "{slow:?}");
    }
}
