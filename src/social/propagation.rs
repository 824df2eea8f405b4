//! Where a change is live when its operation answers: the website, the API and the CLI
//! tell the user which nodes had applied it and which were still behind, never more.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::store::models::applied::Live;

/// The nodes a change had reached when its operation answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propagation {
    /// Running servers that had made the change live on their connections, sorted.
    pub applied_on: Vec<String>,
    /// Running servers that had not when the wait ended (at most `cluster_wait`), sorted.
    pub behind: Vec<String>,
    /// Servers that had not, and had not been heard from for longer than
    /// [`LIVE_WITHIN`](crate::store::models::applied::LIVE_WITHIN) seconds (down, or cut off
    /// from the database and so failing closed), sorted.
    pub silent: Vec<String>,
    /// Whether the other nodes could be asked at all (false: the database did not tell).
    pub confirmed: bool,
    /// How long the answer waited for the other nodes, in milliseconds.
    pub waited_ms: u64,
}

impl Propagation {
    /// Live on this node alone, with nobody else to ask (standalone, or nothing changed).
    pub fn here(node: &str) -> Self {
        Self {
            applied_on: vec![node.to_owned()],
            behind: Vec::new(),
            silent: Vec::new(),
            confirmed: true,
            waited_ms: 0,
        }
    }

    /// Every node the change concerns has it.
    pub fn is_live(&self) -> bool {
        self.confirmed && self.behind.is_empty() && self.silent.is_empty()
    }
}

/// Waits (off the actor, on a blocking thread) until every live node applied `version`,
/// at most `limit`, and says where it is live then; a node still behind is logged by name.
pub async fn wait_for_nodes(store: Store, node: &str, version: i64, limit: Duration) -> Propagation {
    let started = Instant::now();
    let res = tokio::task::spawn_blocking(move || {
        let live = store.wait_applied_at(version, limit)?;
        let silent = store.silent_nodes(version, &live)?;
        Ok::<_, crate::store::StoreError>((live, silent))
    })
    .await;
    let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let unconfirmed = |why: String| {
        tracing::warn!("cannot tell whether the other nodes applied the change: {why}");
        Propagation {
            confirmed: false,
            waited_ms,
            ..Propagation::here(node)
        }
    };
    let (live, silent) = match res {
        Ok(Ok((live, silent))) => (live, silent),
        Ok(Err(e)) => return unconfirmed(e.to_string()),
        Err(e) => return unconfirmed(e.to_string()),
    };
    if !silent.is_empty() {
        let named: Vec<String> = silent.iter().map(|(n, ago)| format!("{n} ({ago} s)")).collect();
        tracing::warn!(
            nodes = %named.join(", "),
            version,
            "answering while nodes not heard from lately had not applied the change"
        );
    }
    let silent = silent.into_iter().map(|(n, _)| n).collect();
    match live {
        Live::Applied { nodes } => Propagation {
            applied_on: nodes,
            behind: Vec::new(),
            silent,
            confirmed: true,
            waited_ms,
        },
        Live::Pending {
            version,
            behind,
            nodes,
            applied,
        } => {
            tracing::warn!(
                nodes = %nodes.join(", "),
                version,
                behind,
                waited_ms,
                "answering before every node applied the change: {behind} node(s) behind"
            );
            Propagation {
                applied_on: applied,
                behind: nodes,
                silent,
                confirmed: true,
                waited_ms,
            }
        }
    }
}
