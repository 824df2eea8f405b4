//! The *Graph* page's picture: me, the users and groups I share with or receive from, and
//! one arrow per live share labelled with its channel and type, drawn server-side as SVG
//! (no script; presentation attributes only, so the strict CSP holds).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::domain::listing::ShareInfo;
use crate::domain::model::{ShareKind, ShareState};

/// Canvas size.
const W: f64 = 860.0;
const H: f64 = 620.0;
/// Nodes around me are drawn on this circle.
const RADIUS: f64 = 230.0;

/// One arrow.
#[derive(Debug, Clone)]
pub struct Edge {
    from: String,
    to: String,
    channel: String,
    kind: ShareKind,
    state: ShareState,
}

/// Nodes and arrows of one user's sharing graph.
#[derive(Debug, Clone, Default)]
pub struct Picture {
    me: String,
    nodes: Vec<String>,
    edges: Vec<Edge>,
}

fn esc(s: &str) -> String {
    handlebars::html_escape(s)
}

impl Picture {
    /// The live (offered or accepted) shares to and from `me`.
    pub fn of(me: &str, outgoing: &[ShareInfo], incoming: &[ShareInfo]) -> Picture {
        let live = |s: &&ShareInfo| matches!(s.share.state, ShareState::Offered | ShareState::Accepted);
        let mut p = Picture {
            me: format!("user {me}"),
            ..Picture::default()
        };
        for s in outgoing.iter().filter(live) {
            p.add(p.me.clone(), s.to_name.clone(), s);
        }
        for s in incoming.iter().filter(live) {
            p.add(format!("user {}", s.from_name), p.me.clone(), s);
            // A share through a group or to everyone: show the way it reaches me.
            if !s.to_name.starts_with("user ") {
                p.node(&s.to_name);
            }
        }
        p
    }

    fn node(&mut self, name: &str) {
        if name != self.me && !self.nodes.iter().any(|n| n == name) {
            self.nodes.push(name.to_owned());
        }
    }

    fn add(&mut self, from: String, to: String, s: &ShareInfo) {
        self.node(&from);
        self.node(&to);
        self.edges.push(Edge {
            from,
            to,
            channel: s.share.channel.as_str().to_owned(),
            kind: s.share.kind,
            state: s.share.state,
        });
    }

    fn position(&self, name: &str) -> (f64, f64) {
        if name == self.me {
            return (W / 2.0, H / 2.0);
        }
        let i = self.nodes.iter().position(|n| n == name).unwrap_or(0);
        let n = self.nodes.len().max(1);
        let angle = std::f64::consts::TAU * (i as f64) / (n as f64) - std::f64::consts::FRAC_PI_2;
        (W / 2.0 + RADIUS * angle.cos(), H / 2.0 + RADIUS * angle.sin())
    }

    /// The arrows as rows for the page's table (the picture's text equivalent).
    pub fn edge_list(&self) -> Vec<Value> {
        self.edges
            .iter()
            .map(|e| {
                json!({
                    "from": e.from, "to": e.to, "channel": e.channel,
                    "kind": e.kind.as_str(), "state": e.state.as_str(),
                })
            })
            .collect()
    }

    /// The picture.
    pub fn svg(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" \
             aria-label=\"Sharing graph of {}\" font-family=\"system-ui, sans-serif\" font-size=\"13\">\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
             markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#475569\"/></marker></defs>\
             <rect width=\"{W}\" height=\"{H}\" fill=\"#f8fafc\"/>",
            esc(&self.me)
        );
        // Several shares between one pair: labels stacked, so none hides another.
        let mut per_pair: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in &self.edges {
            let (x1, y1) = self.position(&e.from);
            let (x2, y2) = self.position(&e.to);
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            // Stop short of the node circles.
            let (ux, uy) = (dx / len, dy / len);
            let (sx, sy, ex, ey) = (x1 + ux * 44.0, y1 + uy * 44.0, x2 - ux * 44.0, y2 - uy * 44.0);
            let colour = match e.kind {
                ShareKind::Own => "#2563eb",
                ShareKind::Redistribute => "#9333ea",
            };
            let dash = if e.state == ShareState::Offered {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = write!(
                s,
                "<line x1=\"{sx:.1}\" y1=\"{sy:.1}\" x2=\"{ex:.1}\" y2=\"{ey:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash} marker-end=\"url(#arrow)\"/>"
            );
            let key = (e.from.clone(), e.to.clone());
            let n = per_pair.entry(key).or_insert(0);
            let (mx, my) = ((sx + ex) / 2.0, (sy + ey) / 2.0 + (*n as f64) * 16.0 - 4.0);
            *n += 1;
            let label = format!(
                "{} · {}{}",
                e.channel,
                e.kind.as_str(),
                if e.state == ShareState::Offered {
                    " (offered)"
                } else {
                    ""
                }
            );
            let _ = write!(
                s,
                "<text x=\"{mx:.1}\" y=\"{my:.1}\" text-anchor=\"middle\" fill=\"{colour}\" stroke=\"#f8fafc\" \
                 stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
                esc(&label)
            );
        }
        let mut all = vec![self.me.clone()];
        all.extend(self.nodes.iter().cloned());
        for name in &all {
            let (x, y) = self.position(name);
            let (fill, shape) = if name == &self.me {
                ("#0f172a", "me")
            } else if name.starts_with("group ") {
                ("#0d9488", "group")
            } else if name == "everyone" {
                ("#b45309", "everyone")
            } else {
                ("#334155", "user")
            };
            if shape == "group" {
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"84\" height=\"60\" rx=\"12\" fill=\"{fill}\"/>",
                    x - 42.0,
                    y - 30.0
                );
            } else {
                let _ = write!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"40\" fill=\"{fill}\"/>"
                );
            }
            let (kind, label) = match name.split_once(' ') {
                Some((k, n)) => (k, n),
                None => ("", name.as_str()),
            };
            let caption = if name == &self.me { "me" } else { kind };
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#ffffff\" font-weight=\"600\">{}</text>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#cbd5e1\" font-size=\"11\">{}</text>",
                y + 2.0,
                esc(&truncate(label, 12)),
                y + 17.0,
                esc(caption)
            );
        }
        if self.edges.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#475569\">No shares yet: offer one on the Shares page.</text>",
                W / 2.0,
                H / 2.0 + 70.0
            );
        }
        s.push_str("</svg>");
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Grantee, Share};
    use crate::domain::{ShareId, UserId};
    use crate::wire::Channel;

    fn info(from: &str, to: &str, state: ShareState) -> ShareInfo {
        ShareInfo {
            share: Share {
                id: ShareId(1),
                from: UserId(1),
                channel: Channel::new("dionaea.capture").unwrap(),
                to: Grantee::Everyone,
                kind: ShareKind::Own,
                state,
                onward: false,
            },
            from_name: from.into(),
            to_name: to.into(),
            followed: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn draws_live_shares_and_escapes_names() {
        let out = [
            info("alice", "user bob", ShareState::Accepted),
            info("alice", "group t<x>", ShareState::Offered),
            info("alice", "user carol", ShareState::Revoked),
        ];
        let p = Picture::of("alice", &out, &[]);
        let svg = p.svg();
        assert_eq!(p.edge_list().len(), 2, "revoked shares are not drawn");
        assert!(svg.contains("t&lt;x&gt;") && !svg.contains("t<x>"));
        assert!(svg.contains("dionaea.capture · own (offered)"));
        assert!(!svg.contains("carol"));
    }
}
