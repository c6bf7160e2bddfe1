//! Turning errors into responses, and request parts into validated values.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::error::ErrorBody;
use protocol::{ApiError, ErrorCode, IdempotencyKey};
use serde::de::DeserializeOwned;

/// An error response: the code's status and `{"error": {"code", "message"}}`.
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl From<ErrorCode> for HttpError {
    fn from(c: ErrorCode) -> Self {
        HttpError(c.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.http_status()).expect("codes map to valid statuses");
        let retry = self.0.code == ErrorCode::Overloaded;
        let challenge = self.0.code == ErrorCode::Unauthorized;
        let mut resp = (status, Json(ErrorBody { error: self.0 })).into_response();
        if retry {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(super::admission::RETRY_AFTER_SECS),
            );
        }
        if challenge {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"wallet\""),
            );
        }
        resp
    }
}

/// An `invalid_request` error with a sentence.
pub fn invalid(message: impl Into<String>) -> HttpError {
    HttpError(ApiError::new(ErrorCode::InvalidRequest, message))
}

/// A JSON body, refused with `invalid_request` and the decoder's sentence when malformed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> HttpError {
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            invalid("the body must be JSON with Content-Type: application/json")
        }
        other => invalid(format!("malformed request body: {}", other.body_text())),
    }
}

/// A query string, refused with `invalid_request` when malformed.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> HttpError {
    invalid(format!("malformed query: {}", e.body_text()))
}

/// The `Idempotency-Key` header, validated; `None` when absent.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, HttpError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| invalid("Idempotency-Key must be printable ASCII"))?;
    IdempotencyKey::new(s).map(Some).map_err(invalid)
}

/// The answer to a path that names no route.
pub async fn not_found() -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::NotFound,
        "no such route; the routes are in docs/api.md and GET /v1/openapi.json",
    ))
}
