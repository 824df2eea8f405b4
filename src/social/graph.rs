//! The SocialGraph actor: owns the graph's derived key table and keeps it current.
//!
//! It re-reads the graph when the store's ACL version moves (changes made by this process,
//! by the CLI, or by another node), derives every key's ACL, stores the new table where
//! sessions authenticate, and tells the Broker exactly which keys changed, so that only
//! their live sessions are touched. A database outage is logged once; the broker keeps
//! serving with the ACLs it has.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture, WrapFuture,
};
use arc_swap::ArcSwap;

use super::acl::{KeyTable, Mode, changed, derive};
use super::model::Graph;
use super::ops::SocialError;
use crate::broker::messages::AclChanged;
use crate::store::{Store, StoreError};

/// Re-read the graph now (after a change made in this process), not at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

/// A social operation to run in this process (the website's path): it runs on a blocking
/// thread, and its effect on ACLs is applied at once rather than at the next poll.
pub struct Apply<T>(pub Op<T>);

/// An operation for [`Apply`].
pub type Op<T> = Box<dyn FnOnce(&Store) -> Result<T, SocialError> + Send>;

impl<T: Send + 'static> Message for Apply<T> {
    type Result = Result<T, SocialError>;
}

/// See the module doc.
pub struct SocialGraph {
    store: Store,
    mode: Mode,
    version: i64,
    table: Arc<KeyTable>,
    keys: Arc<ArcSwap<KeyTable>>,
    broker: Recipient<AclChanged>,
    every: Duration,
    loading: bool,
    again: bool,
    failing: bool,
}

impl SocialGraph {
    /// Starts from the table derived at `version`, already stored in `keys`.
    pub fn new(
        store: Store,
        mode: Mode,
        version: i64,
        keys: Arc<ArcSwap<KeyTable>>,
        broker: Recipient<AclChanged>,
        every: Duration,
    ) -> Self {
        Self {
            store,
            mode,
            version,
            table: keys.load_full(),
            keys,
            broker,
            every,
            loading: false,
            again: false,
            failing: false,
        }
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            self.again = true;
            return;
        }
        self.loading = true;
        let store = self.store.clone();
        let seen = self.version;
        let load = async move {
            tokio::task::spawn_blocking(move || -> Result<Option<(i64, Graph)>, StoreError> {
                let v = store.acl_version()?;
                if v == seen {
                    return Ok(None);
                }
                Ok(Some((v, store.load_graph()?)))
            })
            .await
        };
        ctx.spawn(load.into_actor(self).map(|res, act, ctx| {
            act.loading = false;
            match res {
                Ok(Ok(change)) => {
                    if act.failing {
                        tracing::info!("database reachable again");
                        act.failing = false;
                    }
                    if let Some((v, graph)) = change {
                        act.apply(v, &graph);
                    }
                }
                Ok(Err(e)) => act.fail(&e.to_string()),
                Err(e) => act.fail(&e.to_string()),
            }
            if std::mem::take(&mut act.again) {
                act.refresh(ctx);
            }
        }));
    }

    fn fail(&mut self, e: &str) {
        if !self.failing {
            tracing::warn!("cannot read the social graph, serving with the ACLs loaded: {e}");
        }
        self.failing = true;
    }

    fn apply(&mut self, version: i64, graph: &Graph) {
        // A slow poll that read an older graph must not undo a newer one.
        if version < self.version {
            return;
        }
        let table = Arc::new(derive(graph, self.mode));
        let idents = changed(&self.table, &table);
        self.version = version;
        if idents.is_empty() {
            return;
        }
        tracing::info!(
            version,
            keys = table.len(),
            changed = idents.len(),
            "ACLs changed: applying"
        );
        self.keys.store(Arc::clone(&table));
        self.table = Arc::clone(&table);
        self.broker.do_send(AclChanged { table, idents });
    }
}

impl Actor for SocialGraph {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |act, ctx| act.refresh(ctx));
    }
}

impl Handler<Refresh> for SocialGraph {
    type Result = ();

    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) {
        self.refresh(ctx);
    }
}

impl<T: Send + 'static> Handler<Apply<T>> for SocialGraph {
    type Result = ResponseActFuture<Self, Result<T, SocialError>>;

    fn handle(&mut self, Apply(op): Apply<T>, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        // The operation and the reload of the graph it changed run in one blocking task, and
        // the new ACLs are applied before the caller hears back: when the website says
        // "revoked", live sessions have already lost the data.
        let run = async move {
            tokio::task::spawn_blocking(move || {
                let res = op(&store);
                let reload = store.acl_version().and_then(|v| Ok((v, store.load_graph()?)));
                (res, reload)
            })
            .await
            .unwrap_or_else(|e| {
                (
                    Err(SocialError::Internal(e.to_string())),
                    Err(StoreError::NotFound(e.to_string())),
                )
            })
        };
        Box::pin(run.into_actor(self).map(|(res, reload), act, ctx| {
            match reload {
                Ok((v, graph)) => act.apply(v, &graph),
                // The poll retries (and logs once) if the database is failing.
                Err(_) => act.refresh(ctx),
            }
            res
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::social::ShareId;
    use crate::social::model::ShareKind;
    use crate::social::ops::{self, GranteeName};
    use crate::wire::{Channel, Ident};

    /// Collects what the SocialGraph tells the broker.
    struct Collector(Arc<Mutex<Vec<Vec<Ident>>>>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<AclChanged> for Collector {
        type Result = ();
        fn handle(&mut self, msg: AclChanged, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.idents);
        }
    }

    #[actix_rt::test]
    async fn applied_changes_reach_exactly_the_keys_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db").to_string_lossy()).unwrap();
        let ch = |s: &str| Channel::new(s).unwrap();
        let users: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| store.add_user(n, &format!("{n}@x.org"), "t").unwrap())
            .collect();
        for (u, ident, publish, subscribe) in [(0, "ka", "x", "x"), (1, "kb", "x", "x"), (2, "kc", "y", "y")]
        {
            let id = Some(Ident::new(ident).unwrap());
            ops::create_key(
                &store,
                &users[u],
                id,
                None,
                vec![ch(publish)],
                vec![ch(subscribe)],
                String::new(),
            )
            .unwrap();
        }
        let version = store.acl_version().unwrap();
        let keys = Arc::new(ArcSwap::from_pointee(derive(
            &store.load_graph().unwrap(),
            Mode::Social,
        )));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let broker = Collector(Arc::clone(&seen)).start();
        let graph = SocialGraph::new(
            store.clone(),
            Mode::Social,
            version,
            Arc::clone(&keys),
            broker.recipient(),
            Duration::from_secs(3600),
        )
        .start();

        let a = users[0].clone();
        let offered: ShareId = graph
            .send(Apply(Box::new(move |s: &Store| {
                ops::offer_share(s, &a, &ch("x"), &GranteeName::User("b".into()), ShareKind::Own)
            })))
            .await
            .unwrap()
            .unwrap();
        let b = users[1].clone();
        graph
            .send(Apply(Box::new(move |s: &Store| {
                ops::answer_share(s, &b, offered, true)
            })))
            .await
            .unwrap()
            .unwrap();
        // A refused operation changes nothing and says why.
        let c = users[2].clone();
        let refused = graph
            .send(Apply(Box::new(move |s: &Store| {
                ops::revoke_share(s, &c, offered)
            })))
            .await
            .unwrap();
        assert!(matches!(refused, Err(SocialError::Forbidden(_))));

        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no AclChanged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The offer alone changed nothing; the acceptance changed kb only (not ka, not kc).
        assert_eq!(*seen.lock().unwrap(), vec![vec![Ident::new("kb").unwrap()]]);
        assert!(keys.load()["kb"].sources("x").unwrap().admits(users[0].id));
    }
}
