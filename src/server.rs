//! `serve`: wires the parts together — the social graph loaded from the store, the
//! SocialGraph and Broker actors, the listener, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix::Actor;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::control::Broker;
use crate::broker::keylog::KeyLog;
use crate::broker::router::Router;
use crate::broker::stats::Stats;
use crate::broker::throttle::AuthThrottle;
use crate::broker::{Shared, listener};
use crate::cluster::Backplane;
use crate::config::Config;
use crate::domain::acl::Mode;
use crate::domain::live::LiveGraph;
use crate::mail::Mailer;
use crate::social::graph::SocialGraph;
use crate::store::{Store, StoreError};
use crate::web::WebState;

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The hpfeeds port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed at start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking database task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The website could not start (its port, the mail setup, its templates).
    #[error("cannot start the website: {0}")]
    Web(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The cluster backplane could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Another running node has this node's name: both would ignore each other's traffic.
    #[error(
        "node_id {0:?} is in use by another running node (it reported in the shared database \
         while this one waited); give every node its own node_id"
    )]
    NodeIdInUse(String),
}

/// Where a running broker can be reached.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// The hpfeeds TCP listener's bound address (the real port when 0 was asked for).
    pub hpfeeds: SocketAddr,
    /// The hpfeeds TLS listener's bound address, when it runs.
    pub tls: Option<SocketAddr>,
    /// The website's bound address, when it runs.
    pub web: Option<SocketAddr>,
    /// The metrics listener's bound address, when it runs.
    pub metrics: Option<SocketAddr>,
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServeError> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}

/// The running parts of one node without its listeners: what `serve` wires to sockets, and
/// what the website's handler tests drive directly.
pub struct Core {
    /// What every connection (and the live view) shares.
    pub shared: Arc<Shared>,
    /// The SocialGraph actor: social operations and ACL derivation.
    pub graph: actix::Addr<SocialGraph>,
    /// The cluster backplane, when this node is one of several.
    pub backplane: Option<Arc<Backplane>>,
    /// Stops the key-log writer.
    key_log_stop: CancellationToken,
    /// The key-log writer, flushed at shutdown.
    key_log_writer: tokio::task::JoinHandle<()>,
}

impl Core {
    /// Loads the social graph and starts the Broker, SocialGraph and key-log writer. Must
    /// run inside an actix `System`.
    pub async fn start(
        config: Config,
        store: &Store,
        shutdown: CancellationToken,
    ) -> Result<Core, ServeError> {
        let mode = if config.open { Mode::Open } else { Mode::Social };
        let started = std::time::Instant::now();
        let (version, live) = blocking(store, move |s| {
            let t = std::time::Instant::now();
            let (version, graph) = s.load_graph_versioned()?;
            tracing::debug!(
                ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
                "read the social graph"
            );
            Ok((version, LiveGraph::new(graph, mode)))
        })
        .await?;
        let table = live.table().clone();
        tracing::info!(
            keys = table.len(),
            shares = live.share_count(),
            mode = ?mode,
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "loaded the social graph"
        );

        let config = Arc::new(config);
        let keys = Arc::new(ArcSwap::from_pointee(table));
        let stats = Arc::new(Stats::default());
        let router = Arc::new(Router::new(config.slow_consumer, Arc::clone(&stats)));
        let broker = Broker::new(
            Arc::clone(&router),
            Arc::clone(&keys),
            Arc::clone(&stats),
            config.max_subscriptions,
        )
        .with_usage_store(store.clone(), USAGE_FLUSH)
        .with_key_subscription_limit(config.max_subscriptions_per_key)
        .start();
        // One name for this node, in the shared database and on the backplane.
        let node = if config.node_id.is_empty() {
            crate::cluster::made_up_node_id()
        } else {
            ensure_node_id_free(store, &config.node_id).await?;
            config.node_id.clone()
        };
        let backplane = if config.nats_url.is_empty() {
            None
        } else {
            Some(
                Backplane::start(
                    &crate::cluster::link::Link::from_config(&config),
                    &config.nats_prefix,
                    node.clone(),
                    Arc::clone(&router),
                    config.stall_timeout(),
                    config
                        .nats_jetstream
                        .then(|| crate::cluster::jetstream::Retention {
                            max_age: Duration::from_secs(config.nats_retention_secs),
                            max_bytes: config.nats_stream_max_bytes,
                            replicas: config.nats_replicas as usize,
                        }),
                    shutdown.clone(),
                )
                .await?,
            )
        };
        let remote = backplane
            .clone()
            .map(|b| b as Arc<dyn crate::broker::remote::Remote>);
        if let Some(r) = &remote {
            // Queued before any session's registration: presence notices cross nodes from
            // the first.
            broker.do_send(crate::broker::messages::UseRemote(Arc::clone(r)));
        }
        let key_log_stop = CancellationToken::new();
        let (key_log, key_log_writer) =
            KeyLog::start(store.clone(), Arc::clone(&stats), key_log_stop.clone());
        let shared = Arc::new(Shared {
            key_log,
            config: Arc::clone(&config),
            router,
            keys,
            broker: broker.clone(),
            stats,
            throttle: AuthThrottle::new(config.auth_free_failures),
            next_session: AtomicU64::new(1),
            shutdown,
            hard_kill: CancellationToken::new(),
            remote,
        });
        let graph = SocialGraph::new(
            store.clone(),
            live,
            version,
            Arc::clone(&shared.keys),
            broker.recipient(),
            Duration::from_millis(config.acl_poll_ms.max(10)),
        )
        .with_node(node)
        .with_stats(Arc::clone(&shared.stats))
        // Only PostgreSQL has writers this server cannot see fail (other nodes, a CLI on
        // another host); a SQLite file is shared by local processes alone.
        .with_stale_after(
            (matches!(store.backend(), crate::store::Backend::Postgres) && config.graph_stale_after_secs > 0)
                .then(|| Duration::from_secs(config.graph_stale_after_secs)),
        )
        .with_cluster_wait(
            backplane
                .is_some()
                .then(|| Duration::from_millis(config.cluster_apply_wait_ms)),
        )
        .start();
        Ok(Core {
            shared,
            graph,
            backplane,
            key_log_stop,
            key_log_writer,
        })
    }

    /// Writes what the key log still holds.
    pub async fn stop(self) {
        self.key_log_stop.cancel();
        let _ = self.key_log_writer.await;
    }
}

/// Runs the broker until `shutdown` is cancelled, then flushes outboxes for up to
/// `shutdown_grace_secs`. Must run inside an actix `System` (the Broker is an actor).
pub async fn serve(
    config: Config,
    store: Store,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Endpoints),
) -> Result<(), ServeError> {
    let (listener, hpfeeds) = bind(config.listen).await?;
    let tls = match crate::tls::configured(&config.tls_cert, &config.tls_key)? {
        None => None,
        Some((cert, key)) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(cert, key, &[])?);
            let (l, addr) = bind(config.tls_listen).await?;
            Some((l, addr, acceptor))
        }
    };
    // Every listener is bound before any actor starts: a port taken is one error line and
    // nothing left running.
    let web_listener = if config.web_listen.is_empty() {
        None
    } else {
        Some(bind_web(&config.web_listen)?)
    };
    let metrics_listener = if config.metrics_listen.is_empty() {
        None
    } else {
        Some(bind_web(&config.metrics_listen)?)
    };
    let core = Core::start(config.clone(), &store, shutdown.clone()).await?;
    let shared = Arc::clone(&core.shared);
    let stats = Arc::clone(&shared.stats);
    let social = core.graph.clone();
    let cluster = shared.remote.clone();
    let website = match web_listener {
        None => None,
        Some(listener) => match start_web(&config, &store, social.clone(), Arc::clone(&shared), listener) {
            Ok(w) => Some(w),
            Err(e) => {
                core.stop().await;
                return Err(e);
            }
        },
    };
    let metrics = match metrics_listener {
        None => None,
        Some(listener) => {
            let m = crate::metrics::Metrics::new(
                Arc::clone(&shared),
                store.clone(),
                website.as_ref().map(|w| w.2.clone()),
            );
            match start_metrics(m, listener) {
                Ok(w) => Some(w),
                Err(e) => {
                    core.stop().await;
                    return Err(e);
                }
            }
        }
    };
    let background = TaskTracker::new();
    if config.stats_interval_secs > 0 {
        background.spawn(log_stats(
            Arc::clone(&stats),
            cluster.clone(),
            Duration::from_secs(config.stats_interval_secs),
            shutdown.clone(),
        ));
    }
    tracing::info!(%hpfeeds, "hpfeeds broker listening");
    if let Some((_, addr, _)) = &tls {
        tracing::info!(%addr, "hpfeeds TLS listener");
    }
    on_ready(Endpoints {
        hpfeeds,
        tls: tls.as_ref().map(|t| t.1),
        web: website.as_ref().map(|w| w.0),
        metrics: metrics.as_ref().map(|m| m.0),
    });

    // The accept loops (and every connection, spawned by them) run on the runtime's worker
    // threads, never on the thread the actors share: a busy control plane cannot delay an
    // accept or a handshake.
    let connections = TaskTracker::new();
    let limits = listener::Limits::new(&shared);
    let plain = tokio::spawn(listener::run(
        listener,
        Arc::clone(&shared),
        connections.clone(),
        limits.clone(),
        None,
    ));
    let secure = tls.map(|(l, _, acceptor)| {
        tokio::spawn(listener::run(
            l,
            Arc::clone(&shared),
            connections.clone(),
            limits,
            Some(acceptor),
        ))
    });
    if let Err(e) = plain.await {
        tracing::error!("the hpfeeds listener failed: {e}");
    }
    if let Some(secure) = secure
        && let Err(e) = secure.await
    {
        tracing::error!("the hpfeeds TLS listener failed: {e}");
    }

    tracing::info!("shutting down: flushing outboxes");
    if let Some((_, handle, _)) = &website {
        handle.stop(true).await;
    }
    if let Some((_, handle)) = &metrics {
        handle.stop(true).await;
    }
    connections.close();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("grace period over: dropping the remaining connections");
        shared.hard_kill.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), connections.wait()).await;
    }
    background.close();
    background.wait().await;
    drop(social);
    core.stop().await;
    if let Some(c) = &cluster {
        tracing::info!("cluster at stop: {}", c.counters());
    }
    tracing::info!("stopped: {}", stats.summary());
    Ok(())
}

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`): room for a
/// burst of sensors reconnecting at once.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener; returns it with its real address (the port, when 0 was asked for).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    let l = socket.listen(LISTEN_BACKLOG).map_err(err)?;
    let bound = l.local_addr().map_err(err)?;
    Ok((l, bound))
}

/// How often each key's traffic counters are written to the database.
const USAGE_FLUSH: Duration = Duration::from_secs(5);

/// Binds the website's port.
fn bind_web(addr: &str) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| ServeError::Web(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Web(e.to_string()))?;
    Ok(listener)
}

/// Starts the mailer and serves the site on `listener` in this actix system.
fn start_web(
    config: &Config,
    store: &Store,
    graph: actix::Addr<SocialGraph>,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
) -> Result<(SocketAddr, actix_web::dev::ServerHandle, Mailer), ServeError> {
    let web_err = |e: &dyn std::fmt::Display| ServeError::Web(e.to_string());
    let addr = listener.local_addr().map_err(|e| web_err(&e))?;
    let mut site = config.clone();
    let https = match crate::tls::configured(&config.tls_cert, &config.tls_key)? {
        Some((cert, key)) if config.web_tls => {
            Some(crate::tls::server_config(cert, key, &[b"h2", b"http/1.1"])?)
        }
        _ => None,
    };
    if site.public_url.is_empty() {
        let scheme = if https.is_some() { "https" } else { "http" };
        site.public_url = format!("{scheme}://{addr}");
    }
    // Cookies only over HTTPS when the site is served that way.
    site.secure_cookies |= https.is_some();
    let mailer = Mailer::start(&site.smtp_url, &site.mail_dir, &site.mail_from).map_err(|e| web_err(&e))?;
    let state = WebState::new(store.clone(), graph, shared, mailer.clone(), &site)
        .map_err(|e| web_err(&e.log_text()))?;
    let server =
        crate::web::start(actix_web::web::Data::new(state), listener, https).map_err(|e| web_err(&e))?;
    let handle = server.handle();
    actix_rt::spawn(server);
    tracing::info!(%addr, url = %site.site_url(), "website listening");
    Ok((addr, handle, mailer))
}

/// Serves `/metrics` (and `/healthz`) alone on `listener`, to anyone who reaches it: the
/// operator chose its address.
fn start_metrics(
    metrics: crate::metrics::Metrics,
    listener: std::net::TcpListener,
) -> Result<(SocketAddr, actix_web::dev::ServerHandle), ServeError> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let web_err = |e: &dyn std::fmt::Display| ServeError::Web(format!("metrics listener: {e}"));
    let addr = listener.local_addr().map_err(|e| web_err(&e))?;
    let server = HttpServer::new(move || {
        let m = metrics.clone();
        App::new()
            .route(
                "/metrics",
                web::get().to(move || {
                    let m = m.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type(crate::metrics::CONTENT_TYPE)
                            .body(m.render().await)
                    }
                }),
            )
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| web_err(&e))?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    tracing::info!(%addr, "metrics listening");
    Ok((addr, handle))
}

/// Refuses to start as `node` while another process of that name still reports in
/// `acl_applied`: a row seen lately may be a node that just crashed (then it goes quiet) or
/// one that runs (then it reports again within two heartbeats).
async fn ensure_node_id_free(store: &Store, node: &str) -> Result<(), ServeError> {
    let seen = |store: Store, node: String| async move {
        tokio::task::spawn_blocking(move || store.node_seen_at(&node)).await
    };
    let Some(first) = seen(store.clone(), node.to_owned()).await?? else {
        return Ok(());
    };
    if crate::store::now() - first > crate::store::models::applied::LIVE_WITHIN {
        return Ok(());
    }
    let wait = crate::social::graph::HEARTBEAT * 2 + Duration::from_secs(1);
    tracing::info!(
        node,
        "a node of this name reported {} s ago: waiting {} s to see whether it still runs",
        crate::store::now() - first,
        wait.as_secs()
    );
    tokio::time::sleep(wait).await;
    match seen(store.clone(), node.to_owned()).await?? {
        Some(again) if again > first => Err(ServeError::NodeIdInUse(node.to_owned())),
        _ => Ok(()),
    }
}

async fn log_stats(
    stats: Arc<Stats>,
    cluster: Option<Arc<dyn crate::broker::remote::Remote>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                tracing::info!("stats: {}", stats.summary());
                if let Some(c) = &cluster {
                    tracing::info!("cluster: {}", c.counters());
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}
