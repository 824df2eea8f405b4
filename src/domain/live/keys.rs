//! A key's ACL from the live graph: its sources per channel, read once per owner and
//! channel while keys are derived in owner order.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::LiveGraph;
use crate::domain::UserId;
use crate::domain::acl::{KeyAcl, KeyRecord, Mode, Sources};
use crate::wire::Channel;

impl LiveGraph {
    /// `sources(r, c)` from the cached channel state (ARCHITECTURE.md's rule).
    pub(super) fn sources(&self, r: UserId, c: &Channel) -> BTreeSet<UserId> {
        let Some(state) = self.channels.get(c) else {
            return BTreeSet::from([r]);
        };
        // Gathered in a list and sorted once: a set built from sorted input is built in
        // one pass, where inserting a large closure one by one rebalances all the way.
        let mut out = vec![r];
        let ctx = self.ctx();
        for s in ctx.taken_by(state, r) {
            out.push(s.from);
            if s.redistribute {
                out.extend(ctx.forwards(state, s.from));
            }
        }
        out.retain(|q| !self.blocked(r, *q));
        out.sort_unstable();
        out.dedup();
        out.into_iter().collect()
    }

    /// `old` with the sources of `channels` read anew (the key and its owner unchanged).
    pub(super) fn key_acl_on(
        &self,
        k: &KeyRecord,
        old: &Arc<KeyAcl>,
        channels: &[Channel],
        memo: &mut Memo,
    ) -> Option<Arc<KeyAcl>> {
        if self.mode == Mode::Open {
            return Some(Arc::clone(old));
        }
        let mut acl: Option<KeyAcl> = None;
        for c in channels {
            if !old.subscribe.contains_key(c) {
                continue;
            }
            let new = Sources::Users(self.sources_memo(memo, k.owner, c));
            if old.subscribe.get(c) != Some(&new) {
                acl.get_or_insert_with(|| KeyAcl::clone(old))
                    .subscribe
                    .insert(c.clone(), new);
            }
        }
        Some(acl.map_or_else(|| Arc::clone(old), Arc::new))
    }

    /// [`Self::sources`] shared by an owner's keys: read once per channel while keys are
    /// derived in owner order.
    pub(super) fn sources_memo(&self, memo: &mut Memo, r: UserId, c: &Channel) -> Arc<BTreeSet<UserId>> {
        if memo.owner != Some(r) {
            memo.owner = Some(r);
            memo.sets.clear();
        }
        if let Some((_, set)) = memo.sets.iter().find(|(m, _)| m == c) {
            return Arc::clone(set);
        }
        let set = Arc::new(self.sources(r, c));
        memo.sets.push((c.clone(), Arc::clone(&set)));
        set
    }

    /// The ACL of `k` from the live graph (`None`: the key or its owner is disabled).
    pub(super) fn key_acl(&self, k: &KeyRecord, memo: &mut Memo) -> Option<Arc<KeyAcl>> {
        if !k.enabled || !self.enabled(k.owner) {
            return None;
        }
        Some(Arc::new(KeyAcl::of(k, self.mode, |c| {
            self.sources_memo(memo, k.owner, c)
        })))
    }
}

/// The sources of one owner's channels read so far (see [`LiveGraph::sources_memo`]):
/// an owner's keys mostly list the same channels, and then share one set.
#[derive(Default)]
pub(super) struct Memo {
    owner: Option<UserId>,
    sets: Vec<(Channel, Arc<BTreeSet<UserId>>)>,
}
