//! One `Config` for the whole process: defaults < TOML file (`--config`) < environment
//! (`HPFRIENDS_<KEY>`, e.g. `HPFRIENDS_MAX_PAYLOAD=65536`) < command-line flags.
//!
//! Every knob is documented in `deploy/hpfriends.example.toml`; a test keeps that file and
//! these defaults in step. Nothing else in the crate reads configuration files.

pub mod cidr;
pub mod limits;
mod suggest;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use serde::{Deserialize, Serialize};

use crate::wire::Limits;
use limits::*;

/// Prefix of the environment variables that override file settings.
pub const ENV_PREFIX: &str = "HPFRIENDS_";

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = "hpfriends.db";

pub use limits::DEFAULT_DB_POOL_SIZE;

pub use limits::DEFAULT_AUTH_FREE_FAILURES;

/// What to do with a subscriber whose outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// The publishers feeding a full outbox stop reading their sockets until it drains,
    /// for at most `stall_timeout_ms`; a subscriber full for longer is cut. Nothing is lost
    /// for a subscriber that reads, and memory stays bounded by the outboxes.
    #[default]
    Backpressure,
    /// Drop the connection (the client reconnects; nothing queued grows without bound).
    Disconnect,
    /// Keep the connection, dropping its oldest queued messages (counted).
    DropOldest,
}

/// Everything `serve` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// hpfeeds TCP listener.
    pub listen: SocketAddr,
    /// Database: a SQLite file path or `sqlite://PATH`, or
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`.
    pub db: String,
    /// Connections in the database pool (the website's requests, the broker's usage and
    /// key-log writes, the graph's reads share them).
    pub db_pool_size: u32,
    /// File holding the server key that encrypts authkey secrets at rest (64 hex
    /// characters); empty: secrets are stored as they are.
    pub secret_key_file: String,
    /// Broker name sent in the info frame.
    pub name: String,
    /// Plain hpfeeds mode: every subscriber of a channel receives every publisher.
    pub open: bool,
    /// Largest publish, counted as 3.1.0 does: the whole frame may be 5 + this many bytes.
    pub max_payload: usize,
    /// Connections open at once; more are refused with an error frame.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// Subscriptions one key may hold over all its connections.
    pub max_subscriptions_per_key: usize,
    /// Bytes queued for one subscriber before the slow-consumer policy applies.
    pub outbox_bytes: usize,
    /// What happens to a subscriber whose outbox is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Backpressure: milliseconds a subscriber's outbox may stay full, its publishers
    /// paused, before it is cut as a slow consumer.
    pub stall_timeout_ms: u64,
    /// Seconds a new connection has to authenticate.
    pub auth_timeout_secs: u64,
    /// Seconds an authenticated client has to finish a frame it started (slowloris).
    pub frame_timeout_secs: u64,
    /// Failed auths per minute (per address and per ident) answered at once; past them one
    /// per minute / this is, the others are answered later (up to 5 s).
    pub auth_free_failures: u32,
    /// Website login attempts per account and address per 15 minutes; past them one per
    /// 15 min / this is checked (others answer 429 with the wait). Other addresses are not
    /// affected, so a guesser cannot lock the owner out.
    pub login_attempts_per_account: u32,
    /// Website login attempts per address per 15 minutes, over all accounts.
    pub login_attempts_per_address: u32,
    /// Password-reset requests per account per hour (each mails the account).
    pub reset_requests_per_account: u32,
    /// Requests that make the site send mail (sign-up, reset, email change) per address
    /// per 15 minutes.
    pub mail_requests_per_address: u32,
    /// Mails the site sends to one address per hour; past it mail to that address is left
    /// out (counted in the mail stats and logged).
    pub mails_per_recipient: u32,
    /// Mails one user's actions (offers, invitations) make the site send per hour.
    pub mails_per_sender: u32,
    /// Seconds one write to a client may block before the connection is dropped.
    pub write_timeout_secs: u64,
    /// Milliseconds between checks for ACL changes made by other processes.
    pub acl_poll_ms: u64,
    /// Seconds to flush outboxes on shutdown before connections are dropped.
    pub shutdown_grace_secs: u64,
    /// Seconds between statistics lines in the log (0: never).
    pub stats_interval_secs: u64,
    /// hpfeeds TLS listener; it runs only when `tls_cert` and `tls_key` are set.
    pub tls_listen: SocketAddr,
    /// PEM certificate chain (leaf first) for the TLS listener and the website's HTTPS.
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// Serve the website over HTTPS when a certificate is configured.
    pub web_tls: bool,
    /// Website listener (`host:port`), or empty for no website.
    pub web_listen: String,
    /// The website's address as users reach it, for links in mail; empty: `http://` +
    /// `web_listen`.
    pub public_url: String,
    /// Mark cookies `Secure` (set when the site is served over HTTPS).
    pub secure_cookies: bool,
    /// Reverse proxies in front of the website (CIDRs, comma-separated; empty: none). Only
    /// from them is `X-Forwarded-For`/`Forwarded` believed, for rate limits, logs and the
    /// loopback rule of `/metrics`; from anyone else those headers are ignored.
    pub trusted_proxies: String,
    /// Hours a login lasts.
    pub session_hours: u64,
    /// Outgoing mail: `smtp://host:587` (STARTTLS), `smtps://user:pass@host:465` (TLS), or
    /// empty to write each mail as an `.eml` file into `mail_dir`.
    pub smtp_url: String,
    /// Folder for mail files when `smtp_url` is empty.
    pub mail_dir: String,
    /// Sender of the site's mail.
    pub mail_from: String,
    /// A listener serving only `/metrics` (Prometheus), e.g. `127.0.0.1:9100`; empty: none.
    /// Give a wildcard address (`0.0.0.0:9100`) only when the port is firewalled.
    pub metrics_listen: String,
    /// Bearer token that lets a scraper from another host read the website's `/metrics`
    /// (`Authorization: Bearer …`); empty: the website answers `/metrics` to loopback only.
    pub metrics_token: String,
    /// Channels given their own series in the per-channel metrics; the rest are summed as
    /// `other` (bounds the scrape whatever channel names clients invent).
    pub metrics_top_channels: usize,
    /// NATS server of a cluster (`nats://host:4222`, `tls://…`; several comma-separated);
    /// empty: one node on its own. Every node of one community shares it and PostgreSQL.
    pub nats_url: String,
    /// First tokens of the NATS subjects this community uses (`<prefix>.<channel>`):
    /// communities sharing one NATS server need different prefixes.
    pub nats_prefix: String,
    /// This node's name in the cluster (in logs and on relayed messages); empty: made up
    /// at start from the process id and random bytes.
    pub node_id: String,
    /// Seconds between the node's pings to NATS: a link that answers none of three in a
    /// row (a silent partition) counts as lost (`nats_connected` 0, logged) and is
    /// reconnected, within about three intervals.
    pub nats_ping_interval_secs: u64,
    /// Carry what crosses nodes on a NATS JetStream stream (the server needs JetStream,
    /// `-js`), so a NATS restart, failover or short partition loses nothing between nodes;
    /// false: core NATS, whose messages in flight during an outage are lost.
    pub nats_jetstream: bool,
    /// Seconds the JetStream stream keeps a message: the longest outage that loses nothing
    /// (what a longer one loses is counted, `hpfriends_cluster_remote_lost_total`, and logged).
    pub nats_retention_secs: u64,
    /// Bytes the JetStream stream may hold (the oldest go first past them).
    pub nats_stream_max_bytes: u64,
    /// Copies of the stream on a NATS cluster (3 survives the loss of a server); 1 on a
    /// single server.
    pub nats_replicas: u32,
    /// PEM file of the CA that signed the NATS servers' certificates; set, the link must
    /// be TLS (`tls://` URLs, or a server that offers it). Empty: the system's roots for
    /// `tls://` URLs.
    pub nats_tls_ca: String,
    /// PEM certificate this node shows a NATS server that asks for one (mutual TLS), with
    /// `nats_tls_key`.
    pub nats_tls_cert: String,
    /// The private key of `nats_tls_cert` (PEM).
    pub nats_tls_key: String,
    /// NATS user (a server's `authorization { user, password }`), with `nats_password`.
    pub nats_user: String,
    /// NATS password (better in the environment: `HPFRIENDS_NATS_PASSWORD`).
    pub nats_password: String,
    /// NATS token (`authorization { token }`; `HPFRIENDS_NATS_TOKEN`).
    pub nats_token: String,
    /// File holding this node's NKey seed (`SU…`), for a server that lists the public key
    /// (`authorization { users = [{ nkey: U… }] }`).
    pub nats_nkey_seed_file: String,
    /// NATS credentials file (user JWT and seed), for servers in operator mode.
    pub nats_credentials_file: String,
    /// Milliseconds a change made on this node's website waits for every other live node
    /// to apply it before the page answers anyway (cluster only).
    pub cluster_apply_wait_ms: u64,
    /// On PostgreSQL: seconds without a successful read of the graph change log after
    /// which the server fails closed (delivers only each user's own data, so a revoke it
    /// cannot read is not outlived for long) until it has caught up; 0: never.
    pub graph_stale_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 10000)),
            db: DEFAULT_DB.to_owned(),
            db_pool_size: DEFAULT_DB_POOL_SIZE,
            secret_key_file: String::new(),
            name: "hpfriends".to_owned(),
            open: false,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_subscriptions_per_key: DEFAULT_MAX_SUBSCRIPTIONS_PER_KEY,
            outbox_bytes: DEFAULT_OUTBOX_BYTES,
            slow_consumer: SlowConsumerPolicy::Backpressure,
            stall_timeout_ms: DEFAULT_STALL_TIMEOUT_MS,
            auth_timeout_secs: DEFAULT_AUTH_TIMEOUT_SECS,
            frame_timeout_secs: DEFAULT_FRAME_TIMEOUT_SECS,
            auth_free_failures: DEFAULT_AUTH_FREE_FAILURES,
            login_attempts_per_account: DEFAULT_LOGIN_ATTEMPTS_PER_ACCOUNT,
            login_attempts_per_address: DEFAULT_LOGIN_ATTEMPTS_PER_ADDRESS,
            reset_requests_per_account: DEFAULT_RESET_REQUESTS_PER_ACCOUNT,
            mail_requests_per_address: DEFAULT_MAIL_REQUESTS_PER_ADDRESS,
            mails_per_recipient: DEFAULT_MAILS_PER_RECIPIENT,
            mails_per_sender: DEFAULT_MAILS_PER_SENDER,
            write_timeout_secs: DEFAULT_WRITE_TIMEOUT_SECS,
            acl_poll_ms: 50,
            shutdown_grace_secs: 5,
            stats_interval_secs: 300,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 10443)),
            tls_cert: String::new(),
            tls_key: String::new(),
            web_tls: true,
            web_listen: "127.0.0.1:8080".to_owned(),
            public_url: String::new(),
            secure_cookies: false,
            trusted_proxies: String::new(),
            session_hours: 24 * 14,
            smtp_url: String::new(),
            mail_dir: "mail".to_owned(),
            mail_from: "hpfriends <hpfriends@localhost>".to_owned(),
            metrics_listen: String::new(),
            metrics_token: String::new(),
            metrics_top_channels: DEFAULT_METRICS_TOP_CHANNELS,
            nats_url: String::new(),
            nats_prefix: DEFAULT_NATS_PREFIX.to_owned(),
            node_id: String::new(),
            nats_ping_interval_secs: DEFAULT_NATS_PING_INTERVAL_SECS,
            nats_jetstream: true,
            nats_retention_secs: limits::DEFAULT_NATS_RETENTION_SECS,
            nats_stream_max_bytes: limits::DEFAULT_NATS_STREAM_MAX_BYTES,
            nats_replicas: 1,
            nats_tls_ca: String::new(),
            nats_tls_cert: String::new(),
            nats_tls_key: String::new(),
            nats_user: String::new(),
            nats_password: String::new(),
            nats_token: String::new(),
            nats_nkey_seed_file: String::new(),
            nats_credentials_file: String::new(),
            cluster_apply_wait_ms: DEFAULT_CLUSTER_APPLY_WAIT_MS,
            graph_stale_after_secs: DEFAULT_GRAPH_STALE_AFTER_SECS,
        }
    }
}

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file, an environment variable or a flag holds something invalid.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the bad value came from.
        origin: String,
        /// What the parser said, naming the key.
        message: String,
    },
    /// Each value is well-formed but together they cannot work.
    #[error("invalid configuration: {key} ({origin}): {reason}")]
    Inconsistent {
        /// The key to change.
        key: &'static str,
        /// Where its value came from.
        origin: String,
        /// Why it cannot work.
        reason: String,
    },
}

/// Folds a multi-line parser message (TOML snippets, serde paths) into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| matches!(c, '|' | '^' | ' ')))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One layer of settings as figment sees it: a dictionary with a name saying where it
/// came from (`default`, `environment variable`, `command-line flag`).
struct Layer {
    name: &'static str,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let name = self.name;
        Metadata::named(name).interpolater(move |_profile, keys| match name {
            ENV_LAYER => format!("{ENV_PREFIX}{}", keys.join("_").to_ascii_uppercase()),
            FLAG_LAYER => format!("--{}", keys.join("-").replace('_', "-")),
            _ => keys.join("."),
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

const DEFAULT_LAYER: &str = "default";
const ENV_LAYER: &str = "environment variable";
const FLAG_LAYER: &str = "command-line flag";

/// Settings given on the command line, highest of the layers: `(key, value)` pairs.
#[derive(Debug, Default, Clone)]
pub struct Flags(Vec<(&'static str, Value)>);

impl Flags {
    /// No flags.
    pub fn none() -> Flags {
        Flags::default()
    }

    /// Sets `key` (a [`Config`] field) when `value` is given.
    pub fn set<T: Serialize>(mut self, key: &'static str, value: Option<T>) -> Flags {
        if let Some(v) = value.and_then(|v| Value::serialize(v).ok()) {
            self.0.push((key, v));
        }
        self
    }
}

/// Where each key's effective value came from.
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, String>);

impl Origins {
    /// `default`, `file PATH`, `environment variable HPFRIENDS_KEY` or `command-line flag --key`.
    pub fn of(&self, key: &str) -> &str {
        self.0.get(key).map_or(DEFAULT_LAYER, String::as_str)
    }
}

/// The configuration with where each value came from, for `config show` and for errors.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Where its values came from.
    pub origins: Origins,
}

fn invalid(origin: &str, e: impl std::fmt::Display) -> ConfigError {
    // Figment names keys by profile; there is only the one.
    let message = one_line(&e.to_string()).replace("for key \"default.", "for key \"");
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message: suggest::unknown_key(&message).unwrap_or(message),
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then `HPFRIENDS_*` variables from `env`
    /// (without flags, and not validated: see [`Config::load_with`]).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Ok(Self::layered(file, env, &Flags::none())?.config)
    }

    /// Defaults < TOML `file` < `HPFRIENDS_*` variables in `env` < `flags`, then
    /// [`Config::validate`]d.
    pub fn load_with(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Flags,
    ) -> Result<Loaded, ConfigError> {
        let loaded = Self::layered(file, env, flags)?;
        loaded.config.validate(&loaded.origins)?;
        Ok(loaded)
    }

    fn layered(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Flags,
    ) -> Result<Loaded, ConfigError> {
        let defaults = match Value::serialize(Config::default()).map_err(|e| invalid("defaults", e))? {
            Value::Dict(_, d) => d,
            _ => Dict::new(),
        };
        let mut figment = Figment::new().merge(Layer {
            name: DEFAULT_LAYER,
            dict: defaults.clone(),
        });
        let mut origin = "defaults".to_owned();
        if let Some(path) = file {
            // Read here first: figment skips a file that is missing.
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            figment = figment.merge(Toml::file_exact(path));
            origin = path.display().to_string();
        }
        let mut vars = Dict::new();
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let field = name.to_ascii_lowercase();
            // Variables that are not settings (HPFRIENDS_CONFIG, HPFRIENDS_LOG_FORMAT) are
            // the command line's.
            let Some(default) = defaults.get(&field) else {
                continue;
            };
            // Strings are taken as they are ("123" stays a name); other values parse.
            let parsed = match default {
                Value::String(..) => Value::from(value),
                // Numbers and booleans as TOML reads them; anything else stays a string
                // (and fails to deserialize with the key named).
                _ => format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .and_then(|v| Value::serialize(v).ok())
                    .unwrap_or_else(|| Value::from(value.clone())),
            };
            vars.insert(field, parsed);
        }
        if !vars.is_empty() {
            origin = format!("{origin} + environment");
        }
        figment = figment.merge(Layer {
            name: ENV_LAYER,
            dict: vars,
        });
        let mut given = Dict::new();
        for (k, v) in &flags.0 {
            given.insert((*k).to_owned(), v.clone());
        }
        if !given.is_empty() {
            origin = format!("{origin} + flags");
        }
        figment = figment.merge(Layer {
            name: FLAG_LAYER,
            dict: given,
        });
        let config: Config = figment.extract().map_err(|e| invalid(&origin, e))?;
        let mut origins = BTreeMap::new();
        for key in defaults.keys() {
            if let Some(md) = figment.find_metadata(key) {
                let at = match (&md.source, md.name.as_ref()) {
                    (Some(figment::Source::File(p)), _) => format!("file {}", p.display()),
                    (_, ENV_LAYER) => format!("{ENV_LAYER} {ENV_PREFIX}{}", key.to_ascii_uppercase()),
                    (_, FLAG_LAYER) => format!("{FLAG_LAYER} --{}", key.replace('_', "-")),
                    _ => DEFAULT_LAYER.to_owned(),
                };
                origins.insert(key.clone(), at);
            }
        }
        Ok(Loaded {
            config,
            origins: Origins(origins),
        })
    }

    /// Refuses settings that cannot work together, naming the key to change and why.
    pub fn validate(&self, origins: &Origins) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| ConfigError::Inconsistent {
            key,
            origin: origins.of(key).to_owned(),
            reason,
        };
        let largest = self.limits().max_publish_frame;
        if self.max_payload == 0 || self.max_payload > limits::MAX_MAX_PAYLOAD {
            return Err(bad(
                "max_payload",
                format!("must be between 1 and {} bytes", limits::MAX_MAX_PAYLOAD),
            ));
        }
        if self.outbox_bytes < largest {
            return Err(bad(
                "outbox_bytes",
                format!(
                    "{} bytes cannot hold one largest frame ({largest} bytes = 5 + max_payload); \
                     raise outbox_bytes or lower max_payload",
                    self.outbox_bytes
                ),
            ));
        }
        let at_least_one: [(&'static str, u64); 9] = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_subscriptions", self.max_subscriptions as u64),
            ("max_subscriptions_per_key", self.max_subscriptions_per_key as u64),
            ("db_pool_size", u64::from(self.db_pool_size)),
            ("auth_timeout_secs", self.auth_timeout_secs),
            ("frame_timeout_secs", self.frame_timeout_secs),
            ("write_timeout_secs", self.write_timeout_secs),
            ("session_hours", self.session_hours),
        ];
        for (key, v) in at_least_one {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if self.slow_consumer == SlowConsumerPolicy::Backpressure && self.stall_timeout_ms == 0 {
            return Err(bad(
                "stall_timeout_ms",
                "must be at least 1 with slow_consumer = \"backpressure\"".into(),
            ));
        }
        if self.max_connections_per_ip > self.max_connections {
            return Err(bad(
                "max_connections_per_ip",
                format!(
                    "{} is more than max_connections ({})",
                    self.max_connections_per_ip, self.max_connections
                ),
            ));
        }
        if self.max_subscriptions > self.max_subscriptions_per_key {
            return Err(bad(
                "max_subscriptions",
                format!(
                    "{} per connection is more than max_subscriptions_per_key ({}) allows over all of a key's connections",
                    self.max_subscriptions, self.max_subscriptions_per_key
                ),
            ));
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            let key = if self.tls_cert.is_empty() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(bad(
                key,
                "tls_cert and tls_key are set together or not at all".into(),
            ));
        }
        if self.db_pool_size > limits::MAX_DB_POOL_SIZE {
            return Err(bad(
                "db_pool_size",
                format!("at most {}", limits::MAX_DB_POOL_SIZE),
            ));
        }
        if self.metrics_top_channels > limits::MAX_TRACKED_CHANNELS {
            return Err(bad(
                "metrics_top_channels",
                format!(
                    "at most {} (the channels tracked one by one)",
                    limits::MAX_TRACKED_CHANNELS
                ),
            ));
        }
        for (key, addr) in [
            ("web_listen", &self.web_listen),
            ("metrics_listen", &self.metrics_listen),
        ] {
            if !addr.is_empty() && !has_port(addr) {
                return Err(bad(key, format!("{addr:?} is not host:port")));
            }
        }
        if !self.metrics_listen.is_empty()
            && self.metrics_listen == self.web_listen
            && !self.web_listen.ends_with(":0")
        {
            return Err(bad("metrics_listen", "is the same address as web_listen".into()));
        }
        if self.tls_listen == self.listen && self.listen.port() != 0 && !self.tls_cert.is_empty() {
            return Err(bad("tls_listen", "is the same address as listen".into()));
        }
        let scheme_in =
            |url: &str, schemes: &[&str]| url.is_empty() || schemes.iter().any(|s| url.starts_with(s));
        if !scheme_in(&self.public_url, &["http://", "https://"]) {
            return Err(bad("public_url", "must start with http:// or https://".into()));
        }
        if !scheme_in(&self.smtp_url, &["smtp://", "smtps://"]) {
            return Err(bad("smtp_url", "must start with smtp:// or smtps://".into()));
        }
        if !self.nats_url.is_empty()
            && !self.nats_url.split(',').all(|u| {
                ["nats://", "tls://", "ws://", "wss://"]
                    .iter()
                    .any(|s| u.trim().starts_with(s))
            })
        {
            return Err(bad(
                "nats_url",
                "each URL must start with nats:// or tls://".into(),
            ));
        }
        if self.graph_stale_after_secs > 3600 {
            return Err(bad("graph_stale_after_secs", "at most 3600 (0: never)".into()));
        }
        if self.nats_ping_interval_secs == 0 || self.nats_ping_interval_secs > 3600 {
            return Err(bad(
                "nats_ping_interval_secs",
                "must be between 1 and 3600".into(),
            ));
        }
        if self.nats_retention_secs == 0 || self.nats_retention_secs > limits::MAX_NATS_RETENTION_SECS {
            return Err(bad(
                "nats_retention_secs",
                format!("must be between 1 and {}", limits::MAX_NATS_RETENTION_SECS),
            ));
        }
        if self.nats_stream_max_bytes < 1 << 20 {
            return Err(bad("nats_stream_max_bytes", "at least 1 MiB (1048576)".into()));
        }
        if !(1..=5).contains(&self.nats_replicas) {
            return Err(bad("nats_replicas", "must be between 1 and 5".into()));
        }
        if !valid_nats_prefix(&self.nats_prefix) {
            return Err(bad(
                "nats_prefix",
                "dot-separated words of letters, digits, '-' or '_' (no wildcards)".into(),
            ));
        }
        self.validate_nats_security(origins)?;
        if !self.nats_url.is_empty() && !self.db.starts_with("postgres") {
            return Err(bad(
                "nats_url",
                "a cluster shares its state in PostgreSQL: set db to a postgres:// URL".into(),
            ));
        }
        if self.node_id.len() > limits::MAX_NODE_ID
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(
                "node_id",
                format!("at most {} letters, digits, '-', '_' or '.'", limits::MAX_NODE_ID),
            ));
        }
        if let Err(e) = cidr::parse_list(&self.trusted_proxies) {
            return Err(bad(
                "trusted_proxies",
                format!("{e}; give CIDRs such as 127.0.0.1/32, 10.0.0.0/8"),
            ));
        }
        if !self.metrics_token.is_empty() && self.metrics_token.len() < 16 {
            return Err(bad("metrics_token", "use at least 16 characters".into()));
        }
        Ok(())
    }

    /// The NATS link's TLS and credentials settings fit together: a certificate with its
    /// key, one way of authenticating (all unused without `nats_url`: the CLI shares a
    /// node's environment).
    fn validate_nats_security(&self, origins: &Origins) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| ConfigError::Inconsistent {
            key,
            origin: origins.of(key).to_owned(),
            reason,
        };
        let set = |v: &str| !v.is_empty();
        if set(&self.nats_tls_cert) != set(&self.nats_tls_key) {
            return Err(bad(
                "nats_tls_cert",
                "a client certificate needs its key (nats_tls_key), and a key its certificate".into(),
            ));
        }
        if set(&self.nats_password) && !set(&self.nats_user) {
            return Err(bad("nats_password", "needs nats_user".into()));
        }
        let ways = [
            set(&self.nats_user),
            set(&self.nats_token),
            set(&self.nats_nkey_seed_file),
            set(&self.nats_credentials_file),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(bad(
                "nats_user",
                "choose one way to authenticate to NATS: user and password, token, NKey seed or \
                 credentials file"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every setting as `key = value` TOML lines, each with where it came from; secrets
    /// (passwords in URLs, the metrics token, NATS password and token) masked.
    pub fn show(&self, origins: &Origins) -> String {
        let table = toml::Table::try_from(self).unwrap_or_default();
        let mut out = String::new();
        for (key, value) in &table {
            let value = match (key.as_str(), value) {
                ("db" | "smtp_url" | "nats_url", toml::Value::String(s)) => toml::Value::String(mask_url(s)),
                ("metrics_token" | "nats_password" | "nats_token", toml::Value::String(s))
                    if !s.is_empty() =>
                {
                    toml::Value::String("********".into())
                }
                _ => value.clone(),
            };
            out.push_str(&format!("{key} = {value}  # {}\n", origins.of(key)));
        }
        out
    }
    /// Frame limits derived from `max_payload`.
    pub fn limits(&self) -> Limits {
        Limits::with_max_payload(self.max_payload)
    }

    /// `auth_timeout_secs` as a duration.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs)
    }

    /// Whether the website is served over HTTPS.
    pub fn web_https(&self) -> bool {
        self.web_tls && !self.tls_cert.is_empty() && !self.tls_key.is_empty()
    }

    /// The host name clients use to reach the hpfeeds listener, for the configurations the
    /// site and `authkey snippet` hand out: `public_url`'s host, else the listen address
    /// when it names one, else this machine's name.
    pub fn client_host(&self) -> String {
        let from_url = self
            .public_url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
            .map(|authority| {
                if let Some(v6) = authority.strip_prefix('[') {
                    format!("[{}]", v6.split(']').next().unwrap_or_default())
                } else {
                    authority.split(':').next().unwrap_or_default().to_owned()
                }
            })
            .filter(|h| !h.is_empty() && h != "[]");
        if let Some(host) = from_url {
            return host;
        }
        let ip = self.listen.ip();
        if !ip.is_unspecified() {
            return match ip {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }

    /// The TLS listener's port when it runs (a certificate and a key are set).
    pub fn client_tls_port(&self) -> Option<u16> {
        (!self.tls_cert.is_empty() && !self.tls_key.is_empty()).then(|| self.tls_listen.port())
    }

    /// Where mail links point: `public_url`, or `http(s)://` + `web_listen`, without a final `/`.
    pub fn site_url(&self) -> String {
        let url = if self.public_url.is_empty() {
            let scheme = if self.web_https() { "https" } else { "http" };
            format!("{scheme}://{}", self.web_listen)
        } else {
            self.public_url.clone()
        };
        url.trim_end_matches('/').to_owned()
    }

    /// `frame_timeout_secs` as a duration.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs)
    }

    /// `stall_timeout_ms` as a duration.
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }

    /// `write_timeout_secs` as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}

/// Whether `addr` ends in `:PORT`.
fn has_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Whether `prefix` can start NATS subjects: dot-separated words of `[A-Za-z0-9_-]`, no
/// wildcard, no empty word.
pub fn valid_nats_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// A URL with the password of its userinfo replaced by `****`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
