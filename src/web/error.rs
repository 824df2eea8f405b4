//! One error type for the website's handlers, with two messages: what the user sees and
//! what the log gets. Internals (SQL, paths) never reach a page.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use crate::social::ops::SocialError;
use crate::store::StoreError;

/// Why a page could not be shown or a form not carried out.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not logged in: sent to the login page.
    #[error("please log in")]
    Login,
    /// Not logged in on a page that can be shown after logging in (this path and query):
    /// the login page goes on there, so a mailed link keeps its target.
    #[error("please log in")]
    LoginThen(String),
    /// A form without the right CSRF token.
    #[error("this form has expired or did not come from this site: reload the page and try again")]
    Csrf,
    /// Nothing there, or not the viewer's to see.
    #[error("{0}")]
    NotFound(String),
    /// The viewer may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts.
    #[error("too many attempts: wait a few minutes and try again")]
    Throttled,
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// It clashes with what exists (a name taken, a share already answered).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached: the page says so and the site recovers by itself.
    #[error("the database is unavailable right now; nothing was changed. Try again in a moment")]
    Unavailable(String),
    /// Every slot of a bounded kind of work (password hashing, whole-graph reads) stayed
    /// taken for the whole wait (a flood of logins, resets or reach requests): `503` with
    /// `Retry-After`, nothing was changed. It names the work.
    #[error("the site is busy {0} right now; nothing was changed. Try again in a few seconds")]
    Busy(&'static str),
    /// Anything else; logged, shown as a generic message.
    #[error("something went wrong on our side; nothing was changed")]
    Internal(String),
}

impl WebError {
    /// What the log gets (the user's message, or the internal cause).
    pub fn log_text(&self) -> String {
        match self {
            Self::Unavailable(m) | Self::Internal(m) => m.clone(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<SocialError> for WebError {
    fn from(e: SocialError) -> Self {
        match e {
            SocialError::NotFound(m) => Self::NotFound(m),
            SocialError::Forbidden(m) => Self::Forbidden(format!("not allowed: {m}")),
            SocialError::Invalid(m) => Self::BadRequest(m),
            SocialError::Conflict(m) => Self::Conflict(m),
            SocialError::Store(s) => Self::from(s),
            SocialError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<actix_web::error::BlockingError> for WebError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

fn escape(s: &str) -> String {
    handlebars::html_escape(s)
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Login | Self::LoginThen(_) => StatusCode::SEE_OTHER,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Login => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/login"))
                    .finish();
            }
            Self::LoginThen(next) => {
                let to = format!(
                    "/login?{}",
                    serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
                );
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to))
                    .finish();
            }
            _ => {}
        }
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "web: {}", self.log_text());
        } else {
            tracing::info!(status = status.as_u16(), "web: {}", self.log_text());
        }
        let mut res = HttpResponse::build(status);
        match self {
            Self::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::Busy(_) => {
                res.insert_header((header::RETRY_AFTER, "2"));
            }
            _ => {}
        }
        // A self-contained page: it must render even when templates or the database do not.
        res.content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} · hpfriends</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
             <body><main class=\"narrow\"><h1>{code} {reason}</h1><p class=\"error-box\">{msg}</p>\
             <p><a href=\"/\">Back to hpfriends</a></p></main></body></html>",
            code = status.as_u16(),
            reason = status.canonical_reason().unwrap_or(""),
            msg = escape(&self.to_string()),
        ))
    }
}

/// The JSON API's errors: the same causes, answered as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            WebError::Login | WebError::LoginThen(_) => StatusCode::UNAUTHORIZED,
            ref other => other.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match &self.0 {
            WebError::Login | WebError::LoginThen(_) => {
                "missing or invalid API token (Authorization: Bearer TOKEN)".to_owned()
            }
            other => other.to_string(),
        };
        if self.status_code().is_server_error() {
            tracing::error!("api: {}", self.0.log_text());
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": message }))
    }
}
