//! Sign-in with OpenID Connect: a relying party for the authorization-code flow with PKCE (S256).
//!
//! [`OidcProvider::discover`] reads the provider's metadata and key set once; then each sign-in is
//! two calls around a browser redirect:
//!
//! 1. [`OidcProvider::begin`] makes an [`AuthorizationRequest`]: the URL to send the browser to, the
//!    `state` that comes back with it, and the [`PendingAuthorization`] (nonce and PKCE verifier) the
//!    caller keeps on the server, keyed by `state`, until the browser returns.
//! 2. The provider redirects the browser to the redirect URI with `code` and `state` (and, from
//!    providers that support RFC 9207, `iss`). The caller takes the pending authorization stored for
//!    that `state` out of its store (one use only), checks `iss` with
//!    [`OidcProvider::check_response_issuer`], and calls [`OidcProvider::finish`], which redeems the
//!    code with the verifier and verifies the ID token: signature against the provider's key set,
//!    issuer, audience, expiry, nonce and, when present, the access-token hash.
//!
//! The HTTP client never follows redirects (a provider's answer that redirects elsewhere would turn
//! this client into a request forwarder, as the `openidconnect` documentation warns) and gives up
//! after [`HTTP_TIMEOUT`].

use std::fmt;
use std::sync::RwLock;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdToken, CoreIdTokenClaims,
    CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenVerifier, IssuerUrl,
    JsonWebKeySetUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, SubjectIdentifier, TokenResponse, reqwest,
};
use prism_domain::user::ExternalIdentity;
use serde::{Deserialize, Serialize};

/// How long one request to the provider (metadata, key set, token, userinfo) may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The scopes asked for when the configuration names none of its own: `openid` plus the address
/// and the display name that registration needs.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// An OpenID provider and this platform's registration there.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer identifier, exactly as the provider spells it in its metadata (a trailing slash
    /// matters). Must be `https`, except on a loopback address.
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client; the code is then protected by PKCE alone.
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back; must be registered with the provider exactly.
    pub redirect_uri: String,
    /// Scopes to ask for. `openid` is always asked for, listed or not.
    pub scopes: Vec<String>,
}

impl OidcConfig {
    /// A configuration asking for [`DEFAULT_SCOPES`].
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Where to send the browser, and what to keep until it comes back.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The provider's authorization URL with every parameter of this request.
    pub url: String,
    /// Comes back unchanged with the code; the key under which to keep [`Self::pending`].
    pub state: String,
    /// Kept on the server (never in the browser), used once by [`OidcProvider::finish`].
    pub pending: PendingAuthorization,
}

/// What [`OidcProvider::finish`] needs from the request it completes. Secret until used: store it
/// server-side, delete it when used or after a few minutes, and never send it to the browser.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// Must come back in the ID token.
    pub nonce: String,
    /// Proves to the provider that whoever redeems the code started the request.
    pub pkce_verifier: String,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("nonce", &self.nonce)
            .field("pkce_verifier", &"[redacted]")
            .finish()
    }
}

/// Who signed in, as the provider vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's issuer identifier (equal to [`OidcConfig::issuer`]).
    pub issuer: String,
    /// Stable and unique within `issuer`; together they name the account. Never key accounts on
    /// the email address: the provider may reassign it.
    pub subject: String,
    /// Present when the `email` scope was asked for ([`OidcError::MissingClaim`] otherwise).
    pub email: Option<String>,
    /// The provider says the address belongs to the user. `false` when it did not say so.
    pub email_verified: bool,
    pub name: Option<String>,
}

impl OidcIdentity {
    /// The identity as the user aggregate records it.
    pub fn external_identity(&self) -> ExternalIdentity {
        ExternalIdentity {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
        }
    }
}

/// Why discovery or a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The configuration cannot work: a URL that does not parse, an issuer that is not `https`.
    #[error("invalid OpenID Connect configuration: {0}")]
    InvalidConfig(String),
    /// The provider's metadata or key set could not be fetched, parsed or trusted.
    #[error("OpenID provider discovery failed: {0}")]
    Discovery(String),
    /// The provider refused to redeem the code (a code that is wrong, spent or expired, a PKCE
    /// verifier that does not match, a client it does not accept). `error` is the OAuth error code
    /// (RFC 6749 §5.2), e.g. `invalid_grant`.
    #[error("the OpenID provider refused the code: {error}{}", describe(.description))]
    Exchange {
        error: String,
        description: Option<String>,
    },
    /// The provider could not be asked (network, timeout) or answered what is not OAuth.
    #[error("the OpenID provider's {endpoint} endpoint failed: {detail}")]
    Provider { endpoint: &'static str, detail: String },
    /// The token response has no ID token, or it fails verification: signature, issuer, audience,
    /// expiry, nonce, access-token hash.
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    /// The userinfo answer does not parse or is about another subject.
    #[error("the OpenID provider's user info is not valid: {0}")]
    InvalidUserInfo(String),
    /// A claim the requested scopes call for is disclosed neither in the ID token nor by the userinfo
    /// endpoint (the user may have declined to share it).
    #[error("the OpenID provider disclosed no `{0}` claim")]
    MissingClaim(&'static str),
    /// The authorization response names another issuer than this provider (RFC 9207): it was meant
    /// for another provider's callback (a mix-up attack) or the caller picked the wrong provider.
    #[error("the authorization response comes from issuer {found:?}, not {expected}")]
    WrongIssuer { expected: String, found: Option<String> },
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A discovered OpenID provider with this platform's registration: makes authorization requests and
/// completes them. Cheap to share (`Arc`); keep one per provider and rediscover it now and then so
/// that changed metadata is seen (a rotated signing key is fetched on its own, see
/// [`Self::finish`]).
pub struct OidcProvider {
    client: Client,
    http: reqwest::Client,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    /// Extra scopes besides `openid`, which the client adds itself.
    scopes: Vec<Scope>,
    jwks_uri: JsonWebKeySetUrl,
    jwks: RwLock<CoreJsonWebKeySet>,
    id_token_algs: Vec<CoreJwsSigningAlgorithm>,
    iss_parameter_supported: bool,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The provider's metadata fields this crate reads besides those of OpenID Connect Discovery
/// (`CoreProviderMetadata` is the same type with none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraMetadata {
    /// RFC 9207: the provider puts `iss` into its authorization responses.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl openidconnect::AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = openidconnect::ProviderMetadata<
    ExtraMetadata,
    openidconnect::core::CoreAuthDisplay,
    CoreClientAuthMethod,
    openidconnect::core::CoreClaimName,
    openidconnect::core::CoreClaimType,
    openidconnect::core::CoreGrantType,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJweKeyManagementAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreResponseMode,
    openidconnect::core::CoreResponseType,
    openidconnect::core::CoreSubjectIdentifierType,
>;

impl OidcProvider {
    /// Fetches the provider's metadata (`/.well-known/openid-configuration` under the issuer) and
    /// its key set, and checks that the metadata names the configured issuer exactly.
    pub async fn discover(config: OidcConfig) -> Result<Self, OidcError> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| OidcError::InvalidConfig(format!("issuer {:?}: {e}", config.issuer)))?;
        require_https(issuer.url())?;
        let redirect_uri = RedirectUrl::new(config.redirect_uri.clone())
            .map_err(|e| OidcError::InvalidConfig(format!("redirect URI {:?}: {e}", config.redirect_uri)))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| OidcError::InvalidConfig(format!("HTTP client: {}", chain(&e))))?;

        let metadata = Metadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|e| OidcError::Discovery(chain(&e)))?;
        if metadata.token_endpoint().is_none() {
            return Err(OidcError::Discovery(
                "the provider's metadata names no token endpoint".to_owned(),
            ));
        }
        // Basic authentication is the default (OpenID Connect Discovery §3); the form body only for
        // a provider that lists it and not basic.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let jwks_uri = metadata.jwks_uri().clone();
        let jwks = metadata.jwks().clone();
        let id_token_algs = metadata.id_token_signing_alg_values_supported().clone();
        let iss_parameter_supported = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported;
        let client_id = ClientId::new(config.client_id);
        let client_secret = config.client_secret.map(ClientSecret::new);
        let client = Client::from_provider_metadata(metadata, client_id.clone(), client_secret.clone())
            .set_redirect_uri(redirect_uri)
            .set_auth_type(auth_type);
        let scopes = config
            .scopes
            .into_iter()
            .filter(|s| s != "openid")
            .map(Scope::new)
            .collect();
        Ok(Self {
            client,
            http,
            issuer,
            client_id,
            client_secret,
            scopes,
            jwks_uri,
            jwks: RwLock::new(jwks),
            id_token_algs,
            iss_parameter_supported,
        })
    }

    /// The issuer identifier, as configured and as the provider's metadata and ID tokens spell it.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// A new authorization request: fresh random `state`, nonce and PKCE verifier (S256).
    pub fn begin(&self) -> AuthorizationRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(scope.clone());
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        AuthorizationRequest {
            url: url.into(),
            state: state.into_secret(),
            pending: PendingAuthorization {
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.into_secret(),
            },
        }
    }

    /// Checks the `iss` parameter of an authorization response (RFC 9207) — the success or the
    /// error redirect — before anything else is done with it. A provider that announces the
    /// parameter must send it and it must be this issuer; from one that does not, an absent `iss`
    /// is accepted (a present one must still match).
    pub fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), OidcError> {
        match iss {
            Some(found) if found == self.issuer.as_str() => Ok(()),
            None if !self.iss_parameter_supported => Ok(()),
            found => Err(OidcError::WrongIssuer {
                expected: self.issuer.to_string(),
                found: found.map(str::to_owned),
            }),
        }
    }

    /// Redeems `code` with the request's PKCE verifier and returns who signed in, once the ID token
    /// checks out. When the ID token leaves out the address or the name that the scopes asked for
    /// (many providers put only `sub` into it in the code flow), they are read from the userinfo
    /// endpoint, whose answer must be about the same subject.
    ///
    /// An ID token signed with a key the cached key set lacks makes one new fetch of the key set
    /// (the provider rotated its keys) before it is refused.
    pub async fn finish(
        &self,
        code: &str,
        pending: &PendingAuthorization,
    ) -> Result<OidcIdentity, OidcError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Discovery(chain(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(exchange_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidIdToken("the token response carries no ID token".to_owned()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = match self.verify(id_token, response.access_token(), &nonce) {
            Err(Rejected::UnknownKey) => {
                self.refresh_jwks().await?;
                self.verify(id_token, response.access_token(), &nonce)
            }
            verified => verified,
        }
        .map_err(|rejected| match rejected {
            Rejected::UnknownKey => OidcError::InvalidIdToken(
                "no key of the provider's key set matches the ID token's signature".to_owned(),
            ),
            Rejected::Invalid(detail) => OidcError::InvalidIdToken(detail),
        })?;

        let mut identity = OidcIdentity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        };
        let wants_email = self.wants("email");
        let wants_name = self.wants("profile");
        if ((wants_email && identity.email.is_none()) || (wants_name && identity.name.is_none()))
            && self.client.user_info_url().is_some()
        {
            let info = self
                .user_info(response.access_token().clone(), claims.subject().clone())
                .await?;
            if identity.email.is_none() {
                // The address and its verification come from the same answer, never mixed.
                identity.email = info.email().map(|e| e.to_string());
                identity.email_verified = info.email_verified().unwrap_or(false);
            }
            if identity.name.is_none() {
                identity.name = info.name().and_then(|n| n.get(None)).map(|n| n.to_string());
            }
        }
        if wants_email && identity.email.is_none() {
            return Err(OidcError::MissingClaim("email"));
        }
        if identity.email.is_none() {
            identity.email_verified = false;
        }
        Ok(identity)
    }

    fn wants(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.as_str() == scope)
    }

    fn verifier(&self) -> CoreIdTokenVerifier<'static> {
        let jwks = self
            .jwks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let verifier = match &self.client_secret {
            Some(secret) => IdTokenVerifier::new_confidential_client(
                self.client_id.clone(),
                secret.clone(),
                self.issuer.clone(),
                jwks,
            ),
            None => IdTokenVerifier::new_public_client(self.client_id.clone(), self.issuer.clone(), jwks),
        };
        verifier.set_allowed_algs(self.id_token_algs.iter().cloned())
    }

    /// Verifies the ID token (and the access token's hash in it, when it carries one).
    fn verify(
        &self,
        id_token: &CoreIdToken,
        access_token: &AccessToken,
        nonce: &Nonce,
    ) -> Result<CoreIdTokenClaims, Rejected> {
        let verifier = self.verifier();
        let claims = id_token.claims(&verifier, nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
                Rejected::UnknownKey
            }
            other => Rejected::Invalid(chain(&other)),
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(|e| Rejected::Invalid(chain(&e)))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| Rejected::Invalid(chain(&e)))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| Rejected::Invalid(chain(&e)))?;
            if actual != *expected {
                return Err(Rejected::Invalid(
                    "the access token's hash does not match the ID token's at_hash".to_owned(),
                ));
            }
        }
        Ok(claims.clone())
    }

    async fn refresh_jwks(&self) -> Result<(), OidcError> {
        let jwks = CoreJsonWebKeySet::fetch_async(&self.jwks_uri, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(format!("refetching the key set: {}", chain(&e))))?;
        *self
            .jwks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = jwks;
        Ok(())
    }

    async fn user_info(
        &self,
        access_token: AccessToken,
        subject: SubjectIdentifier,
    ) -> Result<CoreUserInfoClaims, OidcError> {
        use openidconnect::UserInfoError as E;
        let request = self
            .client
            .user_info(access_token, Some(subject))
            .map_err(|e| OidcError::Discovery(chain(&e)))?;
        request.request_async(&self.http).await.map_err(|e| match e {
            E::Request(e) => OidcError::Provider {
                endpoint: "userinfo",
                detail: chain(&e),
            },
            E::Response(status, _, detail) => OidcError::Provider {
                endpoint: "userinfo",
                detail: format!("{status}: {detail}"),
            },
            other => OidcError::InvalidUserInfo(chain(&other)),
        })
    }
}

/// Why the ID token was refused; an unknown key is worth one fetch of the key set.
enum Rejected {
    UnknownKey,
    Invalid(String),
}

/// Only loopback addresses may go without TLS (for tests and local development).
fn require_https(url: &openidconnect::url::Url) -> Result<(), OidcError> {
    use openidconnect::url::Host;
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(OidcError::InvalidConfig(format!(
            "issuer {url} must use https (plain http only on a loopback address)"
        ))),
    }
}

fn exchange_error<RE>(
    error: RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> OidcError
where
    RE: std::error::Error + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => OidcError::Exchange {
            error: response.error().as_ref().to_owned(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(e) => OidcError::Provider {
            endpoint: "token",
            detail: chain(&e),
        },
        RequestTokenError::Parse(e, _) => OidcError::Provider {
            endpoint: "token",
            detail: format!("unreadable answer: {}", chain(&e)),
        },
        RequestTokenError::Other(detail) => OidcError::Provider {
            endpoint: "token",
            detail,
        },
    }
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// An error with its sources: the `openidconnect` errors say little at the top ("Request failed").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_issuers_may_use_plain_http() {
        let check = |s: &str| require_https(&openidconnect::url::Url::parse(s).unwrap());
        assert!(check("https://accounts.example.org").is_ok());
        assert!(check("http://127.0.0.1:8080").is_ok());
        assert!(check("http://[::1]:8080").is_ok());
        assert!(check("http://localhost:8080").is_ok());
        assert!(matches!(
            check("http://accounts.example.org"),
            Err(OidcError::InvalidConfig(_))
        ));
        assert!(matches!(
            check("ftp://127.0.0.1"),
            Err(OidcError::InvalidConfig(_))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = OidcConfig::new(
            "https://accounts.example.org",
            "prism",
            Some("s3cret-value".to_owned()),
            "https://prism.example.org/oidc/callback",
        );
        assert!(!format!("{config:?}").contains("s3cret-value"));
        let pending = PendingAuthorization {
            nonce: "n".to_owned(),
            pkce_verifier: "verifier-value".to_owned(),
        };
        assert!(!format!("{pending:?}").contains("verifier-value"));
    }
}
