//! A real OpenID Connect provider for tests: panva's OpenID-certified `oidc-provider` (npm), run by
//! `tests/oidc-provider/server.js` on Node.js with one confidential client and one user.
//!
//! Tests of sign-in with OpenID Connect run against it rather than against a fake, so that a relying
//! party that only works against itself cannot go unnoticed. Its only shortcut is that its interaction
//! step signs the test user in and consents without a person; everything else (discovery, PKCE, codes,
//! ID tokens, cookies, sessions, grants) is the library's own. [`OidcTestProvider::sign_in`] plays the
//! browser through it.
//!
//! A missing Node.js or missing npm packages are errors, not reasons to skip: `infra/install-deps.sh`
//! installs the packages.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;

use crate::EmbedError;

/// How long the provider may take to say it listens (Node.js loading the library, and two signing
/// keys generated, an RSA one among them).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects [`OidcTestProvider::sign_in`] follows at most (a first sign-in takes about six).
const MAX_REDIRECTS: usize = 20;

/// The directory of `server.js` and its `node_modules`, in this source tree.
fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc-provider")
}

/// The provider's one user, as its claims say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcTestUser {
    /// `sub`.
    pub subject: String,
    /// `email`, always with `email_verified: true`.
    pub email: String,
    /// `name`.
    pub name: String,
}

/// How to run an [`OidcTestProvider`]; from [`OidcTestProvider::builder`].
#[derive(Debug, Clone)]
pub struct OidcTestProviderBuilder {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    user: OidcTestUser,
    claims_in_id_token: bool,
    port: u16,
}

impl Default for OidcTestProviderBuilder {
    fn default() -> Self {
        Self {
            client_id: "prism-test".to_owned(),
            client_secret: "prism-test-secret-0123456789abcdef".to_owned(),
            // Never contacted: a browser played by `sign_in` stops at the redirect to it.
            redirect_uri: "http://127.0.0.1:9/oidc/callback".to_owned(),
            user: OidcTestUser {
                subject: "f4c1e7a0-test-user".to_owned(),
                email: "ada@example.org".to_owned(),
                name: "Ada Lovelace".to_owned(),
            },
            claims_in_id_token: false,
            port: 0,
        }
    }
}

impl OidcTestProviderBuilder {
    /// The client's id (default `prism-test`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The client's secret; the client authenticates with HTTP Basic (`client_secret_basic`).
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.client_secret = client_secret.into();
        self
    }

    /// The client's only redirect URI (default `http://127.0.0.1:9/oidc/callback`, which nothing
    /// answers): the provider refuses authorization requests that name another.
    pub fn redirect_uri(mut self, redirect_uri: impl Into<String>) -> Self {
        self.redirect_uri = redirect_uri.into();
        self
    }

    /// The user's `sub`, `email` (verified) and `name`.
    pub fn user(
        mut self,
        subject: impl Into<String>,
        email: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.user = OidcTestUser {
            subject: subject.into(),
            email: email.into(),
            name: name.into(),
        };
        self
    }

    /// Whether the ID token carries the user's claims too, as many providers do. By default
    /// (`oidc-provider`'s own) it carries only `sub` when an access token is issued, and the relying
    /// party must ask the userinfo endpoint for the rest.
    pub fn claims_in_id_token(mut self, yes: bool) -> Self {
        self.claims_in_id_token = yes;
        self
    }

    /// The port to listen on at 127.0.0.1; 0 (the default) for a free one. Starting again on the port
    /// of a stopped provider gives the same issuer with new signing keys.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the provider and waits until it accepts requests.
    ///
    /// Runs `$PRISM_NODE` (authoritative when set), else `node` from `PATH`. Fails with what to do when
    /// Node.js or the provider's npm packages are missing.
    pub async fn start(self) -> Result<OidcTestProvider, EmbedError> {
        OidcTestProvider::launch(self).await
    }
}

/// A running OpenID provider (a `node` child process) for tests; see the [module](self) docs.
///
/// The process is killed, and waited for, when this value is dropped, so a panicking test cannot leak
/// it and its port is free again afterwards. It stays in the test's process group, so Ctrl-C stops it
/// along with the test. Keys, sessions and grants live in its memory: each start has new signing keys.
#[derive(Debug)]
pub struct OidcTestProvider {
    child: Child,
    issuer: String,
    settings: OidcTestProviderBuilder,
    stderr: Arc<Mutex<String>>,
}

impl OidcTestProvider {
    /// How to run one; `builder().start().await` runs one with the defaults.
    pub fn builder() -> OidcTestProviderBuilder {
        OidcTestProviderBuilder::default()
    }

    /// A provider with the defaults of [`OidcTestProvider::builder`] on a free port.
    pub async fn start() -> Result<Self, EmbedError> {
        Self::builder().start().await
    }

    async fn launch(settings: OidcTestProviderBuilder) -> Result<Self, EmbedError> {
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider/package.json").is_file() {
            return Err(EmbedError::OidcProviderNotInstalled { dir });
        }
        let node = std::env::var("PRISM_NODE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(dir.join("server.js"))
            .arg(settings.port.to_string())
            .current_dir(&dir)
            .env("CLIENT_ID", &settings.client_id)
            .env("CLIENT_SECRET", &settings.client_secret)
            .env("REDIRECT_URI", &settings.redirect_uri)
            .env("USER_SUB", &settings.user.subject)
            .env("USER_EMAIL", &settings.user.email)
            .env("USER_NAME", &settings.user.name)
            .env(
                "CONFORM_ID_TOKEN_CLAIMS",
                if settings.claims_in_id_token {
                    "false"
                } else {
                    "true"
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| EmbedError::NodeNotFound { node, source })?;

        // Threads, not tasks: they must drain the pipes for as long as the process lives, whichever
        // runtime (if any) is still running then.
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                // oidc-provider prints notices on stdout too; only `listening <issuer>` matters.
                // Reading on after it keeps the pipe from filling up.
                let mut tx = Some(tx);
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(issuer) = line.strip_prefix("listening ")
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(issuer.to_owned());
                    }
                }
            });
        }

        let mut provider = Self {
            child,
            issuer: String::new(),
            settings,
            stderr,
        };
        let reason = match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(issuer)) => {
                provider.issuer = issuer;
                return Ok(provider);
            }
            // Its stdout closed without the line: it is exiting (server.js never closes stdout).
            Ok(Err(_)) => match provider.child.wait() {
                Ok(status) => format!("it exited ({status}) without saying it listens"),
                Err(e) => format!("it closed its output without saying it listens ({e})"),
            },
            Err(_) => format!("it did not say it listens within {STARTUP_TIMEOUT:?}"),
        };
        provider.stop();
        // Dead now, so its stderr is at its end: wait for the whole of it.
        if let Some(reader) = stderr_reader {
            let _ = reader.join();
        }
        Err(EmbedError::OidcProviderNotReady {
            reason,
            stderr: provider.stderr().trim().to_owned(),
        })
    }

    /// Its issuer, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        Url::parse(&self.issuer)
            .ok()
            .and_then(|url| url.port())
            .unwrap_or_default()
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.settings.client_secret
    }

    pub fn redirect_uri(&self) -> &str {
        &self.settings.redirect_uri
    }

    pub fn user(&self) -> &OidcTestUser {
        &self.settings.user
    }

    /// What it has written to stderr so far (its `server_error`s and failed interactions): worth
    /// putting into a failing test's message.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Plays the browser: opens `url` (the provider's authorization URL, or a relying party's page that
    /// redirects there) and follows the redirects one by one, the provider's login and consent
    /// interactions included, until one leads to the client's redirect URI. Returns that URL, with its
    /// `code`, `state` and `iss` (or `error`), without opening it.
    ///
    /// `browser` must keep cookies (the provider's interactions need them, and a relying party's own
    /// cookie is then in it for its callback) and follow no redirect by itself:
    /// `reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none())`.
    pub async fn sign_in(&self, browser: &reqwest::Client, url: &str) -> Result<Url, EmbedError> {
        let fail = |reason: String| EmbedError::OidcSignIn {
            reason,
            stderr: self.stderr().trim().to_owned(),
        };
        let target = Url::parse(self.redirect_uri()).map_err(|e| fail(format!("bad redirect URI: {e}")))?;
        let mut url = Url::parse(url).map_err(|e| fail(format!("bad URL {url}: {e}")))?;
        for _ in 0..MAX_REDIRECTS {
            let response = browser
                .get(url.clone())
                .send()
                .await
                .map_err(|e| fail(format!("GET {url}: {e}")))?;
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .filter(|_| status.is_redirection())
                .map(|l| l.to_str().map(str::to_owned));
            let Some(Ok(location)) = location else {
                let body = response.text().await.unwrap_or_default();
                return Err(fail(format!(
                    "{url} answered {status} without a usable redirect (does the browser follow \
                     redirects by itself?): {body}"
                )));
            };
            let next = url
                .join(&location)
                .map_err(|e| fail(format!("{url} redirected to {location:?}: {e}")))?;
            if next.origin() == target.origin() && next.path() == target.path() {
                return Ok(next);
            }
            url = next;
        }
        Err(fail(format!(
            "{MAX_REDIRECTS} redirects without reaching {}",
            self.redirect_uri()
        )))
    }

    /// Kills the process and waits for it, so that its port is free again.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcTestProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts with the builder's settings, answers discovery as its issuer, reports a page that does
    /// not redirect, and frees its port when dropped (a restart there is the same issuer).
    #[tokio::test]
    async fn starts_answers_discovery_and_frees_its_port() {
        let provider = OidcTestProvider::builder()
            .client_id("client-a")
            .redirect_uri("http://127.0.0.1:9/back")
            .start()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(provider.issuer(), format!("http://127.0.0.1:{}", provider.port()));
        assert_eq!(provider.client_id(), "client-a");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata: serde_json::Value = http
            .get(format!("{}/.well-known/openid-configuration", provider.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(metadata["issuer"], provider.issuer());

        let not_a_redirect = format!("{}/.well-known/openid-configuration", provider.issuer());
        match provider.sign_in(&http, &not_a_redirect).await {
            Err(EmbedError::OidcSignIn { reason, .. }) => {
                assert!(reason.contains("without a usable redirect"), "{reason}")
            }
            other => panic!("expected a sign-in failure, got {other:?}"),
        }

        let (port, issuer) = (provider.port(), provider.issuer().to_owned());
        drop(provider);
        let again = OidcTestProvider::builder()
            .port(port)
            .start()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.issuer(), issuer);
    }
}
