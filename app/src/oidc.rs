//! Sign-in with OpenID Connect: the authorization-code flow with PKCE against the configured provider,
//! ending in a platform session like a password sign-in.
//!
//! The first sign-in of a provider account links it to the user with the same e-mail address — only
//! when the provider says the address is verified — or registers that user (without a password).
//! Later sign-ins find the user by the link (issuer and subject), whatever the address says then.
//!
//! Between the redirect to the provider and the callback, the nonce and PKCE verifier wait here, in
//! memory, under the `state`, for at most [`PENDING_LIFETIME`]; each is taken once. A platform of
//! several processes therefore needs the callback to reach the process that began the sign-in (a
//! sticky load balancer), or sign-ins started elsewhere are refused as unknown. Their number is bounded
//! (the oldest are forgotten first), so a flood of begun sign-ins costs memory only up to that bound,
//! though it can push out real ones; rate-limit `/oauth/oidc/authorize` at the edge if that matters.
//!
//! An existing account is linked only when its own address is verified: anyone may register any
//! address, and linking an unproven one would hand its password holder the provider user's account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prism_auth::{OidcError, OidcIdentity, OidcProvider, PendingAuthorization};
use prism_domain::UserId;
use prism_domain::denial::DenialReason;
use prism_domain::session::SignInMethod;
use prism_domain::user::{SignInOutcome, User, UserCommand, UserStatus};
use prism_domain::values::Email;
use tracing::warn;

use crate::{AppError, Caller, Denial, ErrorKind, Identity, Tokens};

/// How long a begun sign-in may take to come back.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Begun sign-ins kept at most; beyond, the oldest are forgotten (a flood of begun sign-ins cannot grow
/// memory).
const PENDING_MAX: usize = 10_000;

/// The configured provider and the sign-ins begun with it.
#[derive(Debug, Clone)]
pub struct OidcSignIn {
    provider: Arc<OidcProvider>,
    pending: Arc<Mutex<HashMap<String, (Instant, PendingAuthorization)>>>,
}

impl OidcSignIn {
    pub fn new(provider: OidcProvider) -> Self {
        Self {
            provider: Arc::new(provider),
            pending: Arc::default(),
        }
    }

    pub fn issuer(&self) -> &str {
        self.provider.issuer()
    }

    fn remember(&self, state: String, pending: PendingAuthorization) {
        let now = Instant::now();
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| now.duration_since(*at) < PENDING_LIFETIME);
        if map.len() >= PENDING_MAX
            && let Some(oldest) = map.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(state, (now, pending));
    }

    fn take(&self, state: &str) -> Option<PendingAuthorization> {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (at, pending) = map.remove(state)?;
        (at.elapsed() < PENDING_LIFETIME).then_some(pending)
    }
}

/// Where to send the browser, and the `state` it will come back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcRedirect {
    pub url: String,
    pub state: String,
}

/// What the provider sent back to the callback.
#[derive(Debug, Clone, Default)]
pub struct OidcCallback {
    pub state: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

impl Identity<'_> {
    fn oidc(&self) -> Result<&OidcSignIn, AppError> {
        self.app()
            .inner
            .identity
            .as_ref()
            .and_then(|state| state.config.oidc.as_ref())
            .ok_or_else(|| {
                AppError::not_found("sign-in with OpenID Connect is not configured on this platform")
            })
    }

    /// `Ok` when sign-in with OpenID Connect is configured ("not found" otherwise), so that its routes
    /// answer 404 on a platform without a provider whatever they are sent.
    pub fn oidc_begin_check(&self) -> Result<(), AppError> {
        self.oidc().map(|_| ())
    }

    /// Whether the platform is served over https (its public URL), so that cookies are marked
    /// `Secure`.
    pub fn served_over_https(&self) -> bool {
        self.state()
            .map(|s| s.config.issuer.issuer.starts_with("https://"))
            .unwrap_or(false)
    }

    /// Begins a sign-in with the provider.
    pub fn oidc_begin(&self) -> Result<OidcRedirect, AppError> {
        let oidc = self.oidc()?;
        let request = oidc.provider.begin();
        oidc.remember(request.state.clone(), request.pending);
        Ok(OidcRedirect {
            url: request.url,
            state: request.state,
        })
    }

    /// Completes a sign-in: checks the callback, exchanges the code, and starts a session for the linked
    /// (or newly linked, or newly registered) user. Every refusal is recorded.
    pub async fn oidc_finish(&self, caller: &Caller, callback: OidcCallback) -> Result<Tokens, AppError> {
        let oidc = self.oidc()?;
        // Answered with its detail: the caller has proven to the provider who it is.
        let refuse =
            |detail: String| Denial::new(DenialReason::InvalidCredentials, "oauth/oidc/callback", detail);
        let Some(pending) = oidc.take(&callback.state) else {
            return Err(self
                .app()
                .deny(caller, refuse("unknown or expired sign-in state".into()))
                .await);
        };
        if let Err(e) = oidc.provider.check_response_issuer(callback.iss.as_deref()) {
            return Err(self.app().deny(caller, refuse(e.to_string())).await);
        }
        if let Some(error) = callback.error {
            return Err(self
                .app()
                .deny(caller, refuse(format!("the provider refused: {error}")))
                .await);
        }
        let Some(code) = callback.code else {
            return Err(AppError::bad_request(
                "the callback carries neither `code` nor `error`",
            ));
        };
        let identity = match oidc.provider.finish(&code, &pending).await {
            Ok(identity) => identity,
            Err(OidcError::Provider { endpoint, detail }) => {
                warn!(endpoint, %detail, "the OpenID provider could not be reached");
                return Err(AppError::unavailable(
                    "the OpenID provider cannot be reached; retry shortly",
                ));
            }
            Err(e) => return Err(self.app().deny(caller, refuse(e.to_string())).await),
        };
        let user = self.linked_user(caller, &identity).await?;
        let state = self.load::<User>(&user.to_string()).await?;
        if state.status != UserStatus::Active {
            return Err(self
                .app()
                .deny(caller, refuse("the account is disabled".into()))
                .await);
        }
        let events = self
            .record::<User>(
                caller,
                &user.to_string(),
                UserCommand::RecordSignIn {
                    outcome: SignInOutcome::Succeeded,
                    source: caller.source.map(|s| s.to_string()),
                    policy: self.state()?.config.lockout,
                },
            )
            .await?;
        if User::sign_in_outcome(&events) != Some(SignInOutcome::Succeeded) {
            return Err(self
                .app()
                .deny(caller, refuse("the account cannot sign in now".into()))
                .await);
        }
        let method = SignInMethod::OpenIdConnect {
            issuer: identity.issuer.clone(),
        };
        self.start_session(caller, user, &state, method).await
    }

    /// The user a provider account signs in as, linking or registering it on its first sign-in.
    async fn linked_user(&self, caller: &Caller, identity: &OidcIdentity) -> Result<UserId, AppError> {
        let read = self.app().read_models()?;
        if let Some(user) = read.user_by_identity(&identity.issuer, &identity.subject).await? {
            return Ok(user.id);
        }
        let refuse =
            |detail: &str| Denial::new(DenialReason::InvalidCredentials, "oauth/oidc/callback", detail);
        let address = identity.email.as_deref().filter(|_| identity.email_verified);
        let Some(email) = address.and_then(|a| Email::parse(a).ok()) else {
            return Err(self
                .app()
                .deny(
                    caller,
                    refuse("the provider gave no verified e-mail address to link the account by"),
                )
                .await);
        };
        let id = UserId::for_email(&email);
        let existing = self.load::<User>(&id.to_string()).await?;
        if existing.identities.contains(&identity.external_identity()) {
            // Linked a moment ago; the read model has not caught up yet.
            return Ok(id);
        }
        if existing.status == UserStatus::Disabled {
            return Err(self.app().deny(caller, refuse("the account is disabled")).await);
        }
        if existing.status == UserStatus::Active && !existing.email_verified {
            // Anyone may register any address; linking to an account whose address nobody has proven
            // would hand the provider's user an account someone else holds the password of.
            return Err(self
                .app()
                .deny(
                    caller,
                    refuse(
                        "an account with this address exists but has not verified it: sign in with its \
                         password and verify the address first, or ask an administrator",
                    ),
                )
                .await);
        }
        if existing.status == UserStatus::New {
            let registration = UserCommand::Register {
                id,
                email,
                display_name: identity.name.clone().unwrap_or_else(|| identity.subject.clone()),
                password: None,
                platform_admin: false,
                email_verified: true,
                verification: None,
            };
            match self.record::<User>(caller, &id.to_string(), registration).await {
                Ok(_) => {}
                // Registered concurrently: link that account.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let link = UserCommand::LinkIdentity {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
        };
        self.record::<User>(caller, &id.to_string(), link).await?;
        Ok(id)
    }
}
