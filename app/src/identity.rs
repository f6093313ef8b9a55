//! Identity: registration, sign-in (the OAuth 2.0 grants), and turning a bearer credential into the
//! [`Principal`] of a request.
//!
//! Passwords are checked here with argon2id and never reach the domain; neither do secrets: refresh
//! tokens and API keys are opaque (`prt_…`, `pak_…`), their SHA-256 is what the aggregates keep. Access
//! tokens are short-lived ES256 JWTs; each request made with one also checks that its user is still
//! active and its session not ended, so signing out or disabling an account takes effect at once.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::Utc;
use prism_auth::{
    OpaqueToken, PasswordHasher, PasswordPolicy, SignInThrottle, SigningKeys, ThrottleConfig, TokenError,
    TokenIssuer, TokenKind,
};
use prism_domain::api_key::ApiKey;
use prism_domain::denial::DenialReason;
use prism_domain::session::{RevocationReason, Session, SessionCommand, SignInMethod};
use prism_domain::user::{LockoutPolicy, SignInOutcome, User, UserCommand, UserStatus};
use prism_domain::values::Email;
use prism_domain::{Aggregate, ApiKeyId, SessionId, UserId};
use prism_store::CommandRequest;
use sha2::Digest as _;
use tracing::warn;

use crate::{ApiKeyScope, App, AppError, Caller, Denial, ErrorKind, Principal, UserPrincipal};

/// How identity behaves; [`IdentityConfig::new`] takes the signing keys, the rest has defaults.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub keys: Arc<RwLock<SigningKeys>>,
    /// `iss` and `aud` of the access tokens.
    pub issuer: TokenIssuer,
    pub password_policy: PasswordPolicy,
    pub lockout: LockoutPolicy,
    pub throttle: ThrottleConfig,
    /// How long a refresh token may wait to be used.
    pub refresh_lifetime: chrono::Duration,
    /// How long a session may go on by refreshing, at most.
    pub session_lifetime: chrono::Duration,
    /// Sign-in with an OpenID Connect provider, when one is configured.
    pub oidc: Option<crate::oidc::OidcSignIn>,
    /// The file the keys came from. Another process may rotate them there (`prism token-keys
    /// rotate`): it is read again when a token names a key this process does not know (at most once
    /// a second), and every `keys_reread` otherwise, so every process soon signs with the new key and
    /// lists it.
    pub keys_file: Option<std::path::PathBuf>,
    pub keys_reread: std::time::Duration,
}

impl IdentityConfig {
    pub fn new(keys: SigningKeys, issuer: &str) -> Self {
        Self {
            keys: Arc::new(RwLock::new(keys)),
            issuer: TokenIssuer::new(issuer, issuer),
            password_policy: PasswordPolicy::default(),
            lockout: LockoutPolicy {
                max_failures: 5,
                window: chrono::Duration::minutes(15),
                lockout: chrono::Duration::minutes(15),
            },
            throttle: ThrottleConfig::default(),
            refresh_lifetime: chrono::Duration::days(1),
            session_lifetime: chrono::Duration::days(30),
            oidc: None,
            keys_file: None,
            keys_reread: std::time::Duration::from_secs(30),
        }
    }

    /// Fresh keys in memory, for tests and single-process development.
    pub fn ephemeral(issuer: &str) -> Self {
        Self::new(
            SigningKeys::generate(Utc::now()).expect("generating a P-256 key does not fail"),
            issuer,
        )
    }
}

/// What identity keeps besides its configuration: the hasher (its dummy hash is made once) and the
/// sign-in throttle (in memory, per process).
#[derive(Debug)]
pub(crate) struct IdentityState {
    pub config: IdentityConfig,
    /// When the keys were last read from their file.
    keys_read: std::sync::Mutex<Instant>,
    /// Tokens already verified (by the SHA-256 of the token), until they expire.
    verified: std::sync::Mutex<lru::LruCache<[u8; 32], prism_auth::AccessClaims>>,
    hasher: Arc<PasswordHasher>,
    pub(crate) throttle: SignInThrottle,
}

/// Access tokens whose signature was checked, kept until they expire: a token is presented with
/// every request of its client, and its signature cannot change. At most this many.
const VERIFIED_TOKENS_MAX: usize = 10_000;

impl IdentityState {
    /// The claims of a token verified before and not expired since.
    fn verified(&self, digest: &[u8; 32]) -> Option<prism_auth::AccessClaims> {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let claims = cache.get(digest)?.clone();
        if claims.exp <= Utc::now().timestamp() {
            cache.pop(digest);
            return None;
        }
        Some(claims)
    }

    fn remember_verified(&self, digest: [u8; 32], claims: &prism_auth::AccessClaims) {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(digest, claims.clone());
    }

    /// Reads the keys again from their file, when there is one and the last read is older than
    /// `keys_reread` (a second when `force`d). A file that cannot be read keeps the keys in memory
    /// (and says so).
    fn reread_keys(&self, force: bool) {
        let Some(path) = &self.config.keys_file else {
            return;
        };
        {
            let mut last = self.keys_read.lock().unwrap_or_else(|p| p.into_inner());
            // Even when forced, not more than once a second: unknown key ids are cheap to send.
            let due = if force {
                std::time::Duration::from_secs(1).min(self.config.keys_reread)
            } else {
                self.config.keys_reread
            };
            if last.elapsed() < due {
                return;
            }
            *last = Instant::now();
        }
        match SigningKeys::load(path) {
            Ok(keys) => *self.config.keys.write().unwrap_or_else(|p| p.into_inner()) = keys,
            Err(e) => {
                warn!(error = %e, "could not read the token signing keys again; keeping those in memory")
            }
        }
    }

    pub fn new(config: IdentityConfig) -> Self {
        Self {
            keys_read: std::sync::Mutex::new(Instant::now()),
            verified: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(VERIFIED_TOKENS_MAX).expect("a positive bound"),
            )),
            throttle: SignInThrottle::new(config.throttle),
            hasher: Arc::new(PasswordHasher::default()),
            config,
        }
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: String,
    pub display_name: String,
    pub password: String,
}

/// Tokens handed out by a grant (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    /// Absent for the client-credentials grant, which signs in again instead of refreshing.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    app: &'a App,
}

impl<'a> Identity<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    pub(crate) fn app(&self) -> &'a App {
        self.app
    }

    pub(crate) fn state(&self) -> Result<&'a IdentityState, AppError> {
        self.app
            .inner
            .identity
            .as_ref()
            .ok_or_else(|| AppError::internal("this application was built without identity"))
    }

    /// The JSON Web Key Set of the access-token signing keys.
    pub fn jwks(&self) -> Result<serde_json::Value, AppError> {
        self.state()?.reread_keys(false);
        let keys = self
            .state()?
            .config
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Ok(keys.jwks())
    }

    /// Registers an account with a password. `platform_admin` only for the platform's first
    /// administrator (see [`Identity::bootstrap_admin`]).
    pub async fn register(&self, caller: &Caller, registration: Registration) -> Result<UserId, AppError> {
        self.register_as(caller, registration, false).await
    }

    async fn register_as(
        &self,
        caller: &Caller,
        registration: Registration,
        platform_admin: bool,
    ) -> Result<UserId, AppError> {
        let state = self.state()?;
        let email = Email::parse(&registration.email)
            .map_err(|e| AppError::new(ErrorKind::Invalid, e.to_string()))?;
        state
            .config
            .password_policy
            .check(&registration.password)
            .map_err(|e| AppError::new(ErrorKind::Invalid, format!("password {e}")))?;
        let password = hash(state, registration.password).await?;
        let id = UserId::for_email(&email);
        self.record::<User>(
            caller,
            &id.to_string(),
            UserCommand::Register {
                id,
                email,
                display_name: registration.display_name,
                password: Some(password),
                platform_admin,
                // Verification by mail comes with a sender; until then an address is taken as given,
                // and is not verified — but for the first administrator's, which the operator
                // configured the platform with: a computation naming that address names them.
                email_verified: platform_admin,
                verification: None,
            },
        )
        .await?;
        Ok(id)
    }

    /// Creates the first platform administrator when the platform has no user yet, with `password`
    /// or a generated one; answers the password when it made the account (to be shown once), `None`
    /// when users exist already.
    pub async fn bootstrap_admin(
        &self,
        email: &str,
        password: Option<String>,
    ) -> Result<Option<String>, AppError> {
        if self.app.read_models()?.platform_has_users().await? {
            return Ok(None);
        }
        let password = match password {
            Some(given) => given,
            None => {
                // The secret part of an opaque token: 43 base64url characters, 256 random bits.
                let (token, _) = OpaqueToken::generate(TokenKind::PasswordReset, uuid::Uuid::now_v7());
                token[token.len() - prism_auth::OpaqueToken::SECRET_LEN..].to_owned()
            }
        };
        let registration = Registration {
            email: email.into(),
            display_name: "Platform administrator".into(),
            password: password.clone(),
        };
        match self
            .register_as(&Caller::service("bootstrap"), registration, true)
            .await
        {
            Ok(_) => Ok(Some(password)),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The `password` grant: signs in with e-mail address and password, starting a session.
    pub async fn password_grant(
        &self,
        caller: &Caller,
        email: &str,
        password: &str,
    ) -> Result<Tokens, AppError> {
        let state = self.state()?;
        let source = caller.source.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let failed = |detail: &str| Denial::new(DenialReason::SignInFailed, "oauth/token", detail);
        let Ok(email) = Email::parse(email) else {
            return Err(self.app.deny(caller, failed("not an e-mail address")).await);
        };
        if let Err(throttled) = state.throttle.check(email.as_str(), source, Instant::now()) {
            let denial = Denial::new(
                DenialReason::Throttled,
                "oauth/token",
                format!(
                    "too many failed sign-ins; retry in {} s",
                    throttled.retry_after.as_secs().max(1)
                ),
            );
            return Err(self.app.deny(caller, denial).await);
        }
        let id = UserId::for_email(&email);
        let user = self.load::<User>(&id.to_string()).await?;
        let Some(hash) = user.password.clone().filter(|_| user.status != UserStatus::New) else {
            // Same time as a real check, so the answer does not tell which addresses have accounts.
            dummy_verify(state, password.to_owned()).await;
            state
                .throttle
                .record_failure(email.as_str(), source, Instant::now());
            return Err(self
                .app
                .deny(caller, failed("unknown account or no password"))
                .await);
        };
        let matches = verify(state, password.to_owned(), hash).await;
        let outcome = match (matches, user.can_sign_in(Utc::now())) {
            (true, Ok(())) => SignInOutcome::Succeeded,
            (true, Err(reason)) => SignInOutcome::Failed { reason },
            (false, _) => SignInOutcome::Failed {
                reason: prism_domain::user::SignInFailure::WrongPassword,
            },
        };
        let events = self
            .record::<User>(
                caller,
                &id.to_string(),
                UserCommand::RecordSignIn {
                    outcome,
                    source: caller.source.map(|s| s.to_string()),
                    policy: state.config.lockout,
                },
            )
            .await?;
        // The account's state has the last word (a lock taken by a concurrent attempt).
        if User::sign_in_outcome(&events) != Some(SignInOutcome::Succeeded) {
            state
                .throttle
                .record_failure(email.as_str(), source, Instant::now());
            return Err(self
                .app
                .deny(
                    caller,
                    failed("wrong password, or the account is locked or disabled"),
                )
                .await);
        }
        state.throttle.record_success(email.as_str(), Instant::now());
        self.start_session(caller, id, &user, SignInMethod::Password)
            .await
    }

    /// The `refresh_token` grant: spends the refresh token for a new pair. A token presented twice
    /// ends its whole session (someone else has a copy).
    pub async fn refresh_grant(&self, caller: &Caller, refresh_token: &str) -> Result<Tokens, AppError> {
        let state = self.state()?;
        let invalid = |detail: &str| Denial::new(DenialReason::InvalidCredentials, "oauth/token", detail);
        let Ok((session_id, presented)) = OpaqueToken::parse(TokenKind::RefreshToken, refresh_token) else {
            return Err(self
                .app
                .deny(caller, invalid("the refresh token is malformed"))
                .await);
        };
        let (next_token, next) = OpaqueToken::generate(TokenKind::RefreshToken, session_id);
        let now = Utc::now();
        let command = SessionCommand::Refresh {
            presented,
            next,
            expires_at: now + state.config.refresh_lifetime,
        };
        let events = match self
            .record::<Session>(caller, &session_id.to_string(), command)
            .await
        {
            Ok(events) => events,
            Err(e)
                if matches!(
                    e.kind,
                    ErrorKind::NotFound | ErrorKind::Invalid | ErrorKind::StateConflict
                ) =>
            {
                return Err(self
                    .app
                    .deny(
                        caller,
                        invalid(&format!("the refresh token does not hold: {}", e.detail)),
                    )
                    .await);
            }
            Err(e) => return Err(e),
        };
        if let Err(refused) = Session::refresh_outcome(&events) {
            return Err(self.app.deny(caller, invalid(&refused.to_string())).await);
        }
        let session = self.load::<Session>(&session_id.to_string()).await?;
        let user_id = session
            .user
            .ok_or_else(|| AppError::internal("a started session names its user"))?;
        let user = self.load::<User>(&user_id.to_string()).await?;
        if user.status != UserStatus::Active {
            return Err(self.app.deny(caller, invalid("the account is disabled")).await);
        }
        if !user.admits(&session) {
            return Err(self.app.deny(caller, invalid(PASSWORD_CHANGED)).await);
        }
        let access_token = self.access_token(user_id, user.platform_admin, SessionId(session_id))?;
        Ok(Tokens {
            expires_in: state.config.issuer.lifetime.as_secs(),
            access_token,
            refresh_token: Some(next_token),
        })
    }

    /// The `client_credentials` grant: a personal API key (`client_secret`, the whole `pak_` key; its
    /// id is `client_id`) buys a short-lived access token confined as the key is. No refresh token: a
    /// program asks again. The token holds only while the key does (checked on every request).
    pub async fn client_credentials_grant(
        &self,
        caller: &Caller,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Tokens, AppError> {
        let state = self.state()?;
        state.reread_keys(false);
        let principal = self.api_key_principal(caller, client_secret).await?;
        let Some(key) = principal
            .api_key
            .as_ref()
            .filter(|k| k.id.to_string() == client_id.trim())
        else {
            let denial = Denial::new(
                DenialReason::InvalidCredentials,
                "oauth/token",
                "client_id does not name the API key given as client_secret",
            );
            return Err(self.app.deny(caller, denial).await);
        };
        let permissions: Vec<_> = key.permissions.iter().copied().collect();
        let claims = state
            .config
            .issuer
            .claims(principal.id, Utc::now())
            .for_api_key(key.id, key.workspace, &permissions)
            .with_admin(principal.platform_admin);
        let keys = state.config.keys.read().unwrap_or_else(|p| p.into_inner());
        let access_token = state
            .config
            .issuer
            .issue(&keys, &claims)
            .map_err(AppError::internal)?;
        Ok(Tokens {
            access_token,
            expires_in: state.config.issuer.lifetime.as_secs(),
            refresh_token: None,
        })
    }

    /// Ends the caller's session: its refresh token stops working, and so do its access tokens.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), AppError> {
        let Some(session) = caller.user().and_then(|u| u.session) else {
            return Err(AppError::new(
                ErrorKind::BadRequest,
                "only a signed-in session can be signed out",
            ));
        };
        self.record::<Session>(
            caller,
            &session.to_string(),
            SessionCommand::Revoke {
                reason: RevocationReason::SignedOut,
            },
        )
        .await?;
        Ok(())
    }

    /// The caller a bearer credential stands for: an access token (JWT) or a personal API key
    /// (`pak_…`). Refusals are recorded and answered 401.
    pub async fn authenticate(&self, mut caller: Caller, bearer: &str) -> Result<Caller, AppError> {
        let principal = if bearer.starts_with(TokenKind::ApiKey.prefix()) {
            self.api_key_principal(&caller, bearer).await?
        } else {
            self.token_principal(&caller, bearer).await?
        };
        let base = Caller::of(Principal::User(principal));
        caller.principal = base.principal;
        caller.actor = base.actor;
        Ok(caller)
    }

    async fn token_principal(&self, caller: &Caller, token: &str) -> Result<UserPrincipal, AppError> {
        let state = self.state()?;
        let invalid = |detail: String| Denial::new(DenialReason::InvalidCredentials, "bearer token", detail);
        state.reread_keys(false);
        let verify = || {
            let keys = state.config.keys.read().unwrap_or_else(|p| p.into_inner());
            state.config.issuer.verify(&keys, token, Utc::now())
        };
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let claims = match state.verified(&digest) {
            Some(claims) => Ok(claims),
            None => match verify() {
                // Perhaps rotated by another process since this one read the file.
                Err(TokenError::UnknownKey) => {
                    state.reread_keys(true);
                    verify()
                }
                other => other,
            }
            .inspect(|claims| state.remember_verified(digest, claims)),
        };
        let claims = match claims {
            Ok(claims) => claims,
            Err(e) => return Err(self.app.deny(caller, invalid(token_problem(&e))).await),
        };
        if let Some(key_id) = claims.api_key_id() {
            return self.api_key_token_principal(caller, &claims, key_id).await;
        }
        let (Some(user_id), Some(session_id)) = (claims.user_id(), claims.session_id()) else {
            return Err(self
                .app
                .deny(
                    caller,
                    invalid("the access token names no user or session".into()),
                )
                .await);
        };
        let session = self.load::<Session>(&session_id.to_string()).await?;
        if !session.is_active(Utc::now()) || session.user != Some(user_id) {
            return Err(self
                .app
                .deny(
                    caller,
                    invalid("the session of this access token has ended".into()),
                )
                .await);
        }
        let user = self.active_user(caller, user_id).await?;
        if !user.admits(&session) {
            return Err(self.app.deny(caller, invalid(PASSWORD_CHANGED.into())).await);
        }
        Ok(UserPrincipal {
            id: user_id,
            email: user
                .email
                .clone()
                .ok_or_else(|| AppError::internal("a registered user has an address"))?,
            platform_admin: user.platform_admin,
            session: Some(session_id),
            api_key: None,
        })
    }

    /// The principal of an access token issued to an API key: as the key is now (revoked, expired or
    /// narrowed keys take effect at once), never as the token says.
    async fn api_key_token_principal(
        &self,
        caller: &Caller,
        claims: &prism_auth::AccessClaims,
        key_id: ApiKeyId,
    ) -> Result<UserPrincipal, AppError> {
        let invalid = |detail: &str| Denial::new(DenialReason::InvalidCredentials, "bearer token", detail);
        let key = self.load::<ApiKey>(&key_id.to_string()).await?;
        let live = key.status == prism_domain::api_key::ApiKeyStatus::Active
            && key.expires_at.is_some_and(|at| Utc::now() < at)
            && key.owner == claims.user_id();
        let (true, Some(owner), Some(workspace)) = (live, key.owner, key.workspace) else {
            return Err(self
                .app
                .deny(
                    caller,
                    invalid("the API key of this access token no longer holds"),
                )
                .await);
        };
        let user = self.active_user(caller, owner).await?;
        Ok(UserPrincipal {
            id: owner,
            email: user
                .email
                .clone()
                .ok_or_else(|| AppError::internal("a registered user has an address"))?,
            platform_admin: user.platform_admin,
            session: None,
            api_key: Some(ApiKeyScope {
                id: key_id,
                workspace,
                permissions: key.permissions.clone(),
            }),
        })
    }

    async fn api_key_principal(&self, caller: &Caller, token: &str) -> Result<UserPrincipal, AppError> {
        let invalid = |detail: &str| Denial::new(DenialReason::InvalidCredentials, "api key", detail);
        let Ok((id, presented)) = OpaqueToken::parse(TokenKind::ApiKey, token) else {
            return Err(self.app.deny(caller, invalid("the API key is malformed")).await);
        };
        let key = self.load::<ApiKey>(&id.to_string()).await?;
        // Wrong secret, revoked and expired are answered alike: only the key's holder may learn more.
        if let Err(refused) = key.authenticates(&presented, Utc::now()) {
            return Err(self
                .app
                .deny(caller, invalid(&format!("the API key does not hold ({refused})")))
                .await);
        }
        let (Some(owner), Some(workspace)) = (key.owner, key.workspace) else {
            return Err(self.app.deny(caller, invalid("the API key does not hold")).await);
        };
        let user = self.active_user(caller, owner).await?;
        Ok(UserPrincipal {
            id: owner,
            email: user
                .email
                .clone()
                .ok_or_else(|| AppError::internal("a registered user has an address"))?,
            platform_admin: user.platform_admin,
            session: None,
            api_key: Some(ApiKeyScope {
                id: ApiKeyId(id),
                workspace,
                permissions: key.permissions.clone(),
            }),
        })
    }

    async fn active_user(&self, caller: &Caller, id: UserId) -> Result<User, AppError> {
        let user = self.load::<User>(&id.to_string()).await?;
        if user.status != UserStatus::Active {
            let denial = Denial::new(
                DenialReason::InvalidCredentials,
                "bearer token",
                "the account is disabled",
            );
            return Err(self.app.deny(caller, denial).await);
        }
        Ok(user)
    }

    pub(crate) async fn start_session(
        &self,
        caller: &Caller,
        user_id: UserId,
        user: &User,
        method: SignInMethod,
    ) -> Result<Tokens, AppError> {
        let state = self.state()?;
        let id = SessionId(uuid::Uuid::now_v7());
        let (refresh_token, refresh) = OpaqueToken::generate(TokenKind::RefreshToken, id.0);
        let now = Utc::now();
        self.record::<Session>(
            caller,
            &id.to_string(),
            SessionCommand::Start {
                id,
                user: user_id,
                method,
                refresh,
                expires_at: now + state.config.refresh_lifetime,
                family_expires_at: now + state.config.session_lifetime,
                credentials: user.credentials,
            },
        )
        .await?;
        Ok(Tokens {
            access_token: self.access_token(user_id, user.platform_admin, id)?,
            expires_in: state.config.issuer.lifetime.as_secs(),
            refresh_token: Some(refresh_token),
        })
    }

    fn access_token(
        &self,
        user: UserId,
        platform_admin: bool,
        session: SessionId,
    ) -> Result<String, AppError> {
        let state = self.state()?;
        state.reread_keys(false);
        let claims = state
            .config
            .issuer
            .claims(user, Utc::now())
            .with_session(session)
            .with_admin(platform_admin);
        let keys = state.config.keys.read().unwrap_or_else(|p| p.into_inner());
        state
            .config
            .issuer
            .issue(&keys, &claims)
            .map_err(AppError::internal)
    }

    /// The aggregate as it is now, for deciding who asks: usually from memory (see
    /// [`prism_store::Repository::view`]); identity's commands are still decided against the log.
    pub(crate) async fn load<A: Aggregate>(&self, id: &str) -> Result<A, AppError> {
        self.app
            .bounded(async { Ok(self.app.repository::<A>().view(&id).await?) })
            .await
    }

    /// Commits `command` to aggregate `id` as `caller`, without authorisation: identity's commands are
    /// how a caller becomes authorised in the first place.
    pub(crate) async fn record<A: Aggregate>(
        &self,
        caller: &Caller,
        id: &str,
        command: A::Command,
    ) -> Result<Vec<A::Event>, AppError> {
        self.app
            .bounded(async {
                let request = CommandRequest::<A>::new(&id, command, caller.metadata(None));
                self.app
                    .repository::<A>()
                    .execute(request)
                    .await
                    .map(|outcome| outcome.events)
                    .map_err(|e| AppError::command(A::TYPE, e))
            })
            .await
    }
}

/// Why a session's tokens no longer hold after the password changed elsewhere.
const PASSWORD_CHANGED: &str = "the session ended when the account's password was changed or reset";

/// What a caller is told about a token that does not hold; precise, without echoing the token.
fn token_problem(error: &TokenError) -> String {
    match error {
        TokenError::Expired => "the access token has expired: refresh it".into(),
        other => format!("the access token does not hold: {other}"),
    }
}

// Argon2id is slow on purpose (tens of milliseconds): off the async threads.
pub(crate) async fn hash(
    state: &IdentityState,
    password: String,
) -> Result<prism_domain::values::PasswordHash, AppError> {
    let hasher = state.hasher.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

pub(crate) async fn verify(
    state: &IdentityState,
    password: String,
    hash: prism_domain::values::PasswordHash,
) -> bool {
    let hasher = state.hasher.clone();
    tokio::task::spawn_blocking(move || hasher.verify(&password, &hash))
        .await
        .unwrap_or(false)
}

async fn dummy_verify(state: &IdentityState, password: String) {
    let hasher = state.hasher.clone();
    let _ = tokio::task::spawn_blocking(move || hasher.dummy_verify(&password)).await;
}
