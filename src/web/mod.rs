//! The hpfriends website: accounts, shares and invitations, authkeys, groups, logs, search,
//! the sharing graph, a live channel view, and the JSON API under `/api/v1`.
//!
//! Server-rendered (handlebars templates compiled into the binary; plain CSS and a little
//! JS, no build step). Every write of the social model goes through `social::ops` via the
//! SocialGraph actor's `Apply`, so its effect on live feeds applies at once. Reads go to the
//! store on blocking threads. Every page works without JavaScript.

pub mod api;
pub mod api_docs;
pub mod charts;
pub mod client_ip;
pub mod error;
pub mod error_pages;
pub mod graph_svg;
pub mod health;
pub mod heavy;
pub mod live;
pub mod password;
pub mod render;
pub mod routes;
pub mod session;

use std::sync::Arc;

use actix::Addr;
use actix_web::cookie::Key;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use handlebars::Handlebars;

use crate::broker::Shared;
use crate::mail::Mailer;
use crate::social::graph::{Apply, SocialGraph};
use crate::social::ops::SocialError;
use crate::store::Store;
use error::WebError;
use session::WebLimits;

/// Everything a handler may use; shared by every worker.
pub struct WebState {
    /// The database (reads; writes go through `graph`).
    pub store: Store,
    /// Runs social operations and applies their ACL effects at once.
    pub graph: Addr<SocialGraph>,
    /// The broker, for the live view and live key status.
    pub shared: Arc<Shared>,
    /// Compiled page templates (HTML-escaped).
    pub templates: Handlebars<'static>,
    /// Compiled mail templates (plain text).
    pub mail_templates: Handlebars<'static>,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Signs cookies; kept in the database so restarts keep logins.
    pub key: Key,
    /// Links in mail start with this.
    pub site_url: String,
    /// Cookies get the Secure flag.
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_secs: i64,
    /// Slows down password guessing and bounds the mail the site can be made to send.
    pub limits: WebLimits,
    /// Live views open now, per user (each holds a broker session).
    pub live_views: parking_lot::Mutex<std::collections::HashMap<crate::domain::UserId, usize>>,
    /// What `/metrics` renders.
    pub metrics: crate::metrics::Metrics,
    /// Lets scrapers on other hosts read `/metrics`; empty: loopback only.
    pub metrics_token: String,
    /// `trusted_proxies`: whose `X-Forwarded-For` names the client (see [`client_ip`]).
    pub trusted_proxies: Vec<crate::config::cidr::Cidr>,
    /// Reads of the whole graph (reach) run a few at a time, apart from other pages.
    pub heavy: heavy::HeavyReads,
    /// `graph_stale_after_secs`: what a node behind on a change does meanwhile, as the
    /// answer to that change tells it.
    pub graph_stale_after_secs: u64,
}

/// Runs blocking database work `f` on the blocking pool, answering `503` when it has not
/// returned within [`DB_CALL_TIMEOUT`]: a database that stops answering without closing
/// the connection (a middlebox that swallows the bytes) gets the page an answer, not a hang.
/// The thread itself stays with the call until its connection fails.
pub async fn on_db<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, WebError> {
    use crate::config::limits::DB_CALL_TIMEOUT;
    match tokio::time::timeout(DB_CALL_TIMEOUT, web::block(f)).await {
        Ok(done) => done.map_err(WebError::from),
        Err(_) => Err(WebError::Unavailable(format!(
            "the database did not answer within {} s",
            DB_CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// How handlers receive the state.
pub type State = web::Data<WebState>;

/// The key cookies are signed with, read from the database (made there on first use), so
/// that every node of a cluster, and a restarted server, accept the same cookies.
pub fn cookie_key(store: &Store) -> Result<Key, WebError> {
    let hex_key = store.server_secret("cookie_key", || {
        let mut b = [0u8; 64];
        // A failure leaves zeros, refused just below.
        let _ = getrandom::getrandom(&mut b);
        hex::encode(b)
    })?;
    let bytes = hex::decode(hex_key).map_err(|e| WebError::Internal(e.to_string()))?;
    if bytes.len() < 64 || bytes.iter().all(|b| *b == 0) {
        return Err(WebError::Internal("the stored cookie key is unusable".into()));
    }
    Ok(Key::from(&bytes))
}

impl WebState {
    /// Assembles the state; reads (or creates) the cookie key from the database.
    pub fn new(
        store: Store,
        graph: Addr<SocialGraph>,
        shared: Arc<Shared>,
        mailer: Mailer,
        config: &crate::config::Config,
    ) -> Result<WebState, WebError> {
        let key = cookie_key(&store)?;
        let (templates, mail_templates) =
            render::templates().map_err(|e| WebError::Internal(e.to_string()))?;
        Ok(WebState {
            metrics: crate::metrics::Metrics::new(Arc::clone(&shared), store.clone(), Some(mailer.clone())),
            metrics_token: config.metrics_token.clone(),
            trusted_proxies: crate::config::cidr::parse_list(&config.trusted_proxies)
                .map_err(WebError::Internal)?,
            store,
            graph,
            shared,
            templates,
            mail_templates,
            mailer,
            key,
            site_url: config.site_url(),
            // A site reached over HTTPS (even through a proxy) keeps its cookies there.
            secure_cookies: config.secure_cookies || config.site_url().starts_with("https://"),
            session_secs: i64::try_from(config.session_hours.saturating_mul(3600)).unwrap_or(i64::MAX),
            limits: WebLimits::new(config),
            live_views: parking_lot::Mutex::new(std::collections::HashMap::new()),
            heavy: heavy::HeavyReads::new(
                crate::config::limits::HEAVY_READS,
                crate::config::limits::HEAVY_READ_WAIT,
            ),
            graph_stale_after_secs: config.graph_stale_after_secs,
        })
    }

    /// The address the request comes from: the peer, or the client a trusted proxy names.
    pub fn client(&self, req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
        client_ip::client(req, &self.trusted_proxies)
    }

    /// Runs blocking store work (reads, and writes outside the social graph) on the
    /// blocking pool.
    pub async fn db<T: Send + 'static, E: Into<WebError> + Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, WebError> {
        let store = self.store.clone();
        on_db(move || f(&store)).await?.map_err(Into::into)
    }

    /// Runs a store read that walks the whole graph within the [`heavy::HeavyReads`]
    /// budget: `503` when too many are running, never a starved pool.
    pub async fn heavy_db<T: Send + 'static, E: Into<WebError> + Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, WebError> {
        let store = self.store.clone();
        self.heavy.run(move || f(&store).map_err(Into::into)).await
    }

    /// Reads the live graph (on a blocking thread; the actor is not held up).
    pub async fn read_live<T: Send + 'static>(
        &self,
        read: impl FnOnce(&crate::domain::live::LiveGraph) -> T + Send + 'static,
    ) -> Result<T, WebError> {
        self.graph
            .send(crate::social::graph::ReadLive(Box::new(read)))
            .await
            .map_err(|e| WebError::from(SocialError::Internal(e.to_string())))?
            .map_err(WebError::from)
    }

    /// Where `user`'s data goes: page `page` of the receivers of each channel they share, or
    /// of `channel` alone (a name; empty: every channel), from the live graph.
    pub async fn reach(
        &self,
        user: crate::domain::UserId,
        channel: &str,
        page: usize,
    ) -> Result<Vec<crate::social::reach::ChannelReach>, WebError> {
        use crate::social::reach::{Paths, Pick, named};
        let channel = match channel.trim() {
            "" => None,
            c => Some(
                crate::wire::Channel::new(c).map_err(|e| WebError::BadRequest(format!("channel: {e}")))?,
            ),
        };
        let paths = self.read_live(move |g| Paths::live(g, user)).await?;
        let pick = Pick::Page { channel, page };
        self.heavy_db(move |s| named(s, paths, &pick)).await
    }

    /// Runs a social operation through the SocialGraph actor (ACL effects apply at once):
    /// its result and the nodes where it was live when it answered.
    pub async fn apply<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, SocialError> + Send + 'static,
    ) -> Result<(T, crate::social::propagation::Propagation), SocialError> {
        self.graph
            .send(Apply(Box::new(op)))
            .await
            .map_err(|e| SocialError::Internal(e.to_string()))?
    }
}

/// Security headers on every response: no framing, no sniffing, scripts and styles only
/// from this site.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
}

/// Every route of the site and the API, for `App::configure` (the server and the tests).
pub fn configure(state: State) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(session::FORM_LIMIT))
            .app_data(
                web::JsonConfig::default()
                    .limit(session::FORM_LIMIT)
                    .error_handler(|err, _| {
                        let body = serde_json::json!({ "error": format!("unreadable JSON body: {err}") });
                        actix_web::error::InternalError::from_response(
                            err,
                            actix_web::HttpResponse::BadRequest().json(body),
                        )
                        .into()
                    }),
            )
            .service(api::scope())
            .route("/api/docs", web::get().to(api_docs::page))
            .configure(routes::configure)
            .default_service(web::to(error_pages::not_found));
    }
}

/// Serves the website on `listener` (over HTTPS with `tls`) until the returned server is
/// stopped.
pub fn start(
    state: State,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<actix_web::dev::Server> {
    let https = tls.is_some();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(error_pages::error_pages())
            .wrap(security_headers())
            .wrap(actix_web::middleware::Condition::new(
                https,
                DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000")),
            ))
            .configure(configure(state.clone()))
    })
    .workers(2)
    .disable_signals();
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, (*config).clone())?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}
