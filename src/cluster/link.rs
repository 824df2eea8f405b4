//! How a node proves itself to NATS and checks the server: TLS with an operator's CA (and
//! a client certificate when the server asks), and one way of authenticating. A cluster
//! across sites sends graph changes and every message over this link, so it must not go
//! in clear or open.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ConnectOptions;

use super::ClusterError;

/// The link to NATS: where, how often it is pinged, and how it is secured.
#[derive(Debug, Clone)]
pub struct Link {
    /// `nats_url`: one or more servers, comma-separated.
    pub url: String,
    /// `nats_ping_interval_secs`: three unanswered pings and the link counts as lost.
    pub ping: Duration,
    /// TLS and credentials.
    pub security: LinkSecurity,
}

impl Link {
    /// The settings of `config`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            url: config.nats_url.clone(),
            ping: Duration::from_secs(config.nats_ping_interval_secs),
            security: LinkSecurity::from_config(config),
        }
    }
}

/// The NATS link's TLS and credentials settings (see `nats_tls_*`, `nats_user`, …); every
/// field empty: plain, unauthenticated (or whatever the URL carries).
#[derive(Debug, Clone, Default)]
pub struct LinkSecurity {
    /// CA file that signed the servers' certificates; set, TLS is required.
    pub ca: String,
    /// Client certificate and key (mutual TLS).
    pub cert: String,
    /// The certificate's key.
    pub key: String,
    /// User, with `password`.
    pub user: String,
    /// Password of `user`.
    pub password: String,
    /// Token.
    pub token: String,
    /// File holding an NKey seed.
    pub nkey_seed_file: String,
    /// Credentials file (JWT and seed).
    pub credentials_file: String,
}

impl LinkSecurity {
    /// The settings of `config`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            ca: config.nats_tls_ca.clone(),
            cert: config.nats_tls_cert.clone(),
            key: config.nats_tls_key.clone(),
            user: config.nats_user.clone(),
            password: config.nats_password.clone(),
            token: config.nats_token.clone(),
            nkey_seed_file: config.nats_nkey_seed_file.clone(),
            credentials_file: config.nats_credentials_file.clone(),
        }
    }

    /// `opts` with these settings; a file that cannot be read is an error naming it (at
    /// start, not at the first reconnect).
    pub async fn apply(&self, mut opts: ConnectOptions) -> Result<ConnectOptions, ClusterError> {
        let readable = |what: &str, path: &str| -> Result<(), ClusterError> {
            std::fs::metadata(path)
                .map(|_| ())
                .map_err(|e| ClusterError::Connect(format!("{what} {path:?}: {e}")))
        };
        if !self.ca.is_empty() {
            readable("nats_tls_ca", &self.ca)?;
            opts = opts
                .add_root_certificates(PathBuf::from(&self.ca))
                .require_tls(true);
        }
        if !self.cert.is_empty() {
            readable("nats_tls_cert", &self.cert)?;
            readable("nats_tls_key", &self.key)?;
            opts = opts.add_client_certificate(PathBuf::from(&self.cert), PathBuf::from(&self.key));
        }
        if !self.user.is_empty() {
            opts = opts.user_and_password(self.user.clone(), self.password.clone());
        }
        if !self.token.is_empty() {
            opts = opts.token(self.token.clone());
        }
        if !self.nkey_seed_file.is_empty() {
            let seed = std::fs::read_to_string(&self.nkey_seed_file).map_err(|e| {
                ClusterError::Connect(format!("nats_nkey_seed_file {:?}: {e}", self.nkey_seed_file))
            })?;
            opts = opts.nkey(seed.trim().to_owned());
        }
        if !self.credentials_file.is_empty() {
            opts = opts.credentials_file(&self.credentials_file).await.map_err(|e| {
                ClusterError::Connect(format!("nats_credentials_file {:?}: {e}", self.credentials_file))
            })?;
        }
        Ok(opts)
    }
}
