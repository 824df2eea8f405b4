//! The accept loops (plain TCP, and TLS when configured): connection limits (total and per
//! address, shared by both listeners), keepalive, back-off on accept errors, and no new
//! connections once shutdown starts. A TLS handshake must finish within the auth timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use parking_lot::Mutex;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::connection;
use super::refusal::Refusal;
use super::stats::{ConnRefused, Stats};
use crate::wire::Frame;

/// Longest pause between retries when `accept` fails (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Counts open connections per IP address.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Releases one slot of an address when the connection ends.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn acquire(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock();
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Arc::clone(table),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a connection holds while it is open.
struct Slots {
    _total: OwnedSemaphorePermit,
    _address: AddressSlot,
}

/// The connection limits both listeners draw from.
#[derive(Debug, Clone)]
pub struct Limits {
    total: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
}

impl Limits {
    /// Limits from the configuration.
    pub fn new(shared: &Shared) -> Self {
        Self {
            total: Arc::new(Semaphore::new(shared.config.max_connections)),
            per_address: Arc::new(PerAddress::default()),
        }
    }
}

/// Accepts connections until shutdown; each is served on `tracker`, over TLS when `tls`
/// is given.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) {
    let Limits { total, per_address } = limits;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shared.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        Stats::add(&shared.stats.connections_accepted, 1);
        // Same keepalive as 3.1.0, so half-open subscribers are noticed within a minute.
        let sock = SockRef::from(&stream);
        let _ = sock.set_tcp_keepalive(&keepalive);
        let _ = stream.set_nodelay(true);

        let slots = match Arc::clone(&total).try_acquire_owned() {
            Err(_) => Err(Refusal::TooManyConnections),
            Ok(permit) => {
                match PerAddress::acquire(&per_address, peer.ip(), shared.config.max_connections_per_ip) {
                    None => Err(Refusal::TooManyFromAddress),
                    Some(address) => Ok(Slots {
                        _total: permit,
                        _address: address,
                    }),
                }
            }
        };
        match slots {
            Err(refusal) => {
                shared.stats.refused(match refusal {
                    Refusal::TooManyFromAddress => ConnRefused::TooManyFromAddress,
                    _ => ConnRefused::TooManyConnections,
                });
                shared.stats.frame_out(0);
                tracing::warn!(%peer, reason = refusal.kind(), "{refusal}");
                // A refusal costs one non-blocking write here, in the accept loop: no task,
                // no timer, and no TLS handshake (a flood over the limit must not buy the
                // server's CPU or memory). A fresh socket's send buffer takes the short
                // error frame; the close that follows sends it before the FIN. A TLS
                // client cannot read plain bytes, so it is closed without them.
                if tls.is_none() {
                    let _ = stream.try_write(&Frame::error_bytes(&refusal.to_string()));
                }
                drop(stream);
            }
            Ok(slots) => {
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                tracker.spawn(async move {
                    let _slots = slots;
                    match tls {
                        None => serve_tcp(stream, peer, shared).await,
                        // Boxed: the TLS state is large, and inline it would size the task
                        // of every plain TCP connection too.
                        Some(acceptor) => Box::pin(serve_tls(stream, peer, shared, acceptor)).await,
                    }
                });
            }
        }
    }
}

async fn serve_tcp(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    shared.stats.connections_open.fetch_add(1, Relaxed);
    let (mut r, mut w) = stream.into_split();
    let end = connection::serve(&mut r, &mut w, peer, Arc::clone(&shared)).await;
    if end == connection::End::Killed {
        // Reset instead of a graceful close: megabytes may sit in the kernel's send buffer
        // for a client that stopped reading, and they would be kept until it reads them.
        let _ = SockRef::from(r.as_ref()).set_linger(Some(Duration::ZERO));
    }
    drop((r, w));
    shared.stats.connections_open.fetch_sub(1, Relaxed);
}

async fn serve_tls(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, acceptor: TlsAcceptor) {
    // The handshake counts against the auth timeout: a client that never finishes it
    // (plain hpfeeds on the TLS port, a slowloris) is dropped like one that never authenticates.
    let tls = match tokio::time::timeout(shared.config.auth_timeout(), acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.stats.refused(ConnRefused::TlsHandshake);
            tracing::info!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            shared.stats.refused(ConnRefused::TlsHandshake);
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    shared.stats.connections_open.fetch_add(1, Relaxed);
    let (mut r, mut w) = tokio::io::split(tls);
    let end = connection::serve(&mut r, &mut w, peer, Arc::clone(&shared)).await;
    let tls = r.unsplit(w);
    if end == connection::End::Killed {
        let _ = SockRef::from(tls.get_ref().0).set_linger(Some(Duration::ZERO));
    }
    drop(tls);
    shared.stats.connections_open.fetch_sub(1, Relaxed);
}
