//! Sign-in with OpenID Connect end to end: the platform (real nats-server and PostgreSQL) configured
//! with a real OpenID provider (`prism_embedded::OidcTestProvider`: panva's `oidc-provider` on
//! Node.js), and a browser played with `reqwest` — cookies kept, redirects followed one by one — from
//! `/oauth/oidc/authorize` through the provider's login and consent back to `/oauth/oidc/callback`.
//!
//! Like `auth/tests/oidc.rs`, this fails rather than skips when Node.js or the provider's npm packages
//! are missing (`infra/install-deps.sh` installs them).

mod common;

use std::time::Duration;

use common::{Prism, free_addr, header, problem};
use prism_domain::UserId;
use prism_domain::user::{User, UserCommand};
use prism_domain::values::{Email, SecretHash};
use prism_store::{CommandRequest, Metadata};
use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

const STATE_COOKIE: &str = "prism_oidc_state";
const SUBJECT: &str = "0b5e-grace";
const EMAIL: &str = "Grace.Hopper@Example.org";
const NAME: &str = "Grace Hopper";

impl Prism {
    /// A platform that signs in with the test provider.
    async fn with_oidc() -> Self {
        Self::builder().oidc(SUBJECT, EMAIL, NAME).start().await
    }

    /// Begins a sign-in in `browser`: the platform's redirect to the provider, checked, and the state
    /// of the cookie it set.
    async fn begin(&self, browser: &Client) -> (Url, String) {
        let r = browser
            .get(self.url("/oauth/oidc/authorize"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(header(&r, CACHE_CONTROL.as_str()), "no-store");
        let cookie = header(&r, SET_COOKIE.as_str());
        let state = cookie
            .split(';')
            .next()
            .and_then(|pair| pair.trim().strip_prefix(&format!("{STATE_COOKIE}=")))
            .unwrap_or_else(|| panic!("no state cookie: {cookie}"))
            .to_owned();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("Path=/oauth/oidc"), "{cookie}");
        let location = Url::parse(&header(&r, LOCATION.as_str())).unwrap();
        assert!(
            location.as_str().starts_with(self.provider().issuer()),
            "{location} is not at the provider"
        );
        assert_eq!(query(&location, "state").as_deref(), Some(state.as_str()));
        assert_eq!(
            query(&location, "client_id").as_deref(),
            Some(self.provider().client_id())
        );
        (location, state)
    }

    /// A whole sign-in in `browser` up to the platform's answer to the callback: its status and body.
    async fn attempt(&self, browser: &Client) -> (StatusCode, String) {
        let (authorization, _) = self.begin(browser).await;
        let back = self
            .provider()
            .sign_in(browser, authorization.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = browser.get(back).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A whole sign-in in `browser`: the platform's redirect, the provider's interactions, and the
    /// callback with the cookie. Answers the platform's tokens and the callback URL.
    async fn oidc_sign_in(&self, browser: &Client) -> (Value, Url) {
        let (authorization, state) = self.begin(browser).await;
        let back = self
            .provider()
            .sign_in(browser, authorization.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            back.as_str().starts_with(&self.url("/oauth/oidc/callback?")),
            "{back}"
        );
        assert_eq!(query(&back, "state"), Some(state));
        assert_eq!(query(&back, "iss").as_deref(), Some(self.provider().issuer()));
        assert!(query(&back, "code").is_some(), "{back}");

        let r = browser.get(back.clone()).send().await.unwrap();
        let status = r.status();
        let cleared = r.headers().get(SET_COOKIE).cloned();
        let cache = r.headers().get(CACHE_CONTROL).cloned();
        let body = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}\n{}", self.provider().stderr());
        assert_eq!(cache.unwrap(), "no-store");
        assert!(
            cleared.unwrap().to_str().unwrap().contains("Max-Age=0"),
            "the state cookie is cleared"
        );
        let tokens: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert!(
            tokens["access_token"].is_string() && tokens["refresh_token"].is_string(),
            "{tokens}"
        );
        (tokens, back)
    }

    /// Creates a workspace with the access token; answers its `created_by`.
    async fn workspace_created_by(&self, tokens: &Value) -> String {
        let r = Client::new()
            .post(self.url("/workspaces"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .json(&json!({"name": "Compilers"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["created_by"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The `detail`s of the access denials recorded in the log so far.
    async fn denials(&self) -> Vec<String> {
        let log = self.platform().app().log();
        let mut details = Vec::new();
        for sequence in 1..=log.last_sequence().await.unwrap() {
            let Some(commit) = log.commit_at(sequence).await.unwrap() else {
                continue;
            };
            if commit.subject.contains(".access.") {
                details.extend(
                    commit
                        .events
                        .iter()
                        .map(|e| e.data["detail"].as_str().unwrap_or_default().to_owned()),
                );
            }
        }
        details
    }
}

/// A browser: keeps cookies, follows no redirect by itself.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The user an account with this address is (the id is derived from the normalised address).
fn user_of(email: &str) -> String {
    format!("user:{}", UserId::for_email(&Email::parse(email).unwrap()))
}

#[tokio::test]
async fn a_provider_account_registers_its_user_and_signs_in_as_it_again() {
    let prism = Prism::with_oidc().await;
    let first = browser();
    let (tokens, callback) = prism.oidc_sign_in(&first).await;
    assert_eq!(prism.workspace_created_by(&tokens).await, user_of(EMAIL));

    // The callback is good once: the browser's cookie is gone, and with it put back the state is spent.
    problem(
        first.get(callback.clone()).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let state = query(&callback, "state").unwrap();
    problem(
        Client::new()
            .get(callback)
            .header(COOKIE, format!("{STATE_COOKIE}={state}"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Again in the same browser (the provider remembers its session and grant: no interaction), and in
    // a new one (a whole sign-in): the same user, by the link of issuer and subject.
    let (again, _) = prism.oidc_sign_in(&first).await;
    assert_ne!(again["access_token"], tokens["access_token"]);
    assert_eq!(prism.workspace_created_by(&again).await, user_of(EMAIL));
    let (other, _) = prism.oidc_sign_in(&browser()).await;
    assert_eq!(prism.workspace_created_by(&other).await, user_of(EMAIL));
    prism.stop().await;
}

#[tokio::test]
async fn a_provider_account_is_linked_only_to_a_user_whose_address_is_verified() {
    let prism = Prism::with_oidc().await;
    let r = Client::new()
        .post(prism.url("/users"))
        .json(&json!({
            "email": EMAIL.to_lowercase(),
            "display_name": "Grace",
            "password": "correct horse battery staple",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered: Value = r.json().await.unwrap();
    let id: UserId = registered["id"].as_str().unwrap().parse().unwrap();

    // Anyone may register any address: until the account proves it, the provider's user is not
    // handed an account whose password someone else may hold.
    let (status, body) = prism.attempt(&browser()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("has not verified"), "{body}");
    let users = prism.platform().app().repository::<User>();
    assert!(
        users.load(&id).await.unwrap().state.identities.is_empty(),
        "nothing was linked"
    );

    // Once the address is verified, the first sign-in links the provider account to it.
    let token = SecretHash::of(b"verification");
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    for command in [
        UserCommand::IssueEmailVerification {
            token: token.clone(),
            expires_at,
        },
        UserCommand::VerifyEmail { token },
    ] {
        users
            .execute(CommandRequest::new(&id, command, Metadata::default()))
            .await
            .unwrap();
    }
    let (tokens, _) = prism.oidc_sign_in(&browser()).await;
    assert_eq!(prism.workspace_created_by(&tokens).await, format!("user:{id}"));
    prism.stop().await;
}

#[tokio::test]
async fn callbacks_not_of_a_sign_in_begun_in_this_browser_are_refused() {
    let prism = Prism::with_oidc().await;
    let browser = browser();
    let (_, state) = prism.begin(&browser).await;
    let callback = |query: &str| prism.url(&format!("/oauth/oidc/callback?{query}"));

    // Without the cookie: a callback URL made by someone else's sign-in.
    problem(
        Client::new()
            .get(callback(&format!("state={state}&code=stolen")))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // With the cookie, but another state than the cookie's.
    problem(
        browser
            .get(callback("state=another&code=x"))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // A state the platform never handed out, with a cookie to match.
    problem(
        Client::new()
            .get(callback("state=unknown&code=x"))
            .header(COOKIE, format!("{STATE_COOKIE}=unknown"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The provider's refusal comes back to the browser that began the sign-in.
    let issuer = prism.provider().issuer().to_owned();
    let refused = Url::parse_with_params(
        &callback(""),
        [
            ("error", "access_denied"),
            ("error_description", "the user said no"),
            ("state", &state),
            ("iss", &issuer),
        ],
    )
    .unwrap();
    problem(
        browser.get(refused).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let denials = prism.denials().await;
    assert!(
        denials
            .iter()
            .any(|d| d.contains("unknown or expired sign-in state")),
        "{denials:?}"
    );
    assert!(
        denials
            .iter()
            .any(|d| d.contains("the provider refused: access_denied: the user said no")),
        "{denials:?}"
    );
    prism.stop().await;
}

#[tokio::test]
async fn without_a_provider_the_routes_are_not_found() {
    let prism = Prism::builder().at(free_addr()).start().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    problem(
        client
            .get(prism.url("/oauth/oidc/authorize"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    for cookie in ["", "prism_oidc_state=s"] {
        problem(
            client
                .get(prism.url("/oauth/oidc/callback?state=s&code=c"))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    prism.stop().await;
}
