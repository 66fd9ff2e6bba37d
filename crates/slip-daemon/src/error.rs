//! The API's error type: every failure becomes `{"error": "<message>", "code": "<code>"}` with the
//! status SPEC §6.7 gives. Internal errors are logged once, here, with the request id, and answered
//! with a generic message so nothing internal (or secret) leaks.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with a code (and optionally the offending field).
    BadRequest { code: &'static str, message: String, field: Option<&'static str> },
    /// 401 with a code. Bad-signature answers are fixed text that never says which check failed.
    Unauthorized { code: &'static str, message: &'static str },
    /// 404 with a code.
    NotFound { code: &'static str, message: String },
    /// 409 with a code and extra fields.
    Conflict { code: &'static str, message: String, extra: serde_json::Value },
    /// 413.
    TooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 408: the body did not arrive within this many seconds.
    RequestTimeout { seconds: u64 },
    /// 429 with the seconds to wait.
    RateLimited { retry_after: u64 },
    /// 503 with a code.
    Unavailable { code: &'static str, message: String },
    /// 500: logged with its chain, answered generically.
    Internal(anyhow::Error),
}

impl ApiError {
    /// 400 `code` naming `field`.
    pub fn field(code: &'static str, field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code, message: message.into(), field: Some(field) }
    }

    /// 400 `code` without a field.
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code, message: message.into(), field: None }
    }

    /// 404 `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::NotFound { code, message: message.into() }
    }

    /// 409 `app_deleting`: a deploy or rollback of an app that is being deleted.
    pub fn app_deleting(app: &impl std::fmt::Display) -> ApiError {
        ApiError::Conflict {
            code: "app_deleting",
            message: format!("{app} is being deleted; nothing more is deployed for it"),
            extra: serde_json::Value::Null,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::TooLarge => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// A store failure: 503 `storage_unavailable` when the database cannot take writes now (a full disk, say),
    /// otherwise 500. A failed store write is one rolled-back transaction, so nothing half-done remains.
    pub fn store(e: slip_engine::store::StoreError) -> ApiError {
        if e.is_storage_unavailable() {
            tracing::error!(error = format!("{:#}", anyhow::Error::from(e)), "the database cannot take writes");
            return ApiError::Unavailable {
                code: "storage_unavailable",
                message: "slipd cannot write its database right now (is the disk full?); try again later".into(),
            };
        }
        ApiError::Internal(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::Internal(e)
    }
}

/// The machine code of an error answer, kept on the response for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (status, body) = match self {
            ApiError::BadRequest { message, field, .. } => {
                let mut body = json!({"error": message, "code": code});
                if let Some(f) = field {
                    body["field"] = json!(f);
                }
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::Unauthorized { message, .. } => {
                (StatusCode::UNAUTHORIZED, json!({"error": message, "code": code}))
            }
            ApiError::NotFound { message, .. } => (StatusCode::NOT_FOUND, json!({"error": message, "code": code})),
            ApiError::Conflict { message, extra, .. } => {
                let mut body = json!({"error": message, "code": code});
                if let (Some(obj), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
                    obj.extend(extra);
                }
                (StatusCode::CONFLICT, body)
            }
            ApiError::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "request body is larger than 64 KiB", "code": code}))
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "send the body as Content-Type: application/json", "code": code}),
            ),
            ApiError::RequestTimeout { seconds } => (
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": format!("the request body did not arrive within {seconds}s"), "code": code}),
            ),
            ApiError::RateLimited { retry_after } => {
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(
                        json!({"error": "too many failed authentications from this address; try later", "code": code}),
                    ),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp.extensions_mut().insert(ErrorCode(code));
                return resp;
            }
            ApiError::Unavailable { message, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": message, "code": code}))
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error; see slipd's log", "code": code}))
            }
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}
