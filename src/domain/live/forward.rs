//! The redistribution closure of one channel kept current by delete and re-derive: a
//! change costs the facts it moves, not the closure it sits in.
//!
//! A fact is "q ∈ forwards(x)": q's data reaches x in a form x may pass on. `forwards(x)`
//! is x's base (the users whose shares to x allow onward travel) and `forward(x)`, what
//! reaches x through onward redistribution: for each onward redistribute share x takes
//! from s, `forwards(s)` less the users x blocked, less x itself. The state stores only
//! `forward` (the base is read from the receptions).
//!
//! When the receptions of some users (the seeds) were re-taken: the facts that travelled
//! along an edge the change removed (a source x no longer takes, a base entry gone, a user
//! x now blocks) are deleted, and the deletion follows the onward edges downstream; each
//! deleted fact with another derivation is restored; then what was restored and what the
//! change added (new sources, new base entries, what an unblock lets through) travels on,
//! one (user, fact) at a time. A block at the head of long chains touches each user below
//! it once for the fact it loses; a group that accepts a share hands each member what the
//! sharer forwards, without rebuilding what the members held.

use std::rc::Rc;

use super::{ChannelState, Ctx, IdMap, IdSet, Taken};
use crate::domain::UserId;

/// One user's `forward` while the fixpoint runs: the sorted list it is stored as, or, once
/// it takes many additions (a seed rebuilt, a user below a big change), a set, so that
/// building a large closure costs a hash insert per fact rather than a shift.
enum Facts {
    Sorted(Vec<UserId>, u32),
    Set(IdSet<UserId>),
}

/// Additions a sorted list takes in place before it becomes a set.
const SORTED_ADDS: u32 = 32;

impl Facts {
    fn contains(&self, q: UserId) -> bool {
        match self {
            Facts::Sorted(v, _) => v.binary_search(&q).is_ok(),
            Facts::Set(s) => s.contains(&q),
        }
    }

    fn add(&mut self, q: UserId) -> bool {
        match self {
            Facts::Sorted(v, adds) => match v.binary_search(&q) {
                Ok(_) => false,
                Err(i) => {
                    v.insert(i, q);
                    *adds += 1;
                    if *adds > SORTED_ADDS {
                        *self = Facts::Set(v.drain(..).collect());
                    }
                    true
                }
            },
            Facts::Set(s) => s.insert(q),
        }
    }

    fn remove(&mut self, q: UserId) -> bool {
        match self {
            Facts::Sorted(v, _) => match v.binary_search(&q) {
                Ok(i) => {
                    v.remove(i);
                    true
                }
                Err(_) => false,
            },
            Facts::Set(s) => s.remove(&q),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = UserId> + '_> {
        match self {
            Facts::Sorted(v, _) => Box::new(v.iter().copied()),
            Facts::Set(s) => Box::new(s.iter().copied()),
        }
    }

    fn into_sorted(self) -> Vec<UserId> {
        match self {
            Facts::Sorted(v, _) => v,
            Facts::Set(s) => {
                let mut v: Vec<UserId> = s.into_iter().collect();
                v.sort_unstable();
                v
            }
        }
    }
}

/// Each user's `forward`: the channel's lists as stored, and the users this change
/// touched, taken out of them on first write (so a change costs what it touches, not a
/// pass over the channel).
struct Forward {
    stored: IdMap<UserId, Vec<UserId>>,
    touched: IdMap<UserId, Facts>,
}

impl Forward {
    fn contains(&self, x: UserId, q: UserId) -> bool {
        match self.touched.get(&x) {
            Some(f) => f.contains(q),
            None => self.stored.get(&x).is_some_and(|v| v.binary_search(&q).is_ok()),
        }
    }

    fn iter(&self, x: UserId) -> Box<dyn Iterator<Item = UserId> + '_> {
        match self.touched.get(&x) {
            Some(f) => f.iter(),
            None => Box::new(self.stored.get(&x).into_iter().flatten().copied()),
        }
    }

    fn facts_mut(&mut self, x: UserId) -> &mut Facts {
        let stored = &mut self.stored;
        self.touched
            .entry(x)
            .or_insert_with(|| Facts::Sorted(stored.remove(&x).unwrap_or_default(), 0))
    }

    /// The lists to store again.
    fn finish(self) -> IdMap<UserId, Vec<UserId>> {
        let mut stored = self.stored;
        for (x, f) in self.touched {
            let list = f.into_sorted();
            if !list.is_empty() {
                stored.insert(x, list);
            }
        }
        stored
    }
}

/// What the fixpoint reads, with what it learns of the (unchanging) receptions cached.
struct Fix<'a, 'c> {
    state: &'a ChannelState,
    ctx: &'a Ctx<'c>,
    forward: Forward,
    bases: IdMap<UserId, IdSet<UserId>>,
    sources: IdMap<UserId, Rc<[UserId]>>,
    succ: IdMap<UserId, Rc<[UserId]>>,
}

impl Fix<'_, '_> {
    fn base(&mut self, x: UserId) -> &IdSet<UserId> {
        let (state, ctx) = (self.state, self.ctx);
        self.bases
            .entry(x)
            .or_insert_with(|| ctx.base(state, x).collect())
    }

    /// The users x takes an onward redistribute share from (whose `forwards` x inherits).
    fn sources(&mut self, x: UserId) -> Rc<[UserId]> {
        let (state, ctx) = (self.state, self.ctx);
        self.sources
            .entry(x)
            .or_insert_with(|| {
                let mut from: Vec<UserId> = ctx
                    .taken_by(state, x)
                    .filter(|t| t.feeds_forward_of(x))
                    .map(|t| t.from)
                    .collect();
                from.sort_unstable();
                from.dedup();
                from.into()
            })
            .clone()
    }

    /// The users that inherit x's `forwards`.
    fn succ(&mut self, x: UserId) -> Rc<[UserId]> {
        if let Some(s) = self.succ.get(&x) {
            return Rc::clone(s);
        }
        let mut down: Vec<UserId> = self.ctx.downstream(self.state, x).collect();
        down.sort_unstable();
        down.dedup();
        down.retain(|r| *r != x && self.sources(*r).binary_search(&x).is_ok());
        let down: Rc<[UserId]> = down.into();
        self.succ.insert(x, Rc::clone(&down));
        down
    }

    fn in_forward(&self, x: UserId, q: UserId) -> bool {
        self.forward.contains(x, q)
    }

    fn holds(&mut self, x: UserId, q: UserId) -> bool {
        self.in_forward(x, q) || self.base(x).contains(&q)
    }

    /// Adds every fact of x now to `into`, but for x itself and what x blocked (the
    /// filter x applies to what it inherits).
    fn inherit(&mut self, from: UserId, x: UserId, into: &mut IdSet<UserId>) {
        self.base(from);
        let blocks = self.ctx.blocks;
        let keep = |q: &UserId| *q != x && !blocks.contains(&(x, *q));
        into.extend(self.bases[&from].iter().copied().filter(keep));
        into.extend(self.forward.iter(from).filter(keep));
    }

    /// Adds q to `forward(x)`; false when it was there.
    fn add(&mut self, x: UserId, q: UserId) -> bool {
        if self.forward.contains(x, q) {
            return false;
        }
        self.forward.facts_mut(x).add(q)
    }

    /// Takes q out of `forward(x)`; false when it was not there.
    fn remove(&mut self, x: UserId, q: UserId) -> bool {
        self.forward.contains(x, q) && self.forward.facts_mut(x).remove(q)
    }

    /// Whether x may take q from its sources now.
    fn derivable(&mut self, x: UserId, q: UserId) -> bool {
        if q == x || self.ctx.blocks.contains(&(x, q)) {
            return false;
        }
        let sources = self.sources(x);
        sources.iter().any(|s| self.holds(*s, q))
    }
}

/// What a seed took before, read as edges.
struct Was {
    sources: IdSet<UserId>,
    base: IdSet<UserId>,
}

impl Was {
    fn of(x: UserId, taken: &[Taken]) -> Was {
        Was {
            sources: taken
                .iter()
                .filter(|t| t.feeds_forward_of(x))
                .map(|t| t.from)
                .collect(),
            base: taken.iter().filter(|t| t.in_base_of(x)).map(|t| t.from).collect(),
        }
    }
}

/// Brings `state.forward` in line after the receptions of `seeds` were re-taken (and the
/// blocks of `blockers` changed); `before` holds what each seed took before. Returns the
/// users whose `forwards` moved (every seed among them).
pub(super) fn refix(
    state: &mut ChannelState,
    ctx: &Ctx<'_>,
    seeds: &IdSet<UserId>,
    blockers: &IdMap<UserId, Vec<UserId>>,
    before: &IdMap<UserId, Vec<Taken>>,
) -> IdSet<UserId> {
    let forward = Forward {
        stored: std::mem::take(&mut state.forward),
        touched: Default::default(),
    };
    let mut fix = Fix {
        state,
        ctx,
        forward,
        bases: Default::default(),
        sources: Default::default(),
        succ: Default::default(),
    };
    let was: IdMap<UserId, Was> = seeds
        .iter()
        .map(|x| (*x, Was::of(*x, before.get(x).map_or(&[][..], |t| &t[..]))))
        .collect();
    // A fact of s as it was: a seed's base has been re-taken, its `forward` not yet.
    let old_facts = |fix: &mut Fix<'_, '_>, s: UserId| -> Vec<UserId> {
        let mut out: Vec<UserId> = match was.get(&s) {
            Some(w) => w.base.iter().copied().collect(),
            None => fix.base(s).iter().copied().collect(),
        };
        out.extend(fix.forward.iter(s));
        out
    };
    // The facts that travelled along a removed edge (read before anything is deleted).
    let mut lost: Vec<(UserId, UserId)> = Vec::new();
    for (&x, w) in &was {
        let now = fix.sources(x);
        for &s in w.sources.iter().filter(|s| now.binary_search(s).is_err()) {
            lost.extend(old_facts(&mut fix, s).into_iter().map(|q| (x, q)));
        }
        let base = fix.base(x);
        lost.extend(w.base.iter().filter(|q| !base.contains(q)).map(|q| (x, *q)));
        // A blocker's receptions before are read through its blocks now: everything it
        // held may have travelled through a share the change cut.
        if let Some(blocked) = blockers.get(&x) {
            lost.extend(old_facts(&mut fix, x).into_iter().map(|q| (x, q)));
            lost.extend(blocked.iter().map(|q| (x, *q)));
        }
    }
    // Over-delete: those facts, and downstream whatever was inherited of them.
    let mut deleted: IdMap<UserId, IdSet<UserId>> = Default::default();
    let mut gone: Vec<(UserId, UserId)> = Vec::new();
    for (x, q) in lost {
        if q == x || fix.base(x).contains(&q) {
            continue;
        }
        let was_base = was.get(&x).is_some_and(|w| w.base.contains(&q))
            || blockers.get(&x).is_some_and(|b| b.contains(&q));
        if (fix.remove(x, q) || was_base) && deleted.entry(x).or_default().insert(q) {
            gone.push((x, q));
        }
    }
    while let Some((s, q)) = gone.pop() {
        for &r in fix.succ(s).iter() {
            if fix.remove(r, q) {
                deleted.entry(r).or_default().insert(q);
                gone.push((r, q));
            }
        }
    }
    // Re-derive what has another derivation, then add what the change brought.
    let mut fresh: Vec<(UserId, UserId)> = Vec::new();
    for (r, qs) in &deleted {
        for &q in qs {
            if !fix.holds(*r, q) && fix.derivable(*r, q) && fix.add(*r, q) {
                fresh.push((*r, q));
            }
        }
    }
    let mut grew: IdSet<UserId> = Default::default();
    for (&x, w) in &was {
        let mut gained: IdSet<UserId> = Default::default();
        for &s in fix.sources(x).iter() {
            if blockers.contains_key(&x) || !w.sources.contains(&s) {
                fix.inherit(s, x, &mut gained);
            }
        }
        let base = fix.base(x).clone();
        for q in gained {
            if !base.contains(&q) && fix.add(x, q) {
                fresh.push((x, q));
            }
        }
        let unblocked = blockers.contains_key(&x);
        for &q in base.iter().filter(|q| unblocked || !w.base.contains(q)) {
            // Now in the base: out of `forward` (where it may have been), and new to
            // whoever inherits from x unless it was there.
            if !fix.remove(x, q) {
                fresh.push((x, q));
            }
        }
    }
    while let Some((s, q)) = fresh.pop() {
        for &r in fix.succ(s).iter() {
            if q == r || ctx.blocks.contains(&(r, q)) || fix.holds(r, q) {
                continue;
            }
            fix.add(r, q);
            fresh.push((r, q));
            if !deleted.get(&r).is_some_and(|d| d.contains(&q)) {
                grew.insert(r);
            }
        }
    }
    let mut moved: IdSet<UserId> = seeds.clone();
    moved.extend(grew);
    for (r, qs) in deleted {
        if qs.iter().any(|q| !fix.holds(r, *q)) {
            moved.insert(r);
        }
    }
    state.forward = fix.forward.finish();
    moved
}

/// `state.forward` from nothing (a channel settled for the first time, at start): the
/// least fixpoint built forward only, one (user, fact) at a time from each sharer's base,
/// with nothing to delete. What [`refix`] gives with every receiver a seed and nothing
/// before, at a fraction of the cost: the inheriting edges are read share by share (a
/// group's members only for its onward redistribute shares), and a receiver's base is read
/// only when a fact reaches it, so most receivers are never looked at.
pub(super) fn build(state: &mut ChannelState, ctx: &Ctx<'_>) {
    // Who inherits from whom: sharer → the receivers of its onward redistribute shares.
    let mut succ: IdMap<UserId, Vec<UserId>> = Default::default();
    for (&r, taken) in &state.incoming {
        for t in taken.iter().filter(|t| t.feeds_forward_of(r)) {
            succ.entry(t.from).or_default().push(r);
        }
    }
    for (g, taken) in &state.group_in {
        let members = ctx.members.get(g).into_iter().flatten();
        for t in taken.iter().filter(|t| t.redistribute && t.onward) {
            let heirs = members
                .clone()
                .filter(|&&m| t.feeds_forward_of(m) && !ctx.blocks.contains(&(m, t.from)));
            succ.entry(t.from).or_default().extend(heirs);
        }
    }
    for heirs in succ.values_mut() {
        heirs.sort_unstable();
        heirs.dedup();
    }
    let mut bases: IdMap<UserId, IdSet<UserId>> = Default::default();
    let mut work: Vec<(UserId, UserId)> = Vec::new();
    for &s in succ.keys() {
        let base: IdSet<UserId> = ctx.base(state, s).collect();
        work.extend(base.iter().map(|&q| (s, q)));
        bases.insert(s, base);
    }
    let mut forward: IdMap<UserId, IdSet<UserId>> = Default::default();
    while let Some((s, q)) = work.pop() {
        for &r in succ.get(&s).into_iter().flatten() {
            if q == r || ctx.blocks.contains(&(r, q)) {
                continue;
            }
            let base = bases.entry(r).or_insert_with(|| ctx.base(state, r).collect());
            if !base.contains(&q) && forward.entry(r).or_default().insert(q) {
                work.push((r, q));
            }
        }
    }
    state.forward = forward
        .into_iter()
        .map(|(x, f)| {
            let mut v: Vec<UserId> = f.into_iter().collect();
            v.sort_unstable();
            (x, v)
        })
        .collect();
}
