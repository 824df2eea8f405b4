//! The SocialGraph actor: owns the graph's derived key table and keeps it current.
//!
//! It re-reads the graph when the store's ACL version moves (changes made by this process,
//! by the CLI, or by another node), derives every key's ACL, stores the new table where
//! sessions authenticate, and tells the Broker exactly which keys changed, so that only
//! their live sessions are touched. A database outage is logged once; the broker keeps
//! serving with the ACLs it has.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture};
use arc_swap::ArcSwap;

use super::acl::{KeyTable, Mode, changed, derive};
use super::model::Graph;
use crate::broker::messages::AclChanged;
use crate::store::{Store, StoreError};

/// Re-read the graph now (after a change made in this process), not at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

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
