//! One `Config` for the whole process: defaults < TOML file (`--config`) < environment
//! (`HPFRIENDS_<KEY>`, e.g. `HPFRIENDS_MAX_PAYLOAD=65536`) < command-line flags.
//!
//! Every knob is documented in `deploy/hpfriends.example.toml`; a test keeps that file and
//! these defaults in step. Nothing else in the crate reads configuration files.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::Limits;
use crate::wire::limits::DEFAULT_MAX_PAYLOAD;

/// Prefix of the environment variables that override file settings.
pub const ENV_PREFIX: &str = "HPFRIENDS_";

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = "hpfriends.db";

/// Connections in the database pool unless configured.
pub const DEFAULT_DB_POOL_SIZE: u32 = 8;

/// Failed hpfeeds auths per address and per ident answered at once before the throttle
/// spaces them out (`auth_free_failures`).
pub const DEFAULT_AUTH_FREE_FAILURES: u32 = 5;

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
            max_connections: 20_000,
            max_connections_per_ip: 1_000,
            max_subscriptions: 1_000,
            max_subscriptions_per_key: 10_000,
            outbox_bytes: 16 * 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Backpressure,
            stall_timeout_ms: 5_000,
            auth_timeout_secs: 10,
            frame_timeout_secs: 30,
            auth_free_failures: DEFAULT_AUTH_FREE_FAILURES,
            login_attempts_per_account: 10,
            login_attempts_per_address: 100,
            reset_requests_per_account: 3,
            mail_requests_per_address: 10,
            mails_per_recipient: 10,
            mails_per_sender: 30,
            write_timeout_secs: 60,
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
            session_hours: 24 * 14,
            smtp_url: String::new(),
            mail_dir: "mail".to_owned(),
            mail_from: "hpfriends <hpfriends@localhost>".to_owned(),
            metrics_listen: String::new(),
            metrics_token: String::new(),
            metrics_top_channels: 20,
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
    /// The file or an environment variable holds something invalid.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the bad value came from.
        origin: String,
        /// What serde said.
        message: String,
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

impl Config {
    /// Loads defaults, then `file` if given, then `HPFRIENDS_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let mut origin = "defaults".to_owned();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            table = text.parse::<toml::Table>().map_err(|e| ConfigError::Invalid {
                origin: path.display().to_string(),
                message: one_line(&e.to_string()),
            })?;
            origin = path.display().to_string();
        }
        let known = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
            origin: "defaults".into(),
            message: e.to_string(),
        })?;
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let field = name.to_ascii_lowercase();
            let Some(default) = known.get(&field) else {
                continue;
            };
            // Numbers and booleans are parsed as TOML; everything else is taken as a string.
            let parsed = match default {
                toml::Value::String(_) => toml::Value::String(value.clone()),
                _ => format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(value.clone())),
            };
            table.insert(field, parsed);
            origin = format!("{origin} + environment");
        }
        Config::deserialize(table).map_err(|e| ConfigError::Invalid {
            origin,
            message: one_line(&e.to_string()),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hpfriends.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let from_file = Config::load(Some(&path), []).unwrap();
        assert_eq!(from_file, Config::default());
        // Every key is present (not merely defaulted) and documented by a comment above it.
        let table: toml::Table = text.parse().unwrap();
        let known = toml::Table::try_from(Config::default()).unwrap();
        for key in known.keys() {
            assert!(table.contains_key(key), "{key} missing from the example file");
            let line = text
                .lines()
                .position(|l| l.starts_with(&format!("{key} =")))
                .unwrap();
            assert!(
                text.lines().nth(line - 1).unwrap().starts_with('#'),
                "{key} is undocumented"
            );
        }
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "max_payload = 10\nname = \"file\"\n").unwrap();
        let env = [
            ("HPFRIENDS_MAX_PAYLOAD".to_owned(), "20".to_owned()),
            ("HPFRIENDS_OPEN".to_owned(), "true".to_owned()),
            ("HPFRIENDS_SLOW_CONSUMER".to_owned(), "drop-oldest".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.max_payload, 20);
        assert!(c.open);
        assert_eq!(c.name, "file");
        assert_eq!(c.slow_consumer, SlowConsumerPolicy::DropOldest);
    }

    #[test]
    fn bad_values_say_where() {
        let env = [("HPFRIENDS_MAX_PAYLOAD".to_owned(), "lots".to_owned())];
        let e = Config::load(None, env).unwrap_err().to_string();
        assert!(e.contains("environment"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        let e = Config::load(Some(&f), []).unwrap_err().to_string();
        assert!(e.contains("no_such_key") && !e.contains('\n'), "{e}");
        std::fs::write(&f, "max_payload = \n").unwrap();
        let e = Config::load(Some(&f), []).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }
}
