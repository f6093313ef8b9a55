//! Access tokens: short-lived JWTs (RFC 9068 profile) signed with ES256, and the key set that signs
//! and verifies them.
//!
//! Why JWT and ES256: a resource server (the gateway, an agent, a customer's service) can check a token
//! with any JWT library and nothing but the public keys at the JWKS endpoint, without calling back;
//! ES256 (ECDSA on P-256 with SHA-256) is supported everywhere, and its keys and signatures are small.
//! Why short-lived (15 minutes, [`ACCESS_TOKEN_LIFETIME`]): a JWT cannot be revoked, so signing out or
//! removing a member takes effect when the refresh token ([`crate::secrets`]) is refused, at most one
//! lifetime later.
//!
//! Keys: [`SigningKeys`] holds every key that may still have signed a live token and names one
//! `current` key for signing. Each key's `kid` is its RFC 7638 JWK thumbprint, so the id follows from
//! the key and cannot point at the wrong one. Rotation adds a key and keeps the old ones for
//! verification until [`SigningKeys::retire_older_than`] drops them. The set lives in one JSON file
//! that only its owner may read, written atomically.
//!
//! Verification checks, in order: the header (ES256, type `at+jwt`, a known `kid`), the signature,
//! then issuer, audience and the validity period with [`CLOCK_SKEW_LEEWAY`]. Time is an argument.

use std::fmt;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use prism_domain::access::Permission;
use prism_domain::{ApiKeyId, SessionId, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// How long an access token is valid.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// How far the verifier's clock may be behind or ahead of the issuer's. Small, because it lengthens
/// every token's life.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::from_secs(30);

/// The `typ` header of RFC 9068, so that no other JWT signed by these keys passes for an access token.
const TOKEN_TYPE: &str = "at+jwt";

/// Longer tokens are refused before any parsing; ours are well under 1 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Marks the key file's layout, so that a later change can recognise and convert old files.
const KEY_FILE_FORMAT: &str = "prism-signing-keys/1";

/// Key files are small; a larger one is not ours.
const MAX_KEY_FILE_LEN: u64 = 1 << 20;

/// The claims of an access token. Ids are strings on the wire, as JWT has it; the accessors parse
/// them, and [`verify`] has checked that they parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub aud: String,
    /// Issued at, in seconds since the Unix epoch (as `nbf` and `exp`).
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A UUIDv7, unique per token: for audit records and a deny list should one ever be needed.
    pub jti: String,
    /// The sign-in session the token was refreshed from; absent for an API key's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The API key the token was issued to (RFC 9068 `client_id`, the client-credentials grant);
    /// absent for a user's own token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The workspace an API key is confined to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    /// The permission names an API key carries. On the wire one space-separated string, as RFC 9068
    /// and RFC 8693 define `scope`, so that other OAuth2 software reads it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "space_separated")]
    pub scope: Option<Vec<String>>,
    /// A platform administrator. Left out when false, so tokens of ordinary users do not mention it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adm: bool,
}

impl AccessClaims {
    /// Claims for `user`, valid from `now` for `lifetime`, with a fresh `jti`.
    pub fn new(issuer: &str, audience: &str, user: UserId, now: DateTime<Utc>, lifetime: Duration) -> Self {
        let iat = now.timestamp();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let unix_secs = u64::try_from(iat).unwrap_or(0);
        let jti = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            unix_secs,
            now.timestamp_subsec_nanos(),
        ));
        Self {
            iss: issuer.to_owned(),
            sub: user.to_string(),
            aud: audience.to_owned(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(lifetime),
            jti: jti.to_string(),
            sid: None,
            client_id: None,
            ws: None,
            scope: None,
            adm: false,
        }
    }

    pub fn with_session(mut self, session: SessionId) -> Self {
        self.sid = Some(session.to_string());
        self
    }

    /// Issues the token to API key `key`, confined to its `workspace` and `permissions`.
    pub fn for_api_key(mut self, key: ApiKeyId, workspace: WorkspaceId, permissions: &[Permission]) -> Self {
        self.client_id = Some(key.to_string());
        self.with_api_key(workspace, permissions)
    }

    /// Confines the token to `workspace` and `permissions`, as an API key is.
    pub fn with_api_key(mut self, workspace: WorkspaceId, permissions: &[Permission]) -> Self {
        self.ws = Some(workspace.to_string());
        self.scope = Some(permissions.iter().map(|p| p.as_str().to_owned()).collect());
        self
    }

    pub fn with_admin(mut self, admin: bool) -> Self {
        self.adm = admin;
        self
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }

    pub fn session_id(&self) -> Option<SessionId> {
        self.sid.as_deref().and_then(|s| s.parse().ok())
    }

    /// The API key a client-credentials token was issued to.
    pub fn api_key_id(&self) -> Option<ApiKeyId> {
        self.client_id.as_deref().and_then(|s| s.parse().ok())
    }

    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        self.ws.as_deref().and_then(|s| s.parse().ok())
    }

    /// The permissions of an API key's token; `None` for a user's token (no `scope`), which carries
    /// its user's grants. Names this version does not know are left out: a permission that no
    /// longer exists grants nothing.
    pub fn permissions(&self) -> Option<Vec<Permission>> {
        self.scope
            .as_ref()
            .map(|names| names.iter().filter_map(|n| Permission::parse(n)).collect())
    }
}

mod space_separated {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<String>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(names) => serializer.serialize_str(&names.join(" ")),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
        let value = Option::<String>::deserialize(deserializer)?;
        Ok(value.map(|s| s.split_whitespace().map(str::to_owned).collect()))
    }
}

/// Why a token was refused. Every case means "not authenticated" (401); the texts say why, for logs
/// and for the `WWW-Authenticate` error description, and never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token names no signing key this server knows (it may have been retired)")]
    UnknownKey,
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    #[error("the access token was issued by another issuer")]
    WrongIssuer,
    #[error("the access token is meant for another audience")]
    WrongAudience,
}

/// Signing failed: only with a key that does not fit ES256, which [`SigningKeys`] cannot hold.
#[derive(Debug, Clone, thiserror::Error)]
#[error("signing the access token failed: {0}")]
pub struct SigningError(String);

/// Signs `claims` with the current key, naming it in the header's `kid`.
pub fn issue(keys: &SigningKeys, claims: &AccessClaims) -> Result<String, SigningError> {
    let key = keys.current();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| SigningError(e.to_string()))
}

/// The claims of `token` if one of `keys` signed it for `issuer` and `audience` and it is valid at
/// `now` (give or take [`CLOCK_SKEW_LEEWAY`]).
pub fn verify(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let malformed = |reason: &str| TokenError::Malformed(reason.to_owned());
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("longer than 8 KiB"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(describe(e.kind())))?;
    if header.alg != Algorithm::ES256 {
        return Err(malformed("the algorithm must be ES256"));
    }
    if header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(malformed("the token type must be at+jwt"));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.find(kid))
        .ok_or(TokenError::UnknownKey)?;

    // jsonwebtoken checks the algorithm and the signature; the claims are checked below, against
    // `now` rather than the system clock.
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            kind => TokenError::Malformed(describe(kind)),
        })?
        .claims;

    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    let now = now.timestamp();
    let leeway = CLOCK_SKEW_LEEWAY.as_secs() as i64;
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    if claims.user_id().is_none() {
        return Err(malformed("sub is not a user id"));
    }
    if claims.sid.is_some() && claims.session_id().is_none() {
        return Err(malformed("sid is not a session id"));
    }
    if claims.ws.is_some() && claims.workspace_id().is_none() {
        return Err(malformed("ws is not a workspace id"));
    }
    if claims.client_id.is_some() && claims.api_key_id().is_none() {
        return Err(malformed("client_id is not an API key id"));
    }
    Ok(claims)
}

/// A reason that names the broken part, never its content.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidToken => "not three dot-separated parts".to_owned(),
        ErrorKind::Base64(_) => "a part is not base64url".to_owned(),
        ErrorKind::Utf8(_) => "a part is not UTF-8".to_owned(),
        ErrorKind::Json(e) => format!("not the expected JSON ({})", json_reason(e)),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            "the algorithm must be ES256".to_owned()
        }
        _ => "unreadable".to_owned(),
    }
}

/// serde_json's messages can quote the offending value; its category cannot.
fn json_reason(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "a claim is missing or has the wrong type",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid JSON",
        serde_json::error::Category::Io => "unreadable",
    }
}

/// The issuer's and audience's names and the token lifetime, kept together so that issuing and
/// verifying cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIssuer {
    /// The `iss` claim: the public base URL of this Prism, e.g. `https://prism.example.org`.
    pub issuer: String,
    /// The `aud` claim: what the tokens are for, e.g. `prism-api`.
    pub audience: String,
    pub lifetime: Duration,
}

impl TokenIssuer {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            lifetime: ACCESS_TOKEN_LIFETIME,
        }
    }

    /// Claims for `user` from `now`; add a session, an API key's scope or the admin flag with the
    /// `with_` methods of [`AccessClaims`].
    pub fn claims(&self, user: UserId, now: DateTime<Utc>) -> AccessClaims {
        AccessClaims::new(&self.issuer, &self.audience, user, now, self.lifetime)
    }

    pub fn issue(&self, keys: &SigningKeys, claims: &AccessClaims) -> Result<String, SigningError> {
        issue(keys, claims)
    }

    pub fn verify(
        &self,
        keys: &SigningKeys,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        verify(keys, token, &self.issuer, &self.audience, now)
    }
}

/// Reading, writing or generating the signing keys failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "permissions {mode:04o} for {path} are too open: the signing keys must be readable by their owner only \
         (chmod 600 {path})",
        path = path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("{} is not a signing key file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("generating a signing key failed: {0}")]
    Generate(String),
}

/// Public facts about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<DateTime<Utc>>,
    pub current: bool,
}

/// The ES256 keys that sign (the current one) and verify (all of them) access tokens.
pub struct SigningKeys {
    keys: Vec<Key>,
    /// Index into `keys`.
    current: usize,
}

struct Key {
    kid: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
    /// Base64url coordinates of the public point, for the JWKS.
    x: String,
    y: String,
    /// Holds the PKCS#8 DER of the private key.
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Key ids and dates only; private keys never reach a log.
impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current().kid)
            .field("keys", &self.keys())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    current: String,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<DateTime<Utc>>,
    /// PKCS#8 DER, standard base64.
    private_key: String,
}

impl Key {
    fn generate(now: DateTime<Utc>) -> Result<Self, KeyStoreError> {
        // A random 256-bit string is a valid P-256 scalar unless it is zero or at least the group
        // order, which happens with probability below 2^-32: draw again then.
        let secret = loop {
            let mut bytes = [0u8; 32];
            crate::fill_random(&mut bytes);
            if let Ok(secret) = SigningKey::from_slice(&bytes) {
                break secret;
            }
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| KeyStoreError::Generate(e.to_string()))?;
        Self::from_parts(&secret, der.as_bytes(), now, None).map_err(KeyStoreError::Generate)
    }

    fn from_parts(
        secret: &SigningKey,
        pkcs8_der: &[u8],
        created_at: DateTime<Utc>,
        retired_at: Option<DateTime<Utc>>,
    ) -> Result<Self, String> {
        let point = secret.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err("the public key has no affine coordinates".to_owned());
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Ok(Self {
            kid: thumbprint(&x, &y),
            created_at,
            retired_at,
            x,
            y,
            encoding: EncodingKey::from_ec_der(pkcs8_der),
            decoding,
        })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256) of a P-256 public key: the hash of the required members in
/// lexicographic order, without white space.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl SigningKeys {
    /// A set with one new key, in memory only.
    pub fn generate(now: DateTime<Utc>) -> Result<Self, KeyStoreError> {
        Ok(Self {
            keys: vec![Key::generate(now)?],
            current: 0,
        })
    }

    /// Loads the key file at `path`, or creates it with one new key if there is none. Two processes
    /// starting together end up with the same keys: the file is created only if it still does not
    /// exist, and the one that loses that race loads the winner's file.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyStoreError> {
        match Self::load(path) {
            Err(KeyStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            loaded => return loaded,
        }
        let keys = Self::generate(Utc::now())?;
        match keys.write(path, false) {
            Ok(()) => Ok(keys),
            Err(KeyStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Self::load(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the key file at `path`. Refuses a file that anyone but its owner may read or write, and
    /// one whose key ids do not match its keys.
    pub fn load(path: &Path) -> Result<Self, KeyStoreError> {
        let io = |action| {
            move |source| KeyStoreError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let corrupt = |reason: String| KeyStoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let file = File::open(path).map_err(io("opening"))?;
        // Checked on the open file, so the answer is about the file that is read.
        let metadata = file.metadata().map_err(io("reading"))?;
        if !metadata.is_file() {
            return Err(corrupt("not a regular file".to_owned()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyStoreError::InsecurePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let mut text = String::new();
        file.take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(io("reading"))?;
        let stored: KeyFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if stored.format != KEY_FILE_FORMAT {
            return Err(corrupt(format!(
                "format `{}`, expected `{KEY_FILE_FORMAT}`",
                stored.format
            )));
        }
        let mut keys = Vec::with_capacity(stored.keys.len());
        for entry in &stored.keys {
            let der = STANDARD
                .decode(&entry.private_key)
                .map_err(|_| corrupt(format!("key {}: the private key is not base64", entry.kid)))?;
            let secret = SigningKey::from_pkcs8_der(&der)
                .map_err(|_| corrupt(format!("key {}: not a PKCS#8 P-256 private key", entry.kid)))?;
            let key = Key::from_parts(&secret, &der, entry.created_at, entry.retired_at)
                .map_err(|e| corrupt(format!("key {}: {e}", entry.kid)))?;
            if key.kid != entry.kid {
                return Err(corrupt(format!(
                    "key {}: the kid is not the key's thumbprint",
                    entry.kid
                )));
            }
            if keys.iter().any(|k: &Key| k.kid == key.kid) {
                return Err(corrupt(format!("key {} appears twice", entry.kid)));
            }
            keys.push(key);
        }
        let current = keys
            .iter()
            .position(|k| k.kid == stored.current)
            .ok_or_else(|| corrupt(format!("the current key {} is not in the file", stored.current)))?;
        Ok(Self { keys, current })
    }

    /// Writes the keys to `path`, replacing the file atomically: a temporary file in the same
    /// directory, readable by its owner only, synced, then renamed over the old one.
    pub fn save(&self, path: &Path) -> Result<(), KeyStoreError> {
        self.write(path, true)
    }

    fn write(&self, path: &Path, replace: bool) -> Result<(), KeyStoreError> {
        let io = |action| {
            move |source| KeyStoreError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let stored = KeyFile {
            format: KEY_FILE_FORMAT.to_owned(),
            current: self.current().kid.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    kid: k.kid.clone(),
                    created_at: k.created_at,
                    retired_at: k.retired_at,
                    private_key: STANDARD.encode(k.encoding.as_bytes()),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(|e| io("encoding")(io::Error::other(e)))?;

        let mut temp = tempfile::Builder::new()
            .prefix(".signing-keys")
            .tempfile_in(dir)
            .map_err(io("creating a temporary file beside"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("restricting the permissions of the temporary file for"))?;
        }
        temp.write_all(&json).map_err(io("writing"))?;
        temp.as_file().sync_all().map_err(io("syncing"))?;
        let persisted = if replace {
            temp.persist(path)
        } else {
            temp.persist_noclobber(path)
        };
        persisted.map_err(|e| io("renaming the temporary file to")(e.error))?;
        // The rename is durable once the directory is synced.
        #[cfg(unix)]
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the directory of"))?;
        Ok(())
    }

    /// Adds a new key and makes it current. The previous one keeps verifying the tokens it signed,
    /// until [`retire_older_than`](Self::retire_older_than) drops it. Save afterwards.
    pub fn rotate(&mut self, now: DateTime<Utc>) -> Result<(), KeyStoreError> {
        let key = Key::generate(now)?;
        self.keys[self.current].retired_at = Some(now);
        self.keys.push(key);
        self.current = self.keys.len() - 1;
        Ok(())
    }

    /// Drops the keys that stopped signing at least `age` before `now`, and returns how many. The
    /// current key always stays. Measured from retirement, not creation, so that the tokens a key
    /// signed just before a rotation stay valid: any `age` of at least [`ACCESS_TOKEN_LIFETIME`] plus
    /// [`CLOCK_SKEW_LEEWAY`] drops no key with live tokens.
    pub fn retire_older_than(&mut self, age: Duration, now: DateTime<Utc>) -> usize {
        let age = chrono::TimeDelta::from_std(age).unwrap_or(chrono::TimeDelta::MAX);
        let current_kid = self.current().kid.clone();
        let before = self.keys.len();
        self.keys.retain(|k| {
            k.kid == current_kid || now.signed_duration_since(k.retired_at.unwrap_or(k.created_at)) < age
        });
        self.current = self.keys.iter().position(|k| k.kid == current_kid).unwrap_or(0);
        before - self.keys.len()
    }

    pub fn current_kid(&self) -> &str {
        &self.current().kid
    }

    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                kid: k.kid.clone(),
                created_at: k.created_at,
                retired_at: k.retired_at,
                current: i == self.current,
            })
            .collect()
    }

    /// The public keys as an RFC 7517 JWK Set, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": k.x,
                    "y": k.y,
                    "kid": k.kid,
                    "use": "sig",
                    "alg": "ES256",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    fn current(&self) -> &Key {
        &self.keys[self.current]
    }

    fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://prism.example.org";
    const AUD: &str = "prism-api";

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap()
    }

    fn user() -> UserId {
        UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(ISS, AUD)
    }

    fn parts(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    fn json_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn encode_part(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn tokens_round_trip() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let session = SessionId(Uuid::now_v7());
        let claims = issuer().claims(user(), t(0)).with_session(session);
        let token = issuer().issue(&keys, &claims).unwrap();

        let header = json_part(&parts(&token)[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], keys.current_kid());
        let payload = json_part(&parts(&token)[1]);
        assert!(
            payload.get("adm").is_none() && payload.get("scope").is_none(),
            "{payload}"
        );
        assert_eq!(payload["exp"], 1_750_000_000 + 900);

        let verified = issuer().verify(&keys, &token, t(60)).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.user_id(), Some(user()));
        assert_eq!(verified.session_id(), Some(session));
        assert_eq!(verified.permissions(), None);
        assert_eq!(Uuid::parse_str(&verified.jti).unwrap().get_version_num(), 7);
    }

    #[test]
    fn api_key_claims_carry_workspace_and_scope() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let workspace = WorkspaceId(Uuid::now_v7());
        let claims = issuer()
            .claims(user(), t(0))
            .with_api_key(
                workspace,
                &[Permission::ComputationRead, Permission::WorkspaceRead],
            )
            .with_admin(true);
        let token = issue(&keys, &claims).unwrap();
        let payload = json_part(&parts(&token)[1]);
        assert_eq!(payload["scope"], "computation.read workspace.read");
        assert_eq!(payload["adm"], true);
        let verified = verify(&keys, &token, ISS, AUD, t(1)).unwrap();
        assert_eq!(verified.workspace_id(), Some(workspace));
        assert_eq!(
            verified.permissions(),
            Some(vec![Permission::ComputationRead, Permission::WorkspaceRead])
        );
        assert!(verified.adm);
    }

    #[test]
    fn unknown_permission_names_grant_nothing() {
        let mut claims = issuer().claims(user(), t(0));
        claims.scope = Some(vec!["computation.read".into(), "computation.teleport".into()]);
        assert_eq!(claims.permissions(), Some(vec![Permission::ComputationRead]));
    }

    #[test]
    fn the_validity_period_is_enforced_with_thirty_seconds_of_leeway() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let token = issue(&keys, &issuer().claims(user(), t(0))).unwrap();
        let at = |secs| verify(&keys, &token, ISS, AUD, t(secs));
        assert!(at(0).is_ok());
        assert!(at(900 + 30).is_ok());
        assert_eq!(at(900 + 31), Err(TokenError::Expired));
        assert_eq!(at(16 * 60 * 60), Err(TokenError::Expired));
        assert!(at(-30).is_ok());
        assert_eq!(at(-31), Err(TokenError::NotYetValid));
        assert_eq!(TokenError::Expired.to_string(), "the access token has expired");
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let token = issue(&keys, &issuer().claims(user(), t(0))).unwrap();
        assert_eq!(
            verify(&keys, &token, "https://evil.example", AUD, t(0)),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify(&keys, &token, ISS, "other-api", t(0)),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let token = issue(&keys, &issuer().claims(user(), t(0))).unwrap();
        let p = parts(&token);

        // Another user in the payload.
        let mut payload = json_part(&p[1]);
        payload["sub"] = serde_json::json!(Uuid::nil().to_string());
        let forged = format!("{}.{}.{}", p[0], encode_part(&payload), p[2]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );
        // Admin rights in the payload.
        let mut payload = json_part(&p[1]);
        payload["adm"] = serde_json::json!(true);
        let forged = format!("{}.{}.{}", p[0], encode_part(&payload), p[2]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );

        // A changed character in the middle of the signature, and a truncated signature.
        let mut signature = p[2].clone().into_bytes();
        signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
        let forged = format!("{}.{}.{}", p[0], p[1], String::from_utf8(signature).unwrap());
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );
        let forged = format!("{}.{}.{}", p[0], p[1], &p[2][..40]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );
        let forged = format!("{}.{}.", p[0], p[1]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tokens_of_unknown_keys_are_refused() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let other = SigningKeys::generate(t(0)).unwrap();
        let token = issue(&other, &issuer().claims(user(), t(0))).unwrap();
        assert_eq!(verify(&keys, &token, ISS, AUD, t(0)), Err(TokenError::UnknownKey));

        // No kid at all.
        let p = parts(&token);
        let mut header = json_part(&p[0]);
        header.as_object_mut().unwrap().remove("kid");
        let forged = format!("{}.{}.{}", encode_part(&header), p[1], p[2]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::UnknownKey)
        );

        // Another key's signature under our kid.
        let mut header = json_part(&p[0]);
        header["kid"] = serde_json::json!(keys.current_kid());
        let forged = format!("{}.{}.{}", encode_part(&header), p[1], p[2]);
        assert_eq!(
            verify(&keys, &forged, ISS, AUD, t(0)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let token = issue(&keys, &issuer().claims(user(), t(0))).unwrap();
        let p = parts(&token);
        let with_header = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut header = json_part(&p[0]);
            change(&mut header);
            format!("{}.{}.{}", encode_part(&header), p[1], p[2])
        };
        let cases = [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c".to_owned(),
            "é.é.é".to_owned(),
            format!("{}.{}", p[0], p[1]),
            "x".repeat(9000),
            with_header(&|h| h["alg"] = "none".into()),
            with_header(&|h| h["alg"] = "HS256".into()),
            with_header(&|h| h["alg"] = "ES384".into()),
            with_header(&|h| h["typ"] = "JWT".into()),
            with_header(&|h| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ];
        for case in &cases {
            match verify(&keys, case, ISS, AUD, t(0)) {
                Err(TokenError::Malformed(reason)) => {
                    assert!(!reason.contains(&p[1][..10]), "{reason}");
                }
                other => panic!("{case:.60}: {other:?}"),
            }
        }
    }

    #[test]
    fn claims_that_are_not_ids_are_refused() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let mut claims = issuer().claims(user(), t(0));
        claims.sub = "ada@example.org".into();
        let token = issue(&keys, &claims).unwrap();
        assert_eq!(
            verify(&keys, &token, ISS, AUD, t(0)),
            Err(TokenError::Malformed("sub is not a user id".into()))
        );
        let mut claims = issuer().claims(user(), t(0));
        claims.sid = Some("session-1".into());
        let token = issue(&keys, &claims).unwrap();
        assert!(matches!(
            verify(&keys, &token, ISS, AUD, t(0)),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn after_rotation_old_tokens_verify_and_new_ones_carry_the_new_kid() {
        let mut keys = SigningKeys::generate(t(0)).unwrap();
        let old_kid = keys.current_kid().to_owned();
        let old_token = issue(&keys, &issuer().claims(user(), t(0))).unwrap();

        keys.rotate(t(100)).unwrap();
        let new_kid = keys.current_kid().to_owned();
        assert_ne!(new_kid, old_kid);
        let new_token = issue(&keys, &issuer().claims(user(), t(100))).unwrap();
        assert_eq!(json_part(&parts(&new_token)[0])["kid"], new_kid);
        assert!(verify(&keys, &old_token, ISS, AUD, t(100)).is_ok());
        assert!(verify(&keys, &new_token, ISS, AUD, t(100)).is_ok());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);

        // Retirement counts from rotation, not creation.
        assert_eq!(keys.retire_older_than(Duration::from_secs(930), t(100 + 929)), 0);
        assert!(verify(&keys, &old_token, ISS, AUD, t(100 + 929)).is_err_and(|e| e == TokenError::Expired));
        assert_eq!(keys.retire_older_than(Duration::from_secs(930), t(100 + 930)), 1);
        assert_eq!(
            verify(&keys, &old_token, ISS, AUD, t(100)),
            Err(TokenError::UnknownKey)
        );
        assert!(verify(&keys, &new_token, ISS, AUD, t(100)).is_ok());
        // The current key stays, however old.
        assert_eq!(keys.retire_older_than(Duration::ZERO, t(1_000_000)), 0);
        assert_eq!(keys.current_kid(), new_kid);
        let info = keys.keys();
        assert_eq!(info.len(), 1);
        assert!(info[0].current && info[0].retired_at.is_none() && info[0].created_at == t(100));
    }

    #[test]
    fn the_jwks_lists_public_keys_under_their_thumbprints() {
        let mut keys = SigningKeys::generate(t(0)).unwrap();
        keys.rotate(t(1)).unwrap();
        let jwks = keys.jwks();
        for (jwk, info) in jwks["keys"].as_array().unwrap().iter().zip(keys.keys()) {
            assert_eq!(jwk["kty"], "EC");
            assert_eq!(jwk["crv"], "P-256");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], "ES256");
            assert_eq!(jwk["kid"], info.kid);
            assert_eq!(jwk.as_object().unwrap().len(), 7, "no private member: {jwk}");
            assert_eq!(
                URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().len(),
                32
            );
            // jsonwebtoken's own RFC 7638 implementation agrees.
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
            assert_eq!(
                parsed
                    .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                    .unwrap(),
                info.kid
            );
        }
        // A verifier holding only the JWKS accepts the token.
        let token = issue(&keys, &issuer().claims(user(), t(1))).unwrap();
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        let jwk = set.find(keys.current_kid()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_audience(&[AUD]);
        let data =
            jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
                .unwrap();
        assert_eq!(data.claims.user_id(), Some(user()));
    }

    #[test]
    fn debug_output_shows_no_private_key() {
        let keys = SigningKeys::generate(t(0)).unwrap();
        let shown = format!("{keys:?}");
        let private = STANDARD.encode(keys.current().encoding.as_bytes());
        assert!(!shown.contains(&private[private.len() - 20..]), "{shown}");
        assert!(shown.contains(keys.current_kid()), "{shown}");
    }

    #[cfg(unix)]
    mod files {
        use std::os::unix::fs::PermissionsExt as _;

        use super::*;

        fn mode(path: &Path) -> u32 {
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        }

        #[test]
        fn the_key_file_is_created_owner_only_and_reloads_to_the_same_keys() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("signing-keys.json");
            let created = SigningKeys::load_or_create(&path).unwrap();
            assert_eq!(mode(&path), 0o600);
            let token = issue(&created, &issuer().claims(user(), Utc::now())).unwrap();

            let loaded = SigningKeys::load_or_create(&path).unwrap();
            assert_eq!(loaded.keys(), created.keys());
            assert!(verify(&loaded, &token, ISS, AUD, Utc::now()).is_ok());
            // Signing is deterministic (RFC 6979), so the same private key signs the same bytes.
            assert_eq!(
                issue(&loaded, &verify(&loaded, &token, ISS, AUD, Utc::now()).unwrap()).unwrap(),
                token
            );

            // Only the key file is left in the directory: the temporary file was renamed.
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("signing-keys.json")]);
        }

        #[test]
        fn rotation_is_saved_atomically_and_kept_owner_only() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys.json");
            let mut keys = SigningKeys::load_or_create(&path).unwrap();
            keys.rotate(Utc::now()).unwrap();
            keys.save(&path).unwrap();
            assert_eq!(mode(&path), 0o600);
            let loaded = SigningKeys::load(&path).unwrap();
            assert_eq!(loaded.keys(), keys.keys());
            assert_eq!(loaded.current_kid(), keys.current_kid());
            assert_eq!(loaded.keys().len(), 2);
        }

        #[test]
        fn a_key_file_others_can_read_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys.json");
            SigningKeys::load_or_create(&path).unwrap();
            for bad in [0o644, 0o640, 0o604, 0o660, 0o606] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
                let err = SigningKeys::load_or_create(&path).unwrap_err();
                assert!(
                    matches!(err, KeyStoreError::InsecurePermissions { mode, .. } if mode == bad),
                    "{err}"
                );
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = SigningKeys::load(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "permissions 0644 for {0} are too open: the signing keys must be readable by their owner only \
                     (chmod 600 {0})",
                    path.display()
                )
            );
            // The file was left alone.
            assert_eq!(mode(&path), 0o644);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
            assert!(SigningKeys::load(&path).is_ok());
        }

        #[test]
        fn corrupt_key_files_are_refused() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys.json");
            let keys = SigningKeys::load_or_create(&path).unwrap();
            let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let other = SigningKeys::generate(t(0)).unwrap();

            let write = |value: &serde_json::Value| {
                std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            };
            let mut wrong_kid = original.clone();
            wrong_kid["keys"][0]["kid"] = other.current_kid().into();
            wrong_kid["current"] = other.current_kid().into();
            let mut missing_current = original.clone();
            missing_current["current"] = other.current_kid().into();
            let mut not_base64 = original.clone();
            not_base64["keys"][0]["private_key"] = "***".into();
            let mut not_a_key = original.clone();
            not_a_key["keys"][0]["private_key"] = STANDARD.encode(b"not a key").into();
            let mut duplicate = original.clone();
            let first = duplicate["keys"][0].clone();
            duplicate["keys"].as_array_mut().unwrap().push(first);
            let mut other_format = original.clone();
            other_format["format"] = "prism-signing-keys/99".into();
            for bad in [
                wrong_kid,
                missing_current,
                not_base64,
                not_a_key,
                duplicate,
                other_format,
            ] {
                write(&bad);
                let err = SigningKeys::load(&path).unwrap_err();
                assert!(matches!(err, KeyStoreError::Corrupt { .. }), "{bad}: {err}");
                assert!(
                    !err.to_string()
                        .contains(original["keys"][0]["private_key"].as_str().unwrap())
                );
            }
            std::fs::write(&path, "not json").unwrap();
            assert!(matches!(
                SigningKeys::load(&path),
                Err(KeyStoreError::Corrupt { .. })
            ));
            // `load_or_create` does not replace a file it cannot read.
            assert!(SigningKeys::load_or_create(&path).is_err());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
            drop(keys);
        }

        #[test]
        fn a_file_created_in_the_meantime_is_not_overwritten() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("keys.json");
            let first = SigningKeys::generate(t(0)).unwrap();
            first.write(&path, false).unwrap();
            let second = SigningKeys::generate(t(0)).unwrap();
            let err = second.write(&path, false).unwrap_err();
            assert!(
                matches!(&err, KeyStoreError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
            );
            assert_eq!(
                SigningKeys::load_or_create(&path).unwrap().current_kid(),
                first.current_kid()
            );
        }

        #[test]
        fn a_missing_directory_is_reported_with_the_path() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("missing").join("keys.json");
            let err = SigningKeys::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("missing/keys.json"), "{err}");
        }
    }
}
