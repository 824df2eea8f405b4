//! The hpfeeds broker: listeners, sessions, routing and outboxes.
//!
//! Two planes (ARCHITECTURE.md): the [`control::Broker`] actor registers sessions and
//! subscriptions and writes routes; sessions publish straight into the [`router::Router`]
//! and subscribers' [`outbox::Outbox`]es, with no actor hop, database or lock across I/O.

pub mod connection;
pub mod control;
pub mod handle;
pub mod keylog;
pub mod listener;
pub mod messages;
pub mod outbox;
pub mod refusal;
pub mod remote;
pub mod router;
pub mod session;
pub mod stats;
pub mod throttle;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix::Addr;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::acl::KeyTable;

/// What every connection task shares.
pub struct Shared {
    /// The running configuration.
    pub config: Arc<Config>,
    /// The data plane's routing table.
    pub router: Arc<router::Router>,
    /// Keys to authenticate against (swapped by the Broker on change).
    pub keys: Arc<ArcSwap<KeyTable>>,
    /// The control plane.
    pub broker: Addr<control::Broker>,
    /// Counters.
    pub stats: Arc<stats::Stats>,
    /// Misuse of keys, for their owners.
    pub key_log: Arc<keylog::KeyLog>,
    /// Delays answers to repeated failed auths.
    pub throttle: throttle::AuthThrottle,
    /// Source of session ids.
    pub next_session: AtomicU64,
    /// Cancelled when shutdown starts: stop accepting and reading, flush outboxes.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown grace period is over: drop every connection.
    pub hard_kill: CancellationToken,
    /// The other nodes of a cluster (`None` on one node).
    pub remote: Option<Arc<dyn remote::Remote>>,
}
