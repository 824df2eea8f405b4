//! What a change moved and is not derived yet: a big change is absorbed into the graph at
//! once and its keys derived a slice at a time, so that a small change made meanwhile goes
//! live between two slices instead of after the last (see `social::graph`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::keys::Memo;
use super::{Delta, KeyChange, LiveGraph};
use crate::domain::acl::KeyAcl;
use crate::domain::{AuthkeyId, UserId};
use crate::wire::{Channel, Ident};

/// A key to derive anew: its owner (the order keys are derived in), its id, and the
/// channels whose sources may have moved (`None`: the whole key).
pub(super) type OwedKey = (UserId, AuthkeyId, Option<Arc<[Channel]>>);

/// Keys a change moved and that are not derived yet (see [`LiveGraph::absorb`]).
#[derive(Debug, Default)]
pub(super) struct Owed {
    /// Idents of keys gone, still in the table.
    pub(super) gone: Vec<Ident>,
    /// In owner order (an owner's keys share what they read, see `Memo`).
    pub(super) queue: Vec<OwedKey>,
    /// Those before it are done.
    pub(super) next: usize,
}

impl Owed {
    /// Nothing left to derive.
    pub(super) fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.next == self.queue.len()
    }

    /// Adds what a later change moved: a key owed twice is derived once, whole if either
    /// asks for it whole, else on both changes' channels.
    pub(super) fn merge(&mut self, later: Owed) {
        self.gone.extend(later.gone);
        let mut queue = self.queue.split_off(self.next);
        queue.extend(later.queue);
        queue.sort_unstable_by_key(|(owner, id, _)| (*owner, *id));
        let mut merged: Vec<OwedKey> = Vec::with_capacity(queue.len());
        for (owner, id, channels) in queue {
            match merged.last_mut() {
                Some((_, last, mine)) if *last == id => {
                    *mine = match (mine.take(), channels) {
                        (Some(a), Some(b)) => {
                            let mut all: Vec<Channel> = a.iter().chain(b.iter()).cloned().collect();
                            all.sort();
                            all.dedup();
                            Some(all.into())
                        }
                        _ => None,
                    };
                }
                _ => merged.push((owner, id, channels)),
            }
        }
        self.queue = merged;
        self.next = 0;
    }
}

impl LiveGraph {
    /// Applies `deltas` to the graph at once and adds the keys they may move to what is
    /// owed, to be derived by [`Self::derive_owed`] a slice at a time: between two slices
    /// a small change can be applied and go live ([`Self::apply`]); until the last slice,
    /// the table is part old, part new for the keys of this change (nobody has been told
    /// it is live).
    pub fn absorb(&mut self, deltas: impl IntoIterator<Item = Delta>) {
        let owed = self.moved_by(deltas);
        self.owed.merge(owed);
    }

    /// Derives what is owed until `until` (at least one key); returns the keys whose ACL
    /// changed, as [`Self::apply`] does.
    pub fn derive_owed(&mut self, until: Option<Instant>) -> Vec<KeyChange> {
        let mut owed = std::mem::take(&mut self.owed);
        let out = self.derive(&mut owed, until);
        self.owed = owed;
        out
    }

    /// Whether keys of an absorbed change are still to be derived.
    pub fn owing(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Derives `owed` until `until` (all of it when `None`; at least one key).
    pub(super) fn derive(&mut self, owed: &mut Owed, until: Option<Instant>) -> Vec<KeyChange> {
        let mut changes: HashMap<Ident, Option<Arc<KeyAcl>>> = Default::default();
        for ident in owed.gone.drain(..) {
            // Unless a key with that ident came (back) since and was derived already.
            let stale = self
                .table
                .get(&ident)
                .is_some_and(|acl| self.keys.get(&acl.id).is_none_or(|k| k.ident != ident));
            if stale {
                self.table.remove(&ident);
                changes.insert(ident, None);
            }
        }
        let mut memo = Memo::default();
        while owed.next < owed.queue.len() {
            let (_, id, channels) = &owed.queue[owed.next];
            owed.next += 1;
            let Some(k) = self.keys.get(id) else { continue };
            let new = match (channels, self.table.get(&k.ident)) {
                (Some(channels), Some(old)) if old.id == k.id => self.key_acl_on(k, old, channels, &mut memo),
                _ => self.key_acl(k, &mut memo),
            };
            let ident = k.ident.clone();
            let old = self.table.get(&ident);
            if old == new.as_ref() {
                changes.remove(&ident);
            } else {
                match &new {
                    Some(acl) => self.table.insert(ident.clone(), Arc::clone(acl)),
                    None => self.table.remove(&ident),
                };
                changes.insert(ident, new);
            }
            if until.is_some_and(|t| Instant::now() >= t) {
                break;
            }
        }
        if owed.next == owed.queue.len() {
            owed.queue.clear();
            owed.next = 0;
        }
        let mut out: Vec<KeyChange> = changes.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
