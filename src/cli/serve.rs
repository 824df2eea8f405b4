//! `hpfriends serve`: wires the broker, the website and the metrics listener together and
//! runs them until a signal; `--demo` seeds a key to try it with.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::CLI_ACTOR;
use crate::config::{Config, Flags};
use crate::server::{self, Endpoints};
use crate::social::ops;
use crate::wire::{Channel, Ident, Secret};

/// The demo's names, created by `serve --demo`.
const DEMO_USER: &str = "demo";
const DEMO_IDENT: &str = "demo";
const DEMO_CHANNEL: &str = "demo.events";

/// A listen address, `IP:PORT`; a host name or a bare port is refused with an example.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        let hint = match s.rsplit_once(':') {
            Some(("localhost", port)) => format!("127.0.0.1:{port}"),
            Some((_, port)) if port.parse::<u16>().is_ok() => format!("0.0.0.0:{port}"),
            _ if s.parse::<u16>().is_ok() => format!("0.0.0.0:{s}"),
            _ => "127.0.0.1:10000 (this machine only) or 0.0.0.0:10000 (every interface)".into(),
        };
        format!("an IP address and a port, e.g. {hint}")
    })
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// hpfeeds listen address [default: 0.0.0.0:10000; 127.0.0.1:10000 with --demo].
    #[arg(long, value_parser = listen_addr)]
    pub listen: Option<SocketAddr>,
    /// Plain hpfeeds mode: every subscriber of a channel receives every publisher.
    #[arg(long)]
    pub open: bool,
    /// Create a demo user and authkey (if missing) and print how to use them.
    #[arg(long)]
    pub demo: bool,
    /// Largest publish payload in bytes [default: 1048576].
    #[arg(long)]
    pub max_payload: Option<usize>,
    /// Website listen address, or "off" [default: 127.0.0.1:8080].
    #[arg(long)]
    pub web_listen: Option<String>,
    /// hpfeeds TLS listen address [default: 0.0.0.0:10443; only with --tls-cert and --tls-key].
    #[arg(long, value_parser = listen_addr)]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener and the website's HTTPS.
    #[arg(long)]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100) [default: off].
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Join a cluster through this NATS server (nats://HOST:4222; the database must be
    /// the cluster's PostgreSQL) [default: off, one node on its own].
    #[arg(long)]
    pub nats_url: Option<String>,
    /// This node's name in the cluster [default: made up at start].
    #[arg(long)]
    pub node_id: Option<String>,
}

impl ServeArgs {
    /// Adds the flags given to `serve` to the configuration's top layer.
    pub(super) fn flags(&self, flags: Flags) -> Flags {
        flags
            .set("listen", self.listen.map(|l| l.to_string()))
            .set("max_payload", self.max_payload)
            .set("tls_listen", self.tls_listen.map(|l| l.to_string()))
            .set("tls_cert", self.tls_cert.clone())
            .set("tls_key", self.tls_key.clone())
            .set(
                "web_listen",
                self.web_listen
                    .as_ref()
                    .map(|w| if w == "off" { String::new() } else { w.clone() }),
            )
            .set("metrics_listen", self.metrics_listen.clone())
            .set("nats_url", self.nats_url.clone())
            .set("node_id", self.node_id.clone())
            .set("open", self.open.then_some(true))
    }
}

/// `serve`: the broker and the website until SIGINT or SIGTERM.
pub(super) fn serve(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    // The demo stays on this machine unless told otherwise.
    if args.demo && args.listen.is_none() {
        config.listen = SocketAddr::from(([127, 0, 0, 1], config.listen.port()));
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let store = super::open_store(&config)
        .with_context(|| format!("opening database {}", crate::store::redacted(&config.db)))?;
    // Every secret must open now: a missing or wrong key fails here, not at every auth.
    store.seal_plaintext_secrets()?;
    let demo = if args.demo {
        Some(ops::ensure_key(
            &store,
            DEMO_USER,
            "demo@localhost",
            &Ident::new(DEMO_IDENT)?,
            &Channel::new(DEMO_CHANNEL)?,
            "created by serve --demo",
            CLI_ACTOR,
        )?)
    } else {
        None
    };

    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    });
    system.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let db = crate::store::redacted(&config.db);
        let mail_dir = config.mail_dir.clone();
        let scheme = if config.web_https() { "https" } else { "http" };
        server::serve(config, store, shutdown, |ep: Endpoints| {
            let tls = ep.tls.map(|a| format!(", hpfeeds tls://{a}")).unwrap_or_default();
            let web = ep.web.map(|a| format!(", website {scheme}://{a}")).unwrap_or_default();
            let metrics = ep.metrics.map(|a| format!(", metrics http://{a}/metrics")).unwrap_or_default();
            println!(
                "hpfriends listening: hpfeeds tcp://{}{tls}{web}{metrics} (database {db})",
                ep.hpfeeds
            );
            if let Some(secret) = &demo {
                print_demo(ep.hpfeeds, secret);
                if let Some(web) = ep.web {
                    println!(
                        "Website: {scheme}://{web}/ - sign up there; with no smtp_url, mail (the confirmation \
                         link) is written as .eml files into {}/\n",
                        mail_dir
                    );
                }
            }
            let _ = std::io::stdout().flush();
        })
        .await
    })?;
    Ok(())
}

async fn cancel_on_signal(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
    token.cancel();
}

fn print_demo(addr: SocketAddr, secret: &Secret) {
    let s = secret.expose();
    let port = addr.port();
    // As it was started: `cargo run --release --` from a checkout, else this binary.
    let me = if std::env::var_os("CARGO").is_some() {
        "cargo run --release --".to_owned()
    } else {
        std::env::args()
            .next()
            .filter(|a| !a.contains(char::is_whitespace))
            .unwrap_or_else(|| "hpfriends".into())
    };
    println!(
        "\nDemo authkey: ident {DEMO_IDENT}, secret {s}, channel {DEMO_CHANNEL}\n\
         In another terminal, receive:\n  \
         {me} sub --port {port} --ident {DEMO_IDENT} --secret {s} --channel {DEMO_CHANNEL}\n\
         and publish:\n  \
         {me} pub --port {port} --ident {DEMO_IDENT} --secret {s} --channel {DEMO_CHANNEL} 'hello'\n\
         or from Python (pip install hpfeeds):\n  \
         python3 -c \"import hpfeeds; c = hpfeeds.new('127.0.0.1', {port}, '{DEMO_IDENT}', '{s}'); c.publish('{DEMO_CHANNEL}', 'hi'); c.close()\"\n\
         Press Ctrl-C to stop.\n"
    );
}
