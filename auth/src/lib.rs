//! Credentials, without a database or a message bus: password hashing and policy, opaque bearer
//! secrets (refresh tokens, API keys, invitation and reset links), signed access tokens with their
//! key set, sign-in throttling, and sign-in with OpenID Connect.
//!
//! The application layer's user, sign-in, OAuth2 and API-key services build on this crate; the
//! gateway only verifies access tokens with it. Everything here is a pure function of its inputs, the
//! operating system's random numbers, (for the signing keys only) one file, and (for OpenID Connect
//! only) the provider's answers, so that it can be tested without infrastructure of Prism's own and so
//! that the security-critical code stays small enough to review.
//!
//! What this crate must not depend on: NATS, SQL, an HTTP server, or the application layer. The one
//! HTTP client is the OpenID Connect relying party's ([`oidc`]), which must talk to the provider.
//! Storage of users, sessions and keys is the caller's; this crate hands it hashes and ids
//! ([`prism_domain::values::PasswordHash`], [`prism_domain::values::SecretHash`]) and never a secret to
//! keep. Time comes in as an argument wherever a decision depends on it, so tests choose the clock.

pub mod oidc;
pub mod password;
pub mod secrets;
pub mod throttle;
pub mod tokens;

pub use oidc::{
    AuthorizationRequest, OidcConfig, OidcError, OidcIdentity, OidcProvider, PendingAuthorization,
};
pub use password::{Argon2Params, PasswordError, PasswordHasher, PasswordPolicy};
pub use secrets::{OpaqueToken, TokenFormatError, TokenKind, TokenPart};
pub use throttle::{Limit, SignInThrottle, ThrottleConfig, ThrottleScope, Throttled};
pub use tokens::{
    ACCESS_TOKEN_LIFETIME, AccessClaims, CLOCK_SKEW_LEEWAY, KeyInfo, KeyStoreError, SigningError,
    SigningKeys, TokenError, TokenIssuer,
};

/// Fills `buf` from the operating system's random number generator.
///
/// # Panics
/// If the operating system cannot provide random numbers. Nothing here can be made safely without
/// them, and on the platforms Prism runs on (Linux `getrandom(2)`) this does not fail once the kernel
/// has booted, so callers are spared an error case they could not handle anyway.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
