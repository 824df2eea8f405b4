//! The *Graph* page's picture: me, the users and groups I share with or receive from, and
//! one arrow per pair (all the shares between the two, counted, listed on hover), drawn
//! server-side as SVG (no script; presentation attributes only, so the strict CSP holds).
//!
//! Readable with hundreds of shares: the others sit on one circle around me that grows with
//! them, so that no arrow from me passes through another node; names are written outside
//! their node along its ray (long ones cut, the full name in a title); an arrow's label
//! runs along it near its far end, where neighbours are furthest apart; a share through a
//! group or to everyone is drawn through that one node.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::domain::listing::ShareInfo;
use crate::domain::model::{ShareKind, ShareState};

/// Radius of a node on the circle.
const NODE: f64 = 20.0;
/// Radius of me, in the middle.
const ME: f64 = 40.0;
/// Room a node takes on the circle (its diameter and a gap).
const SPACING: f64 = 2.0 * NODE + 16.0;
/// The smallest circle, for a few nodes.
const MIN_RADIUS: f64 = 190.0;
/// Room outside the circle for names.
const NAMES: f64 = 190.0;
/// Longest name written (characters); the title has all of it.
const NAME_CHARS: usize = 26;
/// Longest channel in an arrow's label.
const LABEL_CHARS: usize = 22;

/// One share, as the table lists it.
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
    /// Arrows drawn: (from, to) → indexes into `edges` (a share through a group or to
    /// everyone is drawn as two arrows, through that node).
    arrows: BTreeMap<(String, String), Vec<usize>>,
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
            let i = p.edge(p.me.clone(), s.to_name.clone(), s);
            p.arrow(p.me.clone(), s.to_name.clone(), i);
        }
        for s in incoming.iter().filter(live) {
            let from = format!("user {}", s.from_name);
            // The table names the grantee as the share does (a group, everyone), not "me".
            let i = p.edge(from.clone(), s.to_name.clone(), s);
            if s.to_name.starts_with("user ") {
                p.arrow(from, p.me.clone(), i);
            } else {
                // Through a group, or a public offer taken up: the way it reaches me.
                p.arrow(from, s.to_name.clone(), i);
                p.arrow(s.to_name.clone(), p.me.clone(), i);
            }
        }
        p
    }

    fn node(&mut self, name: &str) {
        if name != self.me && !self.nodes.iter().any(|n| n == name) {
            self.nodes.push(name.to_owned());
        }
    }

    fn edge(&mut self, from: String, to: String, s: &ShareInfo) -> usize {
        self.edges.push(Edge {
            from,
            to,
            channel: s.share.channel.as_str().to_owned(),
            kind: s.share.kind,
            state: s.share.state,
        });
        self.edges.len() - 1
    }

    fn arrow(&mut self, from: String, to: String, edge: usize) {
        self.node(&from);
        self.node(&to);
        let list = self.arrows.entry((from, to)).or_default();
        if !list.contains(&edge) {
            list.push(edge);
        }
    }

    /// Radius of the circle the others sit on.
    fn radius(&self) -> f64 {
        (self.nodes.len() as f64 * SPACING / std::f64::consts::TAU).max(MIN_RADIUS)
    }

    /// Width and height of the canvas.
    fn size(&self) -> f64 {
        2.0 * (self.radius() + NODE + NAMES)
    }

    /// Angle of node `name` from me (radians, 0 = right, clockwise as SVG's y grows down).
    fn angle(&self, name: &str) -> f64 {
        let i = self.nodes.iter().position(|n| n == name).unwrap_or(0);
        let n = self.nodes.len().max(1) as f64;
        std::f64::consts::TAU * (i as f64) / n - std::f64::consts::FRAC_PI_2
    }

    fn position(&self, name: &str) -> (f64, f64) {
        let c = self.size() / 2.0;
        if name == self.me {
            return (c, c);
        }
        let (a, r) = (self.angle(name), self.radius());
        (c + r * a.cos(), c + r * a.sin())
    }

    /// Where near the arrow from (sx, sy) to (ex, ey) its label (`width` wide) sits clear
    /// of every node and of the labels `placed` so far (which it joins): the middle if it
    /// can, else the nearest point along the arrow or just beside it that is.
    fn label_at(
        &self,
        (sx, sy): (f64, f64),
        (ex, ey): (f64, f64),
        width: f64,
        placed: &mut Vec<(f64, f64, f64)>,
    ) -> (f64, f64) {
        let mut all: Vec<(f64, f64)> = self.nodes.iter().map(|n| self.position(n)).collect();
        all.push(self.position(&self.me));
        let clear = |(x, y): (f64, f64), placed: &[(f64, f64, f64)]| {
            let off_nodes = all.iter().all(|(nx, ny)| {
                let dx = (nx - x).abs() - width / 2.0;
                let dy = (ny - y).abs() - 8.0;
                dx.max(0.0).hypot(dy.max(0.0)) > ME + 4.0
            });
            off_nodes
                && placed
                    .iter()
                    .all(|(px, py, pw)| (px - x).abs() > (pw + width) / 2.0 + 4.0 || (py - y).abs() > 15.0)
        };
        let len = (ex - sx).hypot(ey - sy).max(1.0);
        let (nx, ny) = (-(ey - sy) / len, (ex - sx) / len);
        let mut candidates = Vec::new();
        for side in [0.0, 16.0, -16.0, 32.0, -32.0] {
            for f in [0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82] {
                candidates.push((sx + (ex - sx) * f + nx * side, sy + (ey - sy) * f + ny * side));
            }
        }
        let at = candidates
            .into_iter()
            .find(|p| clear(*p, placed))
            .unwrap_or((sx + (ex - sx) * 0.5, sy + (ey - sy) * 0.5));
        placed.push((at.0, at.1, width));
        at
    }

    /// The shares as rows for the page's table (the picture's text equivalent).
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

    /// The shares per channel, by name: (channel, from me, to me), for the summary of a
    /// picture too large to draw.
    pub fn by_channel(&self) -> Vec<Value> {
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for e in &self.edges {
            let n = per.entry(e.channel.as_str()).or_default();
            if e.from == self.me {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
        per.into_iter()
            .map(|(c, (out, inc))| json!({"channel": c, "outgoing": out, "incoming": inc}))
            .collect()
    }

    /// Arrows drawn (pairs of nodes with shares between them).
    pub fn arrow_count(&self) -> usize {
        self.arrows.len()
    }

    /// The picture.
    pub fn svg(&self) -> String {
        let size = self.size();
        let c = size / 2.0;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size:.0} {size:.0}\" width=\"{size:.0}\" height=\"{size:.0}\" role=\"img\" \
             aria-label=\"Sharing graph of {}\" font-family=\"system-ui, sans-serif\" font-size=\"12\">\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
             markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#475569\"/></marker></defs>\
             <rect width=\"{size:.0}\" height=\"{size:.0}\" fill=\"#f8fafc\"/>",
            esc(&self.me)
        );
        let mut labels = String::new();
        let mut placed = Vec::new();
        for ((from, to), list) in &self.arrows {
            let shares: Vec<&Edge> = list.iter().filter_map(|i| self.edges.get(*i)).collect();
            let (x1, y1) = self.position(from);
            let (x2, y2) = self.position(to);
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = dx.hypot(dy).max(1.0);
            let (ux, uy) = (dx / len, dy / len);
            // Arrows both ways between two nodes run side by side, not on top of each other.
            let both = self.arrows.contains_key(&(to.clone(), from.clone()));
            let (ox, oy) = if both { (-uy * 6.0, ux * 6.0) } else { (0.0, 0.0) };
            let r = |n: &str| if *n == self.me { ME } else { NODE };
            let start = (x1 + ux * (r(from) + 3.0) + ox, y1 + uy * (r(from) + 3.0) + oy);
            let end = (x2 - ux * (r(to) + 3.0) + ox, y2 - uy * (r(to) + 3.0) + oy);
            let redistribute = shares.iter().any(|e| e.kind == ShareKind::Redistribute);
            let colour = if redistribute { "#9333ea" } else { "#2563eb" };
            let offered = shares.iter().all(|e| e.state == ShareState::Offered);
            let dash = if offered { " stroke-dasharray=\"6 4\"" } else { "" };
            let width = 1.3 + (shares.len() as f64).log2().min(4.0);
            let mut title = format!("{} → {}:", display(from), display(to));
            for e in &shares {
                let _ = write!(
                    title,
                    "\n{} · {} ({})",
                    e.channel,
                    e.kind.as_str(),
                    e.state.as_str()
                );
            }
            let _ = write!(
                s,
                "<g><title>{}</title><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"{width:.1}\"{dash} marker-end=\"url(#arrow)\"/></g>",
                esc(&title),
                start.0,
                start.1,
                end.0,
                end.1
            );
            let label = match shares.as_slice() {
                [one] => format!(
                    "{} · {}{}",
                    truncate(&one.channel, LABEL_CHARS),
                    one.kind.as_str(),
                    if one.state == ShareState::Offered {
                        " (offered)"
                    } else {
                        ""
                    }
                ),
                many => format!("{} channels", many.len()),
            };
            // An arrow to or from me: its label runs along it, ending just inside the far
            // node, upright. Between two others: at the clearest point, level.
            let outer = if *from == self.me {
                Some(to)
            } else if *to == self.me {
                Some(from)
            } else {
                None
            };
            match outer {
                Some(n) => {
                    let a = self.angle(n);
                    let at = self.radius() - NODE - 12.0;
                    let (lx, ly) = (c + at * a.cos() + ox, c + at * a.sin() + oy);
                    let right = a.cos() >= 0.0;
                    let (deg, anchor) = if right {
                        (a.to_degrees(), "end")
                    } else {
                        (a.to_degrees() + 180.0, "start")
                    };
                    let _ = write!(
                        labels,
                        "<text x=\"{lx:.1}\" y=\"{ly:.1}\" dy=\"-3\" text-anchor=\"{anchor}\" transform=\"rotate({deg:.1} {lx:.1} {ly:.1})\" \
                         fill=\"{colour}\" font-size=\"11\" stroke=\"#f8fafc\" stroke-width=\"3\" paint-order=\"stroke\"><title>{}</title>{}</text>",
                        esc(&title),
                        esc(&label)
                    );
                }
                None => {
                    let (mx, my) = self.label_at(start, end, label.chars().count() as f64 * 6.5, &mut placed);
                    let _ = write!(
                        labels,
                        "<text x=\"{mx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{colour}\" font-size=\"11\" stroke=\"#f8fafc\" \
                         stroke-width=\"3\" paint-order=\"stroke\"><title>{}</title>{}</text>",
                        my + 4.0,
                        esc(&title),
                        esc(&label)
                    );
                }
            }
        }
        // Me in the middle, my name inside.
        let (name_me, _) = self
            .me
            .split_once(' ')
            .map_or((self.me.as_str(), ""), |(_, n)| (n, ""));
        let _ = write!(
            s,
            "<g><title>{}</title><circle cx=\"{c:.1}\" cy=\"{c:.1}\" r=\"{ME}\" fill=\"#0f172a\"/>\
             <text x=\"{c:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#ffffff\" font-weight=\"600\">{}</text>\
             <text x=\"{c:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#cbd5e1\" font-size=\"10\">me</text></g>",
            esc(&display(&self.me)),
            c + 2.0,
            esc(&truncate(name_me, 10)),
            c + 15.0,
        );
        for name in &self.nodes {
            let (x, y) = self.position(name);
            let fill = if name.starts_with("group ") {
                "#0d9488"
            } else if name == "everyone" {
                "#b45309"
            } else {
                "#334155"
            };
            let _ = write!(s, "<g><title>{}</title>", esc(&display(name)));
            if name.starts_with("group ") {
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{}\" rx=\"7\" fill=\"{fill}\"/>",
                    x - NODE,
                    y - NODE,
                    2.0 * NODE,
                    2.0 * NODE
                );
            } else {
                let _ = write!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE}\" fill=\"{fill}\"/>"
                );
            }
            // The kind inside, the name outside along the node's ray, upright.
            let (kind, label) = match name.split_once(' ') {
                Some((k, n)) => (k, n),
                None => ("all", name.as_str()),
            };
            let a = self.angle(name);
            let at = self.radius() + NODE + 6.0;
            let (nx, ny) = (c + at * a.cos(), c + at * a.sin());
            let (deg, anchor) = if a.cos() >= 0.0 {
                (a.to_degrees(), "start")
            } else {
                (a.to_degrees() + 180.0, "end")
            };
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#e2e8f0\" font-size=\"9\">{}</text>\
                 <text x=\"{nx:.1}\" y=\"{ny:.1}\" dy=\"4\" text-anchor=\"{anchor}\" transform=\"rotate({deg:.1} {nx:.1} {ny:.1})\" \
                 fill=\"#0f172a\" font-weight=\"600\">{}</text></g>",
                y + 3.0,
                esc(kind),
                esc(&truncate(label, NAME_CHARS))
            );
        }
        // Labels last: above every line and node.
        s.push_str(&labels);
        if self.arrows.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{c:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#475569\">No shares yet: offer one on the Shares page.</text>",
                c + 70.0
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// A node's name for people: "everyone", or the user or group name with what it is.
fn display(name: &str) -> String {
    match name.split_once(' ') {
        Some((kind, n)) => format!("{n} ({kind})"),
        None => name.to_owned(),
    }
}

/// `s` cut to `n` characters in the middle, where names of a community tend to agree
/// (`researcher-…-017`): the start and the end tell them apart.
fn truncate(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_owned();
    }
    let head = (n - 1) / 2;
    let tail = n - 1 - head;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(count - tail));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Grantee, Share};
    use crate::domain::{ShareId, UserId};
    use crate::wire::Channel;

    fn info(from: &str, to: &str, state: ShareState) -> ShareInfo {
        info_on(from, to, state, "dionaea.capture")
    }

    fn info_on(from: &str, to: &str, state: ShareState, channel: &str) -> ShareInfo {
        ShareInfo {
            share: Share {
                id: ShareId(1),
                from: UserId(1),
                channel: Channel::new(channel).unwrap(),
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

    #[test]
    fn shares_between_a_pair_are_one_arrow_and_public_ones_go_through_everyone() {
        let out: Vec<ShareInfo> = (0..5)
            .map(|i| info_on("alice", "user bob", ShareState::Accepted, &format!("c{i}")))
            .collect();
        let inc = [
            info("dave", "everyone", ShareState::Accepted),
            info("erin", "everyone", ShareState::Accepted),
            info("frank", "group crew", ShareState::Accepted),
        ];
        let p = Picture::of("alice", &out, &inc);
        // alice→bob; dave→everyone, erin→everyone, everyone→alice; frank→crew, crew→alice.
        assert_eq!(p.arrow_count(), 6);
        let svg = p.svg();
        assert!(svg.contains(">5 channels</text>"), "{svg}");
        assert!(svg.contains("c0 · own (accepted)") && svg.contains("c4 · own (accepted)"));
        assert_eq!(
            svg.matches("<title>everyone</title>").count(),
            1,
            "one everyone node"
        ); // The table names a share's grantee as it is: a group, everyone, not "user alice".
        let rows = p.edge_list();
        assert!(
            rows.iter()
                .any(|r| r["from"] == "user frank" && r["to"] == "group crew"),
            "{rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| r["from"] == "user dave" && r["to"] == "everyone"),
            "{rows:?}"
        );
    }

    #[test]
    fn two_hundred_shares_keep_nodes_apart_and_labels_off_them() {
        let out: Vec<ShareInfo> = (0..200)
            .map(|i| {
                info_on(
                    "alice",
                    &format!("user researcher-with-a-long-name-{:03}", i % 120),
                    ShareState::Accepted,
                    &format!("c{i}"),
                )
            })
            .collect();
        let p = Picture::of("alice", &out, &[]);
        assert_eq!(p.arrow_count(), 120);
        let at: Vec<(f64, f64)> = p.nodes.iter().map(|n| p.position(n)).collect();
        let me = p.position(&p.me);
        for (i, a) in at.iter().enumerate() {
            for b in &at[i + 1..] {
                assert!(
                    (a.0 - b.0).hypot(a.1 - b.1) >= 2.0 * NODE + 10.0,
                    "nodes overlap: {a:?} {b:?}"
                );
            }
            // No arrow from me passes through another node: they all sit on one circle.
            assert!(((a.0 - me.0).hypot(a.1 - me.1) - p.radius()).abs() < 0.01);
        }
        // Neighbours are far enough apart where the labels end that two never touch.
        let inner = p.radius() - NODE - 12.0 - LABEL_CHARS as f64 * 6.5;
        assert!(
            inner * std::f64::consts::TAU / p.nodes.len() as f64 > 2.0 * 12.0,
            "{inner}"
        );
        let svg = p.svg();
        assert!(
            svg.contains(">researcher-w…long-name-007</text>"),
            "long names are cut in the middle"
        );
        assert!(svg.contains("<title>researcher-with-a-long-name-007 (user)</title>"));
    }
}
