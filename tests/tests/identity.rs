//! Identity end to end, through HTTP, against a real nats-server and PostgreSQL per test: registration
//! and sign-in, invitations and membership, roles and custom roles, personal API keys, refresh-token
//! rotation, signing out, and passwords.

mod common;

use std::time::{Duration, Instant};

use common::{Prism, header, json, problem};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// A signed-in user.
struct Session {
    id: String,
    email: String,
    access: String,
    refresh: String,
}

impl Prism {
    async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Response {
        let mut request = self.request(method, path, bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, bearer: &str) -> Response {
        self.call(Method::GET, path, Some(bearer), None).await
    }

    async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Response {
        self.call(Method::POST, path, bearer, Some(body)).await
    }

    /// Registers a user over HTTP and signs them in.
    async fn user(&self, email: &str, password: &str) -> Session {
        let r = self
            .post(
                "/users",
                None,
                json!({"email": email, "display_name": email, "password": password}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self.sign_in(email, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        let tokens: Value = r.json().await.unwrap();
        Session {
            id,
            email: email.to_owned(),
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

fn pointers(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect()
}

/// Changes the workspace's description as `bearer`.
async fn update(prism: &Prism, ws: &str, bearer: &str) -> Response {
    prism
        .call(
            Method::PATCH,
            &format!("/workspaces/{ws}"),
            Some(bearer),
            Some(json!({"description": "changed"})),
        )
        .await
}

/// Changes the password of the session `bearer`.
async fn change(prism: &Prism, bearer: &str, current: &str, new: &str) -> Response {
    prism
        .post(
            "/users/me/password",
            Some(bearer),
            json!({"current_password": current, "new_password": new}),
        )
        .await
}

/// Polls `path` until `done` holds for its body (for reads that take no `min_sequence`).
async fn eventually(prism: &Prism, path: &str, bearer: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = json(prism.get(path, bearer).await, StatusCode::OK).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never showed it: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn members_invitations_custom_roles_and_api_keys() {
    let prism = Prism::start().await;
    let admin = prism.admin_token().to_owned();
    let bob = prism.user("bob@example.org", "bob's long password").await;
    let carol = prism.user("carol@example.org", "carol's long password").await;

    let r = prism
        .post("/workspaces", Some(&admin), json!({"name": "Hospitals"}))
        .await;
    let ws = json(r, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Bad invitations are refused with a pointer to each bad value.
    let r = prism
        .post(
            &format!("/workspaces/{ws}/invitations"),
            Some(&admin),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(
        pointers(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        [""]
    );
    let r = prism
        .post(
            &format!("/workspaces/{ws}/invitations"),
            Some(&admin),
            json!({"email": "not an address", "role": "member", "custom_roles": ["ok", "Admin"]}),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(pointers(&body), ["/email", "/custom_roles/1"]);

    // The administrator invites Bob by address; the token is shown once, never cached.
    let r = prism
        .post(
            &format!("/workspaces/{ws}/invitations"),
            Some(&admin),
            json!({"email": "Bob@Example.org", "role": "member"}),
        )
        .await;
    assert_eq!(header(&r, "cache-control"), "no-store");
    let invitation = json(r, StatusCode::CREATED).await;
    let token = invitation["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("inv_"), "{token}");
    let sequence = invitation["sequence"].as_u64().unwrap();
    let listed = json(
        prism
            .get(
                &format!("/workspaces/{ws}/invitations?min_sequence={sequence}"),
                &admin,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["id"], invitation["id"]);
    assert_eq!(listed[0]["invitee_email"], "bob@example.org");
    assert!(listed[0].get("token").is_none(), "{listed}");

    // Bob sees it, and accepts it with the token: a member, who may read but not change the workspace.
    let mine = eventually(&prism, "/users/me/invitations", &bob.access, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(mine[0]["workspace_id"], ws.as_str());
    let r = prism
        .post(
            "/invitations/accept",
            Some(&carol.access),
            json!({"token": token}),
        )
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = prism
        .post("/invitations/accept", Some(&bob.access), json!({"token": token}))
        .await;
    let accepted = json(r, StatusCode::OK).await;
    assert_eq!(accepted["workspace_id"], ws.as_str());
    let sequence = accepted["sequence"].as_u64().unwrap();
    let r = prism
        .get(&format!("/workspaces/{ws}?min_sequence={sequence}"), &bob.access)
        .await;
    json(r, StatusCode::OK).await;
    let denied = problem(update(&prism, &ws, &bob.access).await, StatusCode::FORBIDDEN).await;
    assert!(
        denied["detail"].as_str().unwrap().contains("`workspace.update`"),
        "{denied}"
    );
    let members = json(
        prism
            .get(
                &format!("/workspaces/{ws}/members?min_sequence={sequence}"),
                &admin,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [("admin@prism.test", "admin"), ("bob@example.org", "member")]
    );

    // Promoted to admin, Bob may change the workspace.
    let r = prism
        .call(
            Method::PATCH,
            &format!("/workspaces/{ws}/members/{}", bob.id),
            Some(&admin),
            Some(json!({"role": "admin", "custom_roles": []})),
        )
        .await;
    assert!(header(&r, "etag").starts_with('"'));
    assert_eq!(json(r, StatusCode::OK).await["role"], "admin");
    json(update(&prism, &ws, &bob.access).await, StatusCode::OK).await;

    // A custom role granting `workspace.update` lets a plain member change the workspace too.
    let r = prism
        .call(
            Method::PUT,
            &format!("/workspaces/{ws}/roles/publisher"),
            Some(&admin),
            Some(json!({"permissions": ["workspace.update", "workspace.read"]})),
        )
        .await;
    let role = json(r, StatusCode::OK).await;
    assert_eq!(role["permissions"], json!(["workspace.read", "workspace.update"]));
    let r = prism
        .call(
            Method::PUT,
            &format!("/workspaces/{ws}/roles/publisher"),
            Some(&admin),
            Some(json!({"permissions": ["platform.operate"]})),
        )
        .await;
    assert_eq!(
        pointers(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["/permissions/0"]
    );
    let r = prism
        .call(
            Method::PUT,
            &format!("/workspaces/{ws}/roles/admin"),
            Some(&admin),
            Some(json!({"permissions": ["workspace.read"]})),
        )
        .await;
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = prism
        .call(
            Method::PATCH,
            &format!("/workspaces/{ws}/members/{}", bob.id),
            Some(&admin),
            Some(json!({"role": "member", "custom_roles": ["publisher"]})),
        )
        .await;
    let member = json(r, StatusCode::OK).await;
    assert_eq!(
        (member["role"].clone(), member["custom_roles"].clone()),
        (json!("member"), json!(["publisher"]))
    );
    json(update(&prism, &ws, &bob.access).await, StatusCode::OK).await;
    let r = prism
        .get(
            &format!("/workspaces/{ws}/roles?min_sequence={}", member["sequence"]),
            &admin,
        )
        .await;
    assert_eq!(json(r, StatusCode::OK).await[0]["name"], "publisher");
    // A role someone holds is not deleted.
    let r = prism
        .call(
            Method::DELETE,
            &format!("/workspaces/{ws}/roles/publisher"),
            Some(&admin),
            None,
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;

    // Bob's API key reads the workspace, and nothing more; revoked, it no longer authenticates.
    let r = prism
        .post(
            "/users/me/api-keys",
            Some(&bob.access),
            json!({"workspace": ws, "name": "reader", "permissions": ["workspace.read"]}),
        )
        .await;
    assert_eq!(header(&r, "cache-control"), "no-store");
    let created = json(r, StatusCode::CREATED).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pak_"), "{key}");
    json(
        prism.get(&format!("/workspaces/{ws}"), &key).await,
        StatusCode::OK,
    )
    .await;
    let denied = problem(update(&prism, &ws, &key).await, StatusCode::FORBIDDEN).await;
    assert!(
        denied["detail"].as_str().unwrap().contains("`workspace.update`"),
        "{denied}"
    );
    // A key makes no keys.
    let r = prism
        .post(
            "/users/me/api-keys",
            Some(&key),
            json!({"workspace": ws, "name": "again", "permissions": ["workspace.read"]}),
        )
        .await;
    problem(r, StatusCode::FORBIDDEN).await;
    let keys = eventually(&prism, "/users/me/api-keys", &bob.access, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(keys[0]["id"], created["id"]);
    assert!(keys[0].get("key").is_none(), "{keys}");
    let r = prism
        .call(
            Method::DELETE,
            &format!("/users/me/api-keys/{}", created["id"].as_str().unwrap()),
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        prism.get(&format!("/workspaces/{ws}"), &key).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Carol is no member: the workspace does not exist for her.
    problem(
        prism.get(&format!("/workspaces/{ws}"), &carol.access).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        prism
            .get(&format!("/workspaces/{ws}/members"), &carol.access)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Bob leaves; then it does not exist for him either.
    let r = prism
        .call(
            Method::DELETE,
            &format!("/workspaces/{ws}/members/{}", bob.id),
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        prism.get(&format!("/workspaces/{ws}"), &bob.access).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(bob.email, "bob@example.org");
    prism.stop().await;
}

#[tokio::test]
async fn sessions_refresh_sign_out_and_passwords() {
    let prism = Prism::start().await;
    let dave = prism.user("dave@example.org", "dave's first password").await;
    let me = json(prism.get("/users/me", &dave.access).await, StatusCode::OK).await;
    assert_eq!(
        (me["id"].as_str().unwrap(), me["email"].as_str().unwrap()),
        (dave.id.as_str(), "dave@example.org")
    );

    // The refresh token is spent once; presenting it again ends the session, the new one with it.
    let r = prism
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &dave.refresh)])
        .await;
    let rotated = json(r, StatusCode::OK).await;
    let refresh = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(refresh, dave.refresh);
    let r = prism
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &dave.refresh)])
        .await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = prism
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    problem(r, StatusCode::UNAUTHORIZED).await;

    // Signing out ends the access token.
    let r = prism.sign_in("dave@example.org", "dave's first password").await;
    let access = json(r, StatusCode::OK).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    json(prism.get("/users/me", &access).await, StatusCode::OK).await;
    let r = prism
        .call(Method::POST, "/users/me/sign-out", Some(&access), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(prism.get("/users/me", &access).await, StatusCode::UNAUTHORIZED).await;

    // A password change needs the current password; afterwards only the new one signs in.
    let r = prism.sign_in("dave@example.org", "dave's first password").await;
    let access = json(r, StatusCode::OK).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        change(&prism, &access, "a wrong password", "dave's second password").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let short = problem(
        change(&prism, &access, "dave's first password", "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(pointers(&short), ["/new_password"]);
    assert_eq!(
        change(&prism, &access, "dave's first password", "dave's second password")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        prism.sign_in("dave@example.org", "dave's first password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    json(
        prism.sign_in("dave@example.org", "dave's second password").await,
        StatusCode::OK,
    )
    .await;

    // Resets and verifications by mail: asking never tells whether the address is registered; a
    // token that does not hold is refused with a pointer to it.
    for email in ["dave@example.org", "nobody@example.org"] {
        let r = prism
            .post("/password-resets", None, json!({"email": email}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = prism
        .post("/password-resets", None, json!({"email": " dave@example.org"}))
        .await;
    assert_eq!(
        pointers(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["/email"]
    );
    let forged = format!("pwr_{}_{}", dave.id.replace('-', ""), "A".repeat(43));
    let r = prism
        .post(
            "/password-resets/complete",
            None,
            json!({"token": forged, "new_password": "dave's third password"}),
        )
        .await;
    assert_eq!(
        pointers(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["/token"]
    );
    let r = prism
        .post(
            "/email-verifications/complete",
            None,
            json!({"token": "evt_nonsense"}),
        )
        .await;
    assert_eq!(
        pointers(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["/token"]
    );
    let r = prism
        .call(Method::POST, "/users/me/email-verification", Some(&access), None)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Platform administrators list users, disable and enable accounts, and grant their role.
    let admin = prism.admin_token().to_owned();
    let users = eventually(&prism, "/users?limit=100", &admin, |b| {
        b["items"].as_array().unwrap().len() == 2
    })
    .await;
    // The only administrator cannot disable itself: nobody would be left to enable accounts.
    let admin_id = json(prism.get("/users/me", &admin).await, StatusCode::OK).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = prism
        .call(
            Method::POST,
            &format!("/users/{admin_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    let refused = problem(r, StatusCode::CONFLICT).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("only active administrator"),
        "{refused}"
    );
    // An administrator sees every workspace, but cannot make a key for one that does not exist.
    let r = prism
        .post(
            "/users/me/api-keys",
            Some(&admin),
            json!({"workspace": uuid::Uuid::now_v7(), "name": "ghost", "permissions": ["workspace.read"]}),
        )
        .await;
    problem(r, StatusCode::NOT_FOUND).await;
    assert!(users["next_cursor"].is_null());
    problem(prism.get("/users", &access).await, StatusCode::FORBIDDEN).await;
    let r = prism
        .post(
            &format!("/users/{}/disable", dave.id),
            Some(&admin),
            json!({"reason": "on leave"}),
        )
        .await;
    let disabled = json(r, StatusCode::OK).await;
    assert_eq!(disabled["id"], dave.id.as_str());
    problem(prism.get("/users/me", &access).await, StatusCode::UNAUTHORIZED).await;
    let r = prism
        .call(
            Method::POST,
            &format!("/users/{}/disable", dave.id),
            Some(&admin),
            None,
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;
    let r = prism
        .call(
            Method::POST,
            &format!("/users/{}/enable", dave.id),
            Some(&admin),
            None,
        )
        .await;
    json(r, StatusCode::OK).await;
    let r = prism.sign_in("dave@example.org", "dave's second password").await;
    let access = json(r, StatusCode::OK).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = prism
        .call(
            Method::PUT,
            &format!("/users/{}/platform-admin", dave.id),
            Some(&admin),
            None,
        )
        .await;
    json(r, StatusCode::OK).await;
    let me = eventually(&prism, "/users/me", &access, |b| b["platform_admin"] == true).await;
    assert_eq!(me["status"], "active");
    let r = prism
        .call(
            Method::DELETE,
            &format!("/users/{}/platform-admin", dave.id),
            Some(&access),
            None,
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;
    let r = prism
        .call(
            Method::DELETE,
            &format!("/users/{admin_id}/platform-admin"),
            Some(&access),
            None,
        )
        .await;
    json(r, StatusCode::OK).await;
    problem(prism.get("/users", &admin).await, StatusCode::FORBIDDEN).await;
    prism.stop().await;
}

#[tokio::test]
async fn a_computation_invites_by_address_and_the_verified_holder_takes_it_up() {
    use prism_domain::user::{User, UserCommand};
    use prism_domain::values::SecretHash;
    use prism_store::{CommandRequest, Metadata};

    let prism = Prism::start().await;
    let admin = prism.admin_token().to_owned();
    // The administrator's id derives from the address (the users read model may not have it yet).
    let me = json!({"id": prism_domain::UserId::for_email(
        &prism_domain::values::Email::parse(common::ADMIN_EMAIL).unwrap()
    )});
    let ws = json(
        prism
            .post("/workspaces", Some(&admin), json!({"name": "Hospitals"}))
            .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Dave has no account yet: he is named by address, a pending invitation.
    let study = json!({"name": "Study", "participants": [
        {"id": me["id"], "roles": ["owner"]},
        {"id": "Dave@Example.org", "roles": ["viewer"]},
    ]});
    let created = json(
        prism
            .post(&format!("/{ws}/computations"), Some(&admin), study)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/{ws}/computations/{}", created["id"].as_str().unwrap());
    assert_eq!(created["participants"][1]["id"], "dave@example.org");

    // Registering is not enough: anyone may register any address, so it grants nothing until proven.
    let dave = prism.user("dave@example.org", "correct horse battery").await;
    problem(prism.get(&path, &dave.access).await, StatusCode::NOT_FOUND).await;

    // Once the address is verified, the platform links the invitation to Dave's account.
    let users = prism.platform().app().repository::<User>();
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
            .execute(CommandRequest::new(&dave.id, command, Metadata::default()))
            .await
            .unwrap();
    }
    let linked = eventually(&prism, &path, &admin, |c| {
        c["participants"][1]["id"] == dave.id.as_str()
    })
    .await;
    assert_eq!(linked["participants"][1]["roles"], json!(["viewer"]));
    let seen = json(prism.get(&path, &dave.access).await, StatusCode::OK).await;
    assert_eq!(seen["name"], "Study");

    // An address verified before it is named is linked as soon as the computation names it.
    let erin = prism.user("erin@example.org", "correct horse battery").await;
    let token = SecretHash::of(b"erin's verification");
    for command in [
        UserCommand::IssueEmailVerification {
            token: token.clone(),
            expires_at,
        },
        UserCommand::VerifyEmail { token },
    ] {
        users
            .execute(CommandRequest::new(&erin.id, command, Metadata::default()))
            .await
            .unwrap();
    }
    let r = prism
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"participants": [
                {"id": me["id"], "roles": ["owner"]},
                {"id": dave.id, "roles": ["viewer"]},
                {"id": "erin@example.org", "roles": ["viewer"]},
            ]})),
        )
        .await;
    json(r, StatusCode::OK).await;
    eventually(&prism, &path, &admin, |c| {
        c["participants"][2]["id"] == erin.id.as_str()
    })
    .await;
    json(prism.get(&path, &erin.access).await, StatusCode::OK).await;
    prism.stop().await;
}
