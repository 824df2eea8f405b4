//! `GET /metrics` on the website: the Prometheus scrape, for loopback peers that did not
//! come through a proxy, or for a scraper holding the `metrics_token`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;

use crate::web::State;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// Whether `req` may read the metrics: the bearer token when one is configured, else a
/// loopback client. A request that a proxy relayed is the proxy's client's, not the
/// proxy's: it counts as loopback only when a trusted proxy (`trusted_proxies`) names a
/// loopback client in `X-Forwarded-For`/`Forwarded`. Any proxy header from a peer that is
/// not a trusted proxy, and `X-Real-IP` without those, is refused (a proxy on the same host
/// would otherwise publish the metrics to the world).
fn allowed(state: &crate::web::WebState, req: &HttpRequest) -> bool {
    let token = &state.metrics_token;
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_empty() {
        return bearer.is_some_and(|b| bool::from(b.as_bytes().ct_eq(token.as_bytes())));
    }
    let forwarded =
        req.headers().contains_key(header::X_FORWARDED_FOR) || req.headers().contains_key(header::FORWARDED);
    let peer_trusted = req
        .peer_addr()
        .is_some_and(|a| state.trusted_proxies.iter().any(|c| c.contains(a.ip())));
    if crate::web::client_ip::proxied(req) && !(forwarded && peer_trusted) {
        return false;
    }
    state.client(req).is_some_and(|ip| ip.is_loopback())
}

async fn metrics(state: State, req: HttpRequest) -> HttpResponse {
    if !allowed(&state, &req) {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(
                "metrics are served to loopback clients, or to scrapers sending \
             \"Authorization: Bearer <metrics_token>\" when metrics_token is set; \
             or use metrics_listen\n",
            );
    }
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(state.metrics.render().await)
}
