//! Sign-in with OpenID Connect against a real provider: panva's OpenID-certified `oidc-provider`,
//! run by `tests/oidc-provider/server.js` (Node.js) for each test on a free port
//! (`prism_embedded::OidcTestProvider`). The test plays the browser with `reqwest` (cookies kept,
//! redirects followed one by one); the provider's only shortcut is that its interaction step signs in
//! and consents for the test user without a person.
//!
//! This test fails, rather than skips, when Node.js or the provider's npm packages are missing
//! (`infra/install-deps.sh` installs the packages): a skipped test would let a relying party that only
//! works against itself go unnoticed.

use std::time::Duration;

use prism_auth::{OidcConfig, OidcError, OidcIdentity, OidcProvider, PendingAuthorization};
use prism_embedded::OidcTestProvider;
use reqwest::Url;

/// Where the ID token carries the user's claims.
#[derive(Clone, Copy)]
enum Claims {
    /// oidc-provider's default: `sub` only in the ID token, the rest from the userinfo endpoint.
    AtUserInfo,
    /// Also in the ID token, as many providers do.
    InIdToken,
}

/// Starts the provider on `port`, 0 for a free one (with its default client, whose redirect URI
/// nothing answers: the browser stops at the redirect to it).
async fn start_on(claims: Claims, port: u16) -> OidcTestProvider {
    OidcTestProvider::builder()
        .claims_in_id_token(matches!(claims, Claims::InIdToken))
        .port(port)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn start(claims: Claims) -> OidcTestProvider {
    start_on(claims, 0).await
}

fn config(provider: &OidcTestProvider) -> OidcConfig {
    OidcConfig::new(
        provider.issuer(),
        provider.client_id(),
        Some(provider.client_secret().to_owned()),
        provider.redirect_uri(),
    )
}

async fn relying_party(provider: &OidcTestProvider) -> OidcProvider {
    match OidcProvider::discover(config(provider)).await {
        Ok(rp) => rp,
        Err(e) => panic!("discovery failed: {e}\n{}", provider.stderr()),
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
/// interactions included) until it redirects to the client's redirect URI.
async fn authorize(provider: &OidcTestProvider, browser: &reqwest::Client, url: &str) -> Callback {
    let back = provider
        .sign_in(browser, url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let query = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(error) = query("error") {
        panic!(
            "the provider answered with an error: {error} {:?}",
            query("error_description")
        );
    }
    Callback {
        code: query("code").expect("no code in the callback"),
        state: query("state").expect("no state in the callback"),
        iss: query("iss"),
    }
}

/// `begin` → browser → callback, checked as the HTTP route will: state and `iss`.
async fn authorized(
    provider: &OidcTestProvider,
    rp: &OidcProvider,
    browser: &reqwest::Client,
) -> (Callback, PendingAuthorization) {
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
    let callback = authorize(provider, browser, &request.url).await;
    assert_eq!(callback.state, request.state, "state must come back unchanged");
    rp.check_response_issuer(callback.iss.as_deref()).unwrap();
    (callback, request.pending)
}

fn assert_test_user(identity: &OidcIdentity, provider: &OidcTestProvider) {
    assert_eq!(
        identity,
        &OidcIdentity {
            issuer: provider.issuer().to_owned(),
            subject: provider.user().subject.clone(),
            email: Some(provider.user().email.clone()),
            email_verified: true,
            name: Some(provider.user().name.clone()),
        }
    );
}

#[tokio::test]
async fn signs_in_with_claims_from_the_userinfo_endpoint() {
    let provider = start(Claims::AtUserInfo).await;
    let rp = relying_party(&provider).await;
    assert_eq!(rp.issuer(), provider.issuer());
    let browser = browser();

    let (callback, pending) = authorized(&provider, &rp, &browser).await;
    let identity = rp.finish(&callback.code, &pending).await.unwrap();
    assert_test_user(&identity, &provider);
    assert_eq!(identity.external_identity().subject, provider.user().subject);

    // A code is good once.
    match rp.finish(&callback.code, &pending).await {
        Err(OidcError::Exchange { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("a spent code must be refused, got {other:?}"),
    }

    // The provider remembers the browser's session and the grant: the second sign-in needs no
    // interaction, and gets a new code, state and nonce.
    let (again, pending_again) = authorized(&provider, &rp, &browser).await;
    assert_ne!(again.code, callback.code);
    assert_ne!(pending_again.nonce, pending.nonce);
    assert_test_user(&rp.finish(&again.code, &pending_again).await.unwrap(), &provider);
}

#[tokio::test]
async fn signs_in_with_claims_in_the_id_token() {
    let provider = start(Claims::InIdToken).await;
    let rp = relying_party(&provider).await;
    let (callback, pending) = authorized(&provider, &rp, &browser()).await;
    assert_test_user(&rp.finish(&callback.code, &pending).await.unwrap(), &provider);
}

#[tokio::test]
async fn refuses_a_tampered_code() {
    let provider = start(Claims::AtUserInfo).await;
    let rp = relying_party(&provider).await;
    let (callback, pending) = authorized(&provider, &rp, &browser()).await;
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
    let provider = start(Claims::AtUserInfo).await;
    let rp = relying_party(&provider).await;
    let browser = browser();
    let (callback, pending) = authorized(&provider, &rp, &browser).await;
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
    let provider = start(Claims::AtUserInfo).await;
    let rp = relying_party(&provider).await;
    let (callback, pending) = authorized(&provider, &rp, &browser()).await;
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
    let provider = start(Claims::AtUserInfo).await;
    let rp = relying_party(&provider).await;
    let (callback, pending) = authorized(&provider, &rp, &browser()).await;

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
        ..config(&provider)
    })
    .await
    .unwrap();
    match impostor.finish(&callback.code, &pending).await {
        Err(OidcError::Exchange { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("a wrong client secret must be refused, got {other:?}"),
    }

    // The metadata must name exactly the configured issuer.
    let slash = OidcConfig {
        issuer: format!("{}/", provider.issuer()),
        ..config(&provider)
    };
    match OidcProvider::discover(slash).await {
        Err(OidcError::Discovery(detail)) => assert!(detail.contains("issuer"), "{detail}"),
        other => panic!("an issuer other than the metadata's must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn fetches_the_key_set_again_when_the_provider_rotated_its_keys() {
    let first = start(Claims::AtUserInfo).await;
    let rp = relying_party(&first).await;
    let port = first.port();
    // The same issuer comes back with new signing keys (server.js makes fresh ones on every start),
    // which the key set fetched at discovery lacks.
    drop(first);
    let second = start_on(Claims::AtUserInfo, port).await;
    assert_eq!(second.issuer(), rp.issuer());
    let (callback, pending) = authorized(&second, &rp, &browser()).await;
    assert_test_user(&rp.finish(&callback.code, &pending).await.unwrap(), &second);
}
