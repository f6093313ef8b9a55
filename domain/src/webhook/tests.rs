use super::*;
use crate::aggregate::{Rejection, RejectionKind};
use crate::ids::{WebhookId, WorkspaceId};
use crate::testing::{ctx, given};

const URL: &str = "https://hooks.example.org/prism";

fn id() -> WebhookId {
    WebhookId(uuid::Uuid::from_u128(1))
}

fn workspace() -> WorkspaceId {
    WorkspaceId(uuid::Uuid::from_u128(2))
}

fn secret(n: u8) -> SecretRef {
    SecretRef {
        key: format!("webhook.{}.{n}", id()),
        fingerprint: format!("{n:02x}").repeat(32),
    }
}

fn types(patterns: &[&str]) -> Vec<EventTypePattern> {
    patterns
        .iter()
        .map(|p| EventTypePattern::parse(p).unwrap())
        .collect()
}

fn register_at(url: &str) -> WebhookCommand {
    WebhookCommand::Register {
        id: id(),
        workspace: workspace(),
        url: url.into(),
        event_types: types(&["io.prism.run.*"]),
        description: "runs to the ticketing system".into(),
        secret: secret(1),
    }
}

fn registered() -> WebhookEvent {
    WebhookEvent::Registered(WebhookRegistered {
        id: id(),
        workspace: workspace(),
        url: URL.into(),
        event_types: types(&["io.prism.run.*"]),
        description: "runs to the ticketing system".into(),
        secret: secret(1),
        registered_by: ctx().actor,
        registered_at: ctx().now,
    })
}

fn validated() -> WebhookEvent {
    WebhookEvent::Validated(WebhookValidated {
        url: URL.into(),
        validated_at: ctx().now,
    })
}

fn deleted() -> WebhookEvent {
    WebhookEvent::Deleted(WebhookDeleted {
        deleted_by: ctx().actor,
        deleted_at: ctx().now,
    })
}

#[test]
fn a_registered_endpoint_waits_for_its_handshake() {
    let state = given::<Webhook>([])
        .when(register_at(URL))
        .then_expect([registered()]);
    assert_eq!(state.status, WebhookStatus::PendingValidation);
    let state = given::<Webhook>([registered()])
        .when(WebhookCommand::Validate { url: URL.into() })
        .then_expect([validated()]);
    assert_eq!(state.status, WebhookStatus::Active);
    // Validating again changes nothing.
    given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::Validate { url: URL.into() })
        .then_expect([]);
    given::<Webhook>([registered()])
        .when(register_at(URL))
        .then_rejects(WebhookError::AlreadyExists);
    given::<Webhook>([])
        .when(WebhookCommand::Delete)
        .then_rejects(WebhookError::NotFound);
}

#[test]
fn only_https_urls_are_taken_except_on_a_loopback_host() {
    for url in [
        "https://hooks.example.org/x?y=1",
        "http://127.0.0.1:8080/hook",
        "http://127.5.0.1/hook",
        "http://[::1]:9000/",
        "http://localhost:3000/",
    ] {
        assert!(
            given::<Webhook>([]).when(register_at(url)).outcome().is_ok(),
            "{url}"
        );
    }
    for (url, why) in [
        (
            "http://hooks.example.org/",
            "plain http is taken only for a loopback host; use https",
        ),
        (
            "http://10.0.0.1/",
            "plain http is taken only for a loopback host; use https",
        ),
        ("ftp://hooks.example.org/", "the scheme must be https"),
        ("hooks.example.org/x", "not an absolute URL"),
        (
            "https://user:pw@hooks.example.org/",
            "credentials in the URL would be recorded in the audit trail",
        ),
        (
            "https://hooks.example.org/#top",
            "a fragment is never sent to a server",
        ),
    ] {
        let error = WebhookError::Url { url: url.into(), why };
        assert_eq!(error.kind(), RejectionKind::Invalid);
        given::<Webhook>([]).when(register_at(url)).then_rejects(error);
    }
}

#[test]
fn event_types_are_exact_types_prefixes_or_everything() {
    for good in [
        "*",
        "io.prism.run.*",
        "io.prism.*",
        "io.prism.run.completed.v1",
        "io.prism.cvm.agent_event.v12",
    ] {
        assert!(EventTypePattern::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "run.completed",
        "io.prism.run.completed",
        "io.prism.run.completed.v0",
        "io.prism.run.completed.v1.extra",
        "io.prism.Run.completed.v1",
        "io.prism.*.completed.v1",
        "**",
        "io prism*",
    ] {
        assert_eq!(
            EventTypePattern::parse(bad),
            Err(WebhookError::EventType(bad.into())),
            "{bad}"
        );
    }
    let all = types(&["*"]);
    let runs = types(&["io.prism.run.*"]);
    let one = types(&["io.prism.run.completed.v1"]);
    assert!(subscribes(&all, "io.prism.cvm.created.v1"));
    assert!(subscribes(&runs, "io.prism.run.closed.v1"));
    assert!(!subscribes(&runs, "io.prism.runner.closed.v1"));
    assert!(subscribes(&one, "io.prism.run.completed.v1"));
    assert!(!subscribes(&one, "io.prism.run.completed.v2"));
}

#[test]
fn a_subscription_lists_one_to_32_distinct_patterns() {
    let with = |event_types: Vec<EventTypePattern>| WebhookCommand::Register {
        id: id(),
        workspace: workspace(),
        url: URL.into(),
        event_types,
        description: String::new(),
        secret: secret(1),
    };
    given::<Webhook>([])
        .when(with(vec![]))
        .then_rejects(WebhookError::NoEventTypes);
    given::<Webhook>([])
        .when(with(types(&["*", "*"])))
        .then_rejects(WebhookError::RepeatedEventType("*".into()));
    let many = (1..=33).map(|n| EventTypePattern::parse(&format!("io.prism.a{n}.*")).unwrap());
    given::<Webhook>([])
        .when(with(many.collect()))
        .then_rejects(WebhookError::TooManyEventTypes { max: 32 });
}

#[test]
fn the_log_names_the_secret_never_holds_it() {
    let mut bad_name = secret(1);
    bad_name.key = "../escape".into();
    let command = |secret| WebhookCommand::Register {
        id: id(),
        workspace: workspace(),
        url: URL.into(),
        event_types: types(&["*"]),
        description: String::new(),
        secret,
    };
    given::<Webhook>([])
        .when(command(bad_name))
        .then_rejects(WebhookError::SecretName("../escape".into()));
    let mut bad_fingerprint = secret(1);
    bad_fingerprint.fingerprint = "whsec_not_a_digest".into();
    given::<Webhook>([])
        .when(command(bad_fingerprint))
        .then_rejects(WebhookError::SecretFingerprint);
    let state = given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::RotateSecret { secret: secret(2) })
        .then_expect([WebhookEvent::SecretRotated(WebhookSecretRotated {
            secret: secret(2),
            rotated_by: ctx().actor,
            rotated_at: ctx().now,
        })]);
    assert_eq!(state.secret, Some(secret(2)));
    // Rotating leaves the endpoint validated: its URL did not change.
    assert_eq!(state.status, WebhookStatus::Active);
}

#[test]
fn a_new_url_must_pass_the_handshake_again() {
    let other = "https://other.example.org/hook";
    let state = given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::Update {
            url: Some(other.into()),
            event_types: None,
            description: Some("runs to the ticketing system".into()),
        })
        .then_expect([WebhookEvent::Updated(WebhookUpdated {
            url: Some(other.into()),
            event_types: None,
            description: None,
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(state.status, WebhookStatus::PendingValidation);
    // A handshake that passed for the old URL validates nothing now.
    let moved = WebhookEvent::Updated(WebhookUpdated {
        url: Some(other.into()),
        event_types: None,
        description: None,
        updated_by: ctx().actor,
        updated_at: ctx().now,
    });
    given::<Webhook>([registered(), validated(), moved])
        .when(WebhookCommand::Validate { url: URL.into() })
        .then_rejects(WebhookError::StaleValidation {
            current: other.into(),
        });
    // Changing the event types keeps the endpoint validated.
    let state = given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::Update {
            url: None,
            event_types: Some(types(&["*"])),
            description: None,
        })
        .then_expect([WebhookEvent::Updated(WebhookUpdated {
            url: None,
            event_types: Some(types(&["*"])),
            description: None,
            updated_by: ctx().actor,
            updated_at: ctx().now,
        })]);
    assert_eq!(state.status, WebhookStatus::Active);
    given::<Webhook>([registered()])
        .when(WebhookCommand::Update {
            url: Some(URL.into()),
            event_types: None,
            description: None,
        })
        .then_expect([]);
}

#[test]
fn a_delivery_that_exhausts_its_attempts_is_recorded() {
    let failure = DeliveryFailure {
        delivery: uuid::Uuid::from_u128(9),
        event_id: "0193-event".into(),
        event_type: "io.prism.run.closed.v1".into(),
        attempts: 5,
        last_error: "503 Service Unavailable".into(),
    };
    let state = given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::RecordDeliveryFailure {
            failure: failure.clone(),
        })
        .then_expect([WebhookEvent::DeliveryFailed(WebhookDeliveryFailed {
            delivery: failure.delivery,
            event_id: failure.event_id.clone(),
            event_type: failure.event_type.clone(),
            attempts: 5,
            last_error: failure.last_error.clone(),
            failed_at: ctx().now,
        })]);
    assert_eq!(state.failed_deliveries, 1);
    given::<Webhook>([registered(), validated()])
        .when(WebhookCommand::RecordDeliveryFailure {
            failure: DeliveryFailure {
                attempts: 0,
                ..failure
            },
        })
        .then_rejects(WebhookError::DeliveryFailure);
}

#[test]
fn a_deleted_endpoint_takes_no_command() {
    for command in [
        WebhookCommand::Delete,
        WebhookCommand::Validate { url: URL.into() },
        WebhookCommand::RotateSecret { secret: secret(2) },
    ] {
        given::<Webhook>([registered(), validated(), deleted()])
            .when(command)
            .then_rejects(WebhookError::Deleted);
    }
}
