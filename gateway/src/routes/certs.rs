//! `/certs/…`: what anyone verifying a Prism certificate needs, without signing in — the chain, the
//! issuing certificate (where every certificate's AIA points), the CRL (where every certificate's CRL
//! distribution point points) and the OCSP responder (RFC 6960, POST and GET). The URLs are fixed:
//! every issued certificate carries them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use utoipa_axum::routes;

use crate::extract::Path;
use crate::problem::{Problem, ProblemKind};
use crate::{AppState, Routes};

const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

pub fn routes() -> Routes {
    Routes::new()
        .routes(routes!(chain))
        .routes(routes!(issuer))
        .routes(routes!(crl))
        .routes(routes!(crl_pem))
        .routes(routes!(ocsp_post))
        .routes(routes!(ocsp_get))
}

/// A body of `content_type`, cacheable for `max_age` seconds.
fn binary(content_type: &'static str, max_age: u32, body: impl Into<axum::body::Body>) -> Response {
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// The chain every Prism certificate ends in, PEM: the issuing intermediate, then the root (the one to
/// trust).
#[utoipa::path(
    get,
    path = "/certs/ca",
    operation_id = "certificate_chain",
    tag = "certificates",
    security(()),
    responses(
        (status = 200, description = "The intermediate and the root, PEM (RFC 8555 §9.1)",
            content_type = "application/pem-certificate-chain", body = String),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn chain(State(state): State<AppState>) -> Result<Response, Problem> {
    let chain = state.app().certificates().chain().await?;
    Ok(binary("application/pem-certificate-chain", 3600, chain))
}

/// The issuing intermediate's certificate, DER: what every certificate's Authority Information Access
/// (`caIssuers`) names.
#[utoipa::path(
    get,
    path = "/certs/ca/issuer.der",
    operation_id = "certificate_issuer",
    tag = "certificates",
    security(()),
    responses(
        (status = 200, description = "The intermediate, DER", content_type = "application/pkix-cert", body = String),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn issuer(State(state): State<AppState>) -> Result<Response, Problem> {
    let der = state.app().certificates().issuer().await?;
    Ok(binary("application/pkix-cert", 3600, der))
}

/// The certificate revocation list, DER (RFC 5280): every revoked certificate not yet expired, with
/// the reason. Made again as soon as a revocation has landed; valid for an hour.
#[utoipa::path(
    get,
    path = "/certs/crl",
    operation_id = "certificate_crl",
    tag = "certificates",
    security(()),
    responses(
        (status = 200, description = "The CRL, DER", content_type = "application/pkix-crl", body = String),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn crl(State(state): State<AppState>) -> Result<Response, Problem> {
    let crl = state.app().certificates().crl().await?;
    Ok(binary("application/pkix-crl", 60, crl.der))
}

/// The certificate revocation list, PEM (`X509 CRL`).
#[utoipa::path(
    get,
    path = "/certs/crl.pem",
    operation_id = "certificate_crl_pem",
    tag = "certificates",
    security(()),
    responses(
        (status = 200, description = "The CRL, PEM", content_type = "application/x-pem-file", body = String),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn crl_pem(State(state): State<AppState>) -> Result<Response, Problem> {
    let crl = state.app().certificates().crl().await?;
    Ok(binary("application/x-pem-file", 60, crl.pem))
}

/// Ask the OCSP responder (RFC 6960) about certificates: the body is a DER `OCSPRequest`. The answer
/// is always 200 with an `OCSPResponse`; a request that does not parse is answered `malformedRequest`
/// inside it, as the RFC says. Certificates of another authority are `unknown`.
#[utoipa::path(
    post,
    path = "/certs/ocsp",
    operation_id = "ocsp_post",
    tag = "certificates",
    security(()),
    request_body(content = String, content_type = "application/ocsp-request", description = "A DER OCSPRequest"),
    responses(
        (status = 200, description = "A DER OCSPResponse, signed by the delegated responder",
            content_type = "application/ocsp-response", body = String),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/ocsp-request`", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn ocsp_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(OCSP_REQUEST) {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("send the DER OCSP request as `{OCSP_REQUEST}`"),
        ));
    }
    let response = state.app().certificates().ocsp(&body).await?;
    Ok(binary(OCSP_RESPONSE, 0, response))
}

/// Ask the OCSP responder with GET (RFC 6960 Appendix A.1): the path ends in the base64 of the DER
/// request, URL-encoded. Answered as the POST form is.
#[utoipa::path(
    get,
    path = "/certs/ocsp/{request}",
    operation_id = "ocsp_get",
    tag = "certificates",
    security(()),
    params(("request" = String, Path, description = "The base64 of a DER OCSPRequest, URL-encoded")),
    responses(
        (status = 200, description = "A DER OCSPResponse, signed by the delegated responder",
            content_type = "application/ocsp-response", body = String),
        (status = 400, description = "The path does not decode (percent-encoding that is not UTF-8)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This platform runs no certificate authority", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn ocsp_get(
    State(state): State<AppState>,
    Path(request): Path<String>,
) -> Result<Response, Problem> {
    // Some clients use the URL-safe alphabet or leave the padding out: both are read.
    let trimmed = request.trim_end_matches('=');
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .unwrap_or_default();
    let response = state.app().certificates().ocsp(&der).await?;
    Ok(binary(OCSP_RESPONSE, 0, response))
}
