//! What the CLI's tests share: a client signed in over HTTP, as a user of the API would be.

use serde_json::Value;

/// A client that sends the access token `base`'s `/oauth/token` gives `email` and `password`.
pub async fn signed_in_as(base: &str, email: &str, password: &str) -> reqwest::Client {
    let r = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "{email} cannot sign in");
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
