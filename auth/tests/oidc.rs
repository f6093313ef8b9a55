//! Sign-in with OpenID Connect against a real provider: panva's OpenID-certified `oidc-provider`,
//! run by `tests/oidc-provider/server.js` (Node.js) for each test on a free port. The test plays the
//! browser with `reqwest` (cookies kept, redirects followed one by one); the provider's only shortcut
//! is that its interaction step signs in and consents for the test user without a person.
//!
//! This test fails, rather than skips, when Node.js or the provider's npm packages are missing
//! (`infra/install-deps.sh` installs the packages): a skipped test would let a relying party that only
//! works against itself go unnoticed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_auth::{OidcConfig, OidcError, OidcIdentity, OidcProvider, PendingAuthorization};
use reqwest::Url;

const CLIENT_ID: &str = "prism-test";
const CLIENT_SECRET: &str = "prism-test-secret-0123456789abcdef";
/// Never contacted: the test stops at the provider's redirect to it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/oidc/callback";
const USER_SUB: &str = "f4c1e7a0-test-user";
const USER_EMAIL: &str = "ada@example.org";
const USER_NAME: &str = "Ada Lovelace";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc-provider")
}

/// Where the ID token carries the user's claims.
#[derive(Clone, Copy)]
enum Claims {
    /// oidc-provider's default: `sub` only in the ID token, the rest from the userinfo endpoint.
    AtUserInfo,
    /// Also in the ID token, as many providers do.
    InIdToken,
}

/// The provider's node process; killed when dropped, also when a test panics.
struct Provider {
    child: Child,
    issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl Provider {
    fn start(claims: Claims) -> Self {
        Self::start_on(claims, 0)
    }

    /// Starts on `port`, 0 for a free one.
    fn start_on(claims: Claims, port: u16) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json").is_file(),
            "the npm packages of {} are missing: run infra/install-deps.sh",
            dir.display()
        );
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(dir.join("server.js"))
            .arg(port.to_string())
            .current_dir(&dir)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", REDIRECT_URI)
            .env("USER_SUB", USER_SUB)
            .env("USER_EMAIL", USER_EMAIL)
            .env("USER_NAME", USER_NAME)
            .env(
                "CONFORM_ID_TOKEN_CLAIMS",
                match claims {
                    Claims::AtUserInfo => "true",
                    Claims::InIdToken => "false",
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{node}`: {e}; this test runs a real OpenID provider on Node.js: \
                     install Node.js and npm, then run infra/install-deps.sh"
                )
            });

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // oidc-provider prints notices on stdout too; only `listening <issuer>` matters. Reading
            // on after it keeps the pipe from filling up.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let mut provider = Self {
            child,
            issuer: String::new(),
            stderr,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(issuer) => provider.issuer = issuer,
            Err(_) => panic!(
                "the OpenID provider did not start within {STARTUP_TIMEOUT:?} (exit: {:?}); \
                 if its npm packages are missing or stale, run infra/install-deps.sh\n{}",
                provider.child.try_wait(),
                provider.stderr.lock().unwrap()
            ),
        }
        provider
    }

    fn config(&self) -> OidcConfig {
        OidcConfig::new(
            &self.issuer,
            CLIENT_ID,
            Some(CLIENT_SECRET.to_owned()),
            REDIRECT_URI,
        )
    }

    async fn relying_party(&self) -> OidcProvider {
        match OidcProvider::discover(self.config()).await {
            Ok(rp) => rp,
            Err(e) => panic!("discovery failed: {e}\n{}", self.stderr.lock().unwrap()),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser: keeps cookies, follows no redirect by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// What the provider sent the browser back to the redirect URI with.
#[derive(Debug)]
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
}

/// Opens the authorization URL and follows the provider's redirects (its login and consent
/// interactions included) until it redirects to [`REDIRECT_URI`].
async fn authorize(browser: &reqwest::Client, url: &str) -> Callback {
    let mut url = Url::parse(url).unwrap();
    for _ in 0..10 {
        let response = browser.get(url.clone()).send().await.unwrap();
        let status = response.status();
        let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
            panic!(
                "{url} answered {status} without a redirect: {}",
                response.text().await.unwrap_or_default()
            );
        };
        assert!(status.is_redirection(), "{url} answered {status}");
        let next = url.join(location.to_str().unwrap()).unwrap();
        if next.as_str().starts_with(REDIRECT_URI) {
            let query = |name: &str| {
                next.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            if let Some(error) = query("error") {
                panic!(
                    "the provider answered with an error: {error} {:?}",
                    query("error_description")
                );
            }
            return Callback {
                code: query("code").expect("no code in the callback"),
                state: query("state").expect("no state in the callback"),
                iss: query("iss"),
            };
        }
        url = next;
    }
    panic!("more than 10 redirects without reaching the redirect URI");
}

/// `begin` → browser → callback, checked as the HTTP route will: state and `iss`.
async fn authorized(rp: &OidcProvider, browser: &reqwest::Client) -> (Callback, PendingAuthorization) {
    let request = rp.begin();
    let url = Url::parse(&request.url).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("scope").as_deref(), Some("openid email profile"));
    assert_eq!(param("nonce").as_deref(), Some(request.pending.nonce.as_str()));
    assert!(
        !request.url.contains(&request.pending.pkce_verifier),
        "the PKCE verifier must not leave the server"
    );
    let callback = authorize(browser, &request.url).await;
    assert_eq!(callback.state, request.state, "state must come back unchanged");
    rp.check_response_issuer(callback.iss.as_deref()).unwrap();
    (callback, request.pending)
}

fn assert_test_user(identity: &OidcIdentity, provider: &Provider) {
    assert_eq!(
        identity,
        &OidcIdentity {
            issuer: provider.issuer.clone(),
            subject: USER_SUB.to_owned(),
            email: Some(USER_EMAIL.to_owned()),
            email_verified: true,
            name: Some(USER_NAME.to_owned()),
        }
    );
}

#[tokio::test]
async fn signs_in_with_claims_from_the_userinfo_endpoint() {
    let provider = Provider::start(Claims::AtUserInfo);
    let rp = provider.relying_party().await;
    assert_eq!(rp.issuer(), provider.issuer);
    let browser = browser();

    let (callback, pending) = authorized(&rp, &browser).await;
    let identity = rp.finish(&callback.code, &pending).await.unwrap();
    assert_test_user(&identity, &provider);
    assert_eq!(identity.external_identity().subject, USER_SUB);

    // A code is good once.
    match rp.finish(&callback.code, &pending).await {
        Err(OidcError::Exchange { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("a spent code must be refused, got {other:?}"),
    }

    // The provider remembers the browser's session and the grant: the second sign-in needs no
    // interaction, and gets a new code, state and nonce.
    let (again, pending_again) = authorized(&rp, &browser).await;
    assert_ne!(again.code, callback.code);
    assert_ne!(pending_again.nonce, pending.nonce);
    assert_test_user(&rp.finish(&again.code, &pending_again).await.unwrap(), &provider);
}

#[tokio::test]
async fn signs_in_with_claims_in_the_id_token() {
    let provider = Provider::start(Claims::InIdToken);
    let rp = provider.relying_party().await;
    let (callback, pending) = authorized(&rp, &browser()).await;
    assert_test_user(&rp.finish(&callback.code, &pending).await.unwrap(), &provider);
}

#[tokio::test]
async fn refuses_a_tampered_code() {
    let provider = Provider::start(Claims::AtUserInfo);
    let rp = provider.relying_party().await;
    let (callback, pending) = authorized(&rp, &browser()).await;
    let mut code = callback.code.clone();
    let last = code.pop().unwrap();
    code.push(if last == 'A' { 'B' } else { 'A' });
    match rp.finish(&code, &pending).await {
        Err(OidcError::Exchange { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("a tampered code must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_an_id_token_with_another_nonce() {
    let provider = Provider::start(Claims::AtUserInfo);
    let rp = provider.relying_party().await;
    let browser = browser();
    let (callback, pending) = authorized(&rp, &browser).await;
    // The nonce of another request of the same browser, as in a swapped callback.
    let other = rp.begin().pending;
    let wrong = PendingAuthorization {
        nonce: other.nonce,
        ..pending
    };
    match rp.finish(&callback.code, &wrong).await {
        Err(OidcError::InvalidIdToken(detail)) => {
            assert!(detail.to_lowercase().contains("nonce"), "{detail}")
        }
        other => panic!("an ID token with another nonce must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_wrong_pkce_verifier() {
    let provider = Provider::start(Claims::AtUserInfo);
    let rp = provider.relying_party().await;
    let (callback, pending) = authorized(&rp, &browser()).await;
    let wrong = PendingAuthorization {
        pkce_verifier: rp.begin().pending.pkce_verifier,
        ..pending
    };
    match rp.finish(&callback.code, &wrong).await {
        Err(OidcError::Exchange { error, description }) => {
            assert_eq!(error, "invalid_grant", "{description:?}")
        }
        other => panic!("a wrong PKCE verifier must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_wrong_client_secret_and_a_foreign_issuer() {
    let provider = Provider::start(Claims::AtUserInfo);
    let rp = provider.relying_party().await;
    let (callback, pending) = authorized(&rp, &browser()).await;

    // A response that names another issuer, or none from a provider that sends it, is refused
    // before the code is used (RFC 9207).
    assert!(matches!(
        rp.check_response_issuer(Some("https://attacker.example.org")),
        Err(OidcError::WrongIssuer { .. })
    ));
    assert!(matches!(
        rp.check_response_issuer(None),
        Err(OidcError::WrongIssuer { .. })
    ));

    let impostor = OidcProvider::discover(OidcConfig {
        client_secret: Some("not-the-secret".to_owned()),
        ..provider.config()
    })
    .await
    .unwrap();
    match impostor.finish(&callback.code, &pending).await {
        Err(OidcError::Exchange { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("a wrong client secret must be refused, got {other:?}"),
    }

    // The metadata must name exactly the configured issuer.
    let slash = OidcConfig {
        issuer: format!("{}/", provider.issuer),
        ..provider.config()
    };
    match OidcProvider::discover(slash).await {
        Err(OidcError::Discovery(detail)) => assert!(detail.contains("issuer"), "{detail}"),
        other => panic!("an issuer other than the metadata's must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn fetches_the_key_set_again_when_the_provider_rotated_its_keys() {
    let first = Provider::start(Claims::AtUserInfo);
    let rp = first.relying_party().await;
    let port = Url::parse(&first.issuer).unwrap().port().unwrap();
    // The same issuer comes back with new signing keys (server.js makes fresh ones on every start),
    // which the key set fetched at discovery lacks.
    drop(first);
    let second = Provider::start_on(Claims::AtUserInfo, port);
    let (callback, pending) = authorized(&rp, &browser()).await;
    assert_test_user(&rp.finish(&callback.code, &pending).await.unwrap(), &second);
}
