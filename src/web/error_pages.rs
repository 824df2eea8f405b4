//! Error pages in the site's layout, menu and all: an unknown URL, and every error a page
//! answers (403, 404, 409, 500, 503…) shows the site around its message, so a visitor
//! always has a way on. When the layout itself cannot render (a template or the database
//! failing), the self-contained page [`WebError`] writes stays.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::State;
use super::error::WebError;
use super::render::Page;
use super::session::viewer_of;

/// Answers a URL no route serves (the JSON API has its own answer).
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound(format!(
        "there is no page at {}: it may have moved, or the link is mistyped",
        req.path()
    )))
}

/// The middleware that puts error answers of pages into the layout.
pub fn error_pages<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new()
        .default_handler(|res: ServiceResponse<B>| Ok(ErrorHandlerResponse::Future(Box::pin(in_layout(res)))))
}

async fn in_layout<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ServiceResponse<EitherBody<B>>> {
    let keep = |res: ServiceResponse<B>| Ok(res.map_into_left_body());
    // Only answers made from an error; the JSON API and the live stream keep theirs.
    let Some(message) = res.response().error().map(ToString::to_string) else {
        return keep(res);
    };
    let path = res.request().path();
    if path.starts_with("/api/") || path.starts_with("/live/events") {
        return keep(res);
    }
    let Some(state) = res.request().app_data::<State>().cloned() else {
        return keep(res);
    };
    let status = res.status();
    // A server error may be the database failing: the menu then goes without the viewer
    // rather than waiting on a lookup that fails too.
    let viewer = if status.is_server_error() {
        None
    } else {
        viewer_of(res.request().clone()).await.ok().flatten()
    };
    let heading = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = Page::new(
        "message",
        &heading,
        "",
        json!({ "heading": heading, "text": message }),
    )
    .status(status)
    .render(&state, res.request(), viewer.as_ref());
    let Ok(mut page) = page else {
        return keep(res);
    };
    if let Some(retry) = res.response().headers().get(header::RETRY_AFTER).cloned() {
        page.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    Ok(res.into_response(page).map_into_right_body())
}
