//! Errors: building the service ([`WebError`]) and answering one request ([`Failure`]).

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use labctl_chat::ops::AppError;

/// Why [`crate::router`] could not build the service.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The secret is empty: sessions could be forged by anyone.
    #[error("the session secret is empty")]
    EmptySecret,
    /// A template file could not be read from the configured folder.
    #[error("cannot read template {path}")]
    ReadTemplate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse, or extends one that does not exist.
    #[error("the page templates do not load: {message}")]
    Template {
        /// Tera's error with its causes.
        message: String,
        /// Tera's error.
        #[source]
        source: tera::Error,
    },
}

impl From<tera::Error> for WebError {
    fn from(source: tera::Error) -> Self {
        WebError::Template {
            message: chain(&source),
            source,
        }
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// A request that failed: a status and a sentence for the client.
///
/// Handlers return it as a response carrying it in its extensions; the request middleware
/// renders it as `{"error": "…"}` or as an HTML page, depending on what the client accepts.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// When to try again, in seconds (a `Retry-After` header), for a refusal that is only for now.
    pub retry_after: Option<u64>,
    /// Close the connection after answering (`Connection: close`): the request was not read whole.
    pub closes: bool,
}

impl Failure {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            retry_after: None,
            closes: false,
        }
    }

    /// 503 with `Retry-After: 1`: every password hasher is busy; nothing was done.
    pub fn busy(busy: crate::hashing::Busy) -> Self {
        Failure {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "This node is busy checking passwords ({} requests are waiting already): \
                     nothing was done. Try again in a moment.",
                    busy.queue
                ),
            )
        }
    }

    /// `response` with this failure's `Retry-After` and `Connection: close`, if it has them.
    pub fn stamp(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if self.closes {
            headers.insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }

    /// 400: the request is malformed.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid session.
    pub fn not_logged_in() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "You are not logged in (or your session has expired): log in first.",
        )
    }

    /// 403: not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: nothing at this address.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: a fault of this service (never caused by the client's input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure::new(status, error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = self.stamp(self.status.into_response());
        response.extensions_mut().insert(self);
        response
    }
}
