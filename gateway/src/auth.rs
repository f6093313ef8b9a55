//! Who is asking: the request's bearer credential becomes the [`Caller`] every service is called with.
//!
//! `Authorization: Bearer <access token or API key>` is checked by the application layer
//! ([`prism_app::Identity::authenticate`]); without the header the caller is anonymous, and the service
//! decides (registration and sign-in allow it; everything else answers 401). A credential that does not
//! hold is 401 at once, and recorded. The source address comes from the connection.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use prism_app::Caller;

use crate::AppState;
use crate::headers::{TRACEPARENT, X_REQUEST_ID, valid_traceparent};
use crate::problem::{Problem, ProblemKind};

/// Longest `X-Request-Id` copied into events; longer ones are ignored rather than truncated, so two
/// requests can never be correlated by accident.
pub(crate) const REQUEST_ID_MAX: usize = 200;

/// The authenticated caller of a request (anonymous when it carried no credential).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

/// The caller of a request that authenticates by other means than a bearer credential (the token
/// endpoint, where `Authorization: Basic` carries client credentials): anonymous, with its source
/// address and conversation.
#[derive(Debug, Clone)]
pub struct Unauthenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Unauthenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mut caller = Caller::anonymous();
        caller.source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        caller.correlation_id = request_id(&parts.headers);
        caller.traceparent = traceparent(&parts.headers);
        Ok(Self(caller))
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Unauthenticated(caller) = Unauthenticated::from_request_parts(parts, state).await?;
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(caller));
        };
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, credential) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| credential.trim())
            })
            .filter(|credential| !credential.is_empty())
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::Unauthorized,
                    "the Authorization header must be `Bearer <access token or API key>`",
                )
            })?
            .to_owned();
        Ok(Self(state.app().identity().authenticate(caller, &bearer).await?))
    }
}

/// `X-Request-Id`, when it is a reasonable token.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= REQUEST_ID_MAX && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// A valid W3C `traceparent`; an invalid one is dropped, as Trace Context asks.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| valid_traceparent(v))
        .map(str::to_owned)
}
