//! The harness the end-to-end tests share: a platform on a real nats-server and a fresh PostgreSQL
//! database, its administrator signed in over HTTP, and small assertions on answers.

// Each file of `tests/` is a crate of its own, and each uses only part of this module.
#![allow(dead_code)]

pub mod agent;
pub mod parties;
pub mod peers;

use std::net::SocketAddr;

use prism_app::OidcSignIn;
use prism_auth::{OidcConfig, OidcProvider};
use prism_cli::{Platform, PlatformConfig};
use prism_embedded::{NatsServer, OidcTestProvider, TestDatabase};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// The emulated agent program (`prism-emulated-agent`), which `cargo test --workspace` builds beside
/// the test executables (`<target>/<profile>/deps/<test>`).
pub fn emulated_agent() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let program = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("prism-emulated-agent");
    assert!(
        program.exists(),
        "{} is missing: run the tests with --workspace, or `cargo build -p prism-emulated-agent` first",
        program.display()
    );
    program
}

/// The platform administrator's address.
pub const ADMIN_EMAIL: &str = "admin@prism.test";

/// A running platform, with its administrator signed in.
pub struct Prism {
    nats: NatsServer,
    db: TestDatabase,
    platform: Option<Platform>,
    base: String,
    /// A client without credentials.
    http: Client,
    /// The platform administrator's access token, and a client that sends it.
    admin_token: String,
    admin: Client,
    /// `None` on a platform without sign-in with OpenID Connect.
    provider: Option<OidcTestProvider>,
    /// The root certificate (PEM) the clients trust, when the API is served over HTTPS.
    root: Option<String>,
}

/// How a [`Prism`] starts: [`Prism::builder`].
#[derive(Default)]
pub struct Builder {
    addr: Option<SocketAddr>,
    /// The test provider's one user: subject, address, name.
    oidc: Option<(String, String, String)>,
    renewal: Option<prism_app::RenewalPolicy>,
    https: bool,
    provisioning: Option<prism_cli::ProvisioningSettings>,
    attestation: Option<prism_app::AttestationConfig>,
    webhooks: Option<prism_workers::WebhookConfig>,
}

impl Builder {
    /// Listens on `addr` (a [`free_addr`]) instead of a port the system picks.
    pub fn at(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Signs in with OpenID Connect through a test provider that knows one user, whose client sends
    /// browsers back to the platform's `/oauth/oidc/callback` (so the platform's address is chosen
    /// first).
    pub fn oidc(mut self, subject: &str, email: &str, name: &str) -> Self {
        self.oidc = Some((subject.to_owned(), email.to_owned(), name.to_owned()));
        self
    }

    /// Renews certificates as `policy` says (by default: looks every second, renews two days ahead).
    pub fn renewal(mut self, policy: prism_app::RenewalPolicy) -> Self {
        self.renewal = Some(policy);
        self
    }

    /// Makes CVMs as `settings` say (by default: no local backend, the reaper and health checker
    /// looking every 30 s).
    pub fn provisioning(mut self, settings: prism_cli::ProvisioningSettings) -> Self {
        self.provisioning = Some(settings);
        self
    }

    /// Appraises attestation evidence as `config` says (by default: secure, no VCEK cache).
    pub fn attestation(mut self, config: prism_app::AttestationConfig) -> Self {
        self.attestation = Some(config);
        self
    }

    /// Sends webhooks as `config` says (by default: the production backoff, origin `localhost`).
    pub fn webhooks(mut self, config: prism_workers::WebhookConfig) -> Self {
        self.webhooks = Some(config);
        self
    }

    /// Serves the API over HTTPS; the test's clients trust the platform's root.
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    pub async fn start(self) -> Prism {
        let addr = match (self.addr, &self.oidc) {
            (Some(addr), _) => Some(addr),
            (None, Some(_)) => Some(free_addr()),
            (None, None) => None,
        };
        let (provider, oidc) = match self.oidc {
            Some((subject, email, name)) => {
                let callback = format!("http://{}/oauth/oidc/callback", addr.unwrap());
                let provider = OidcTestProvider::builder()
                    .redirect_uri(&callback)
                    .user(&subject, &email, &name)
                    .start()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let discovered = OidcProvider::discover(OidcConfig::new(
                    provider.issuer(),
                    provider.client_id(),
                    Some(provider.client_secret().to_owned()),
                    callback,
                ))
                .await
                .unwrap_or_else(|e| panic!("discovery failed: {e}\n{}", provider.stderr()));
                (Some(provider), Some(OidcSignIn::new(discovered)))
            }
            None => (None, None),
        };

        let nats = NatsServer::start_temp().await.unwrap();
        let db = TestDatabase::create().await.unwrap();
        let listen = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let mut config = PlatformConfig::new(nats.url(), db.url.clone(), listen);
        config.identity.oidc = oidc;
        // The authority's keys in memory, sealed under a key of this test's.
        let kek: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0x5a);
        config.certificate_authority = Some(prism_app::CertificateAuthorityConfig {
            urls: prism_ca::CaUrls::under("http://prism.test"),
            keys: std::sync::Arc::new(prism_ca::SealedKeys::new(
                prism_ca::Sealer::new(&kek).unwrap(),
                prism_ca::MemoryKeyStore::default(),
            )),
            // Look for due certificates every second, so that tests see renewals soon.
            renewal: self.renewal.unwrap_or(prism_app::RenewalPolicy {
                every: std::time::Duration::from_secs(1),
                ..Default::default()
            }),
        });
        if self.https {
            config.https = Some(prism_cli::HttpsConfig::default());
        }
        // The agents' channel on a port of its own; an agent away for half a second is Offline.
        config.agents = Some(prism_cli::AgentsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            names: Vec::new(),
            heartbeat_gap: std::time::Duration::from_millis(500),
            dial: None,
        });
        if let Some(provisioning) = self.provisioning {
            config.provisioning = provisioning;
        }
        if let Some(attestation) = self.attestation {
            config.app.attestation = attestation;
        }
        if let Some(webhooks) = self.webhooks {
            config.webhooks = webhooks;
        }
        let platform = Platform::start(config).await.unwrap();
        if let Some(addr) = addr {
            assert_eq!(platform.addr(), addr);
        }
        let base = platform.base_url();
        let root = platform.https_root().map(str::to_owned);

        let password = platform
            .app()
            .identity()
            .bootstrap_admin(ADMIN_EMAIL, None)
            .await
            .unwrap()
            .expect("an empty platform gets its administrator");
        let http = client_builder(root.as_deref()).build().unwrap();
        let mut prism = Prism {
            nats,
            db,
            platform: Some(platform),
            base,
            http,
            admin_token: String::new(),
            admin: Client::new(),
            root,
            provider,
        };
        let r = prism.sign_in(ADMIN_EMAIL, &password).await;
        prism.admin_token = json(r, StatusCode::OK).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        prism.admin = client_builder(prism.root.as_deref())
            .default_headers(bearer_header(&prism.admin_token))
            .build()
            .unwrap();
        prism
    }
}

impl Prism {
    /// A platform listening on a port the system picks, without OpenID Connect.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn platform(&self) -> &Platform {
        self.platform.as_ref().unwrap()
    }

    /// The nats-server, to stop and restart.
    /// The URLs of the platform's NATS server and PostgreSQL database, as operator commands take them.
    pub fn server_urls(&self) -> (String, String) {
        (self.nats.url(), self.db.url.clone())
    }

    pub fn nats(&mut self) -> &mut NatsServer {
        &mut self.nats
    }

    pub fn provider(&self) -> &OidcTestProvider {
        self.provider.as_ref().expect("a platform with OpenID Connect")
    }

    /// The platform administrator's access token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client that sends the platform administrator's access token.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// A request to `path`, with `bearer` if any.
    pub fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match bearer {
            Some(bearer) => request.bearer_auth(bearer),
            None => request,
        }
    }

    /// `POST /oauth/token` with `form`.
    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The password grant.
    pub async fn sign_in(&self, email: &str, password: &str) -> Response {
        self.token(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ])
        .await
    }

    /// Stops the platform's processes, leaving its NATS server and database up (for operator
    /// commands, or to change the store underneath).
    pub async fn stop_platform(&mut self) {
        self.platform.take().unwrap().shutdown().await.unwrap();
    }

    pub async fn stop(mut self) {
        self.platform.take().unwrap().shutdown().await.unwrap();
    }
}

/// A free port on 127.0.0.1, for a server that must know its address before it listens.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A client that sends `Authorization: Bearer <bearer>` with every request.
pub fn client_with(bearer: &str) -> Client {
    Client::builder()
        .default_headers(bearer_header(bearer))
        .build()
        .unwrap()
}

fn bearer_header(bearer: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {bearer}").parse().unwrap());
    headers
}

/// A client that trusts `root` (PEM) besides nothing else, when there is one.
pub fn client_builder(root: Option<&str>) -> reqwest::ClientBuilder {
    let builder = Client::builder();
    match root {
        Some(root) => builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap()),
        None => builder,
    }
}

pub fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The JSON body of an answer with `status` (`null` if the body is none).
pub async fn json(r: Response, status: StatusCode) -> Value {
    let actual = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "{body}");
    body
}

/// The problem document of a refusal with `status`.
pub async fn problem(r: Response, status: StatusCode) -> Value {
    let content_type = header(&r, "content-type");
    let body = json(r, status).await;
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["type"].is_string(), "{body}");
    body
}

/// A certificate signing request (PEM) made by the `openssl` command line for a new P-256 key (thrown
/// away), for `subject` (`/CN=…`), with `extensions` (`-addext` values).
pub fn openssl_csr(subject: &str, extensions: &[&str]) -> String {
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "/dev/null",
        "-subj",
        subject,
    ];
    for extension in extensions {
        args.extend(["-addext", extension]);
    }
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
