//! Who is asking: the admin token, a request signed for an app, or nobody in particular.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use slip_core::signature::Signed;
use slip_engine::clock::unix_ms;

use crate::auth::{bearer, check_admin, check_skew, client_ip, invalid_signature, signature_headers};
use crate::error::ApiError;
use crate::state::AppState;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Nobody in particular.
    Public,
    /// A signed request for this app.
    App(String),
    /// The admin token.
    Admin,
}

/// Works out the caller of a read request: a valid bearer token is admin, a valid timestamped
/// signature is that app, no credentials at all is public. Invalid credentials are an error (and count
/// against the client's failure limit), never silently downgraded to public.
pub async fn caller(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    app_of_request: Option<&str>,
) -> Result<Caller, ApiError> {
    let config = state.config();
    let ip = client_ip(peer, headers, &config.server.trusted_proxies);
    let direct_loopback = peer.ip().is_loopback() && ip == peer.ip();
    let now = std::time::Instant::now();
    state.limiter.check(ip, direct_loopback, now)?;
    let result = (|| {
        if let Some(token) = bearer(headers) {
            check_admin(state.admin_token(&config).as_deref(), &token)?;
            return Ok(Caller::Admin);
        }
        if headers.get(crate::auth::SIGNATURE_HEADER).is_none() {
            return Ok(Caller::Public);
        }
        let sig = signature_headers(headers, true)?;
        let (ts_text, ts) = sig.timestamp.clone().expect("required above");
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
        let signed = Signed::Request { timestamp: &ts_text, method: method.as_str(), target, body: b"" };
        if !state.verify_for_app(&config, app_of_request, &signed, &sig.mac) {
            return Err(invalid_signature());
        }
        check_skew(ts, unix_ms() / 1000, config.auth.max_skew)?;
        Ok(Caller::App(app_of_request.unwrap_or_default().to_owned()))
    })();
    if let Err(ApiError::Unauthorized { .. }) = &result {
        state.limiter.record(ip, now);
    }
    result
}

/// Extractor: what authenticating a request reads (the peer, the method, the target and the headers), for
/// handlers that learn which app the request is for only after a lookup ([`Credentials::caller`]).
pub struct Credentials {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The request method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The request headers.
    pub headers: HeaderMap,
}

impl Credentials {
    /// The caller, for a request about `app_of_request` ([`caller`]).
    pub async fn caller(&self, state: &AppState, app_of_request: Option<&str>) -> Result<Caller, ApiError> {
        caller(state, self.peer, &self.method, &self.uri, &self.headers, app_of_request).await
    }
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Credentials, ApiError> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("the peer address of a request")))?;
        Ok(Credentials { peer, method: parts.method.clone(), uri: parts.uri.clone(), headers: parts.headers.clone() })
    }
}

/// Extractor: the caller of a request that is about no app in particular.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        Credentials::from_request_parts(parts, state).await?.caller(state, None).await
    }
}
