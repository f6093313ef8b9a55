use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::access::Permission;
use crate::aggregate::{DomainEvent, Rejection, RejectionKind};
use crate::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::testing::{ctx, given};
use crate::values::{SecretHash, ValueError};

fn now() -> DateTime<Utc> {
    ctx().now
}

fn secret() -> SecretHash {
    SecretHash::of(b"prism_key_secret")
}

fn permissions() -> BTreeSet<Permission> {
    [Permission::ComputationRead, Permission::ComputationRun].into()
}

fn create(expires_at: Option<DateTime<Utc>>) -> ApiKeyCommand {
    ApiKeyCommand::Create {
        id: ApiKeyId(uuid::Uuid::from_u128(5)),
        owner: UserId(uuid::Uuid::from_u128(4)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(7)),
        name: " CI pipeline ".into(),
        permissions: permissions(),
        secret: secret(),
        expires_at,
    }
}

fn with(change: impl FnOnce(&mut String, &mut BTreeSet<Permission>)) -> ApiKeyCommand {
    let mut command = create(None);
    if let ApiKeyCommand::Create {
        name, permissions, ..
    } = &mut command
    {
        change(name, permissions);
    }
    command
}

fn created_until(expires_at: DateTime<Utc>) -> ApiKeyEvent {
    ApiKeyEvent::Created(ApiKeyCreated {
        id: ApiKeyId(uuid::Uuid::from_u128(5)),
        owner: UserId(uuid::Uuid::from_u128(4)),
        workspace: WorkspaceId(uuid::Uuid::from_u128(7)),
        name: "CI pipeline".into(),
        permissions: permissions(),
        secret: secret(),
        expires_at,
        created_by: ctx().actor,
        created_at: now(),
    })
}

fn created() -> ApiKeyEvent {
    created_until(now() + Duration::days(90))
}

fn revoked(reason: Option<&str>) -> ApiKeyEvent {
    ApiKeyEvent::Revoked(ApiKeyRevoked {
        reason: reason.map(str::to_owned),
        revoked_by: ctx().actor,
        revoked_at: now(),
    })
}

fn revoke(reason: Option<&str>) -> ApiKeyCommand {
    ApiKeyCommand::Revoke {
        reason: reason.map(str::to_owned),
    }
}

#[test]
fn a_key_is_created_with_its_permissions_and_the_hash_of_its_secret() {
    let state = given::<ApiKey>([])
        .when(create(Some(now() + Duration::days(90))))
        .then_expect([created()]);
    assert_eq!(state.status, ApiKeyStatus::Active);
    assert_eq!(state.permissions, permissions());
    assert_eq!(state.secret, Some(secret()));
}

#[test]
fn a_key_created_without_an_expiry_lives_as_long_as_allowed() {
    given::<ApiKey>([])
        .when(create(None))
        .then_expect([created_until(now() + Duration::days(365))]);
}

#[test]
fn a_key_lives_at_most_a_year() {
    given::<ApiKey>([])
        .when(create(Some(now() + MAX_LIFETIME)))
        .then_expect([created_until(now() + MAX_LIFETIME)]);
    let too_long = ApiKeyError::LifetimeTooLong { max_days: 365 };
    given::<ApiKey>([])
        .when(create(Some(now() + MAX_LIFETIME + Duration::seconds(1))))
        .then_rejects(too_long.clone());
    assert_eq!(too_long.to_string(), "an API key may live at most 365 days");
    assert_eq!(too_long.kind(), RejectionKind::Invalid);
}

#[test]
fn a_key_must_expire_in_the_future() {
    given::<ApiKey>([])
        .when(create(Some(now())))
        .then_rejects(ApiKeyError::ExpiresInThePast);
    given::<ApiKey>([])
        .when(create(Some(now() + Duration::seconds(1))))
        .then_expect([created_until(now() + Duration::seconds(1))]);
}

#[test]
fn a_key_needs_a_bounded_name() {
    given::<ApiKey>([])
        .when(with(|name, _| *name = "  ".into()))
        .then_rejects(ValueError::Empty { field: "name" }.into());
    given::<ApiKey>([])
        .when(with(|name, _| *name = "k".repeat(NAME_MAX + 1)))
        .then_rejects(
            ValueError::TooLong {
                field: "name",
                len: NAME_MAX + 1,
                max: NAME_MAX,
            }
            .into(),
        );
}

#[test]
fn a_key_needs_a_permission() {
    given::<ApiKey>([])
        .when(with(|_, permissions| permissions.clear()))
        .then_rejects(ApiKeyError::NoPermissions);
}

#[test]
fn a_key_cannot_carry_a_platform_permission() {
    let error = given::<ApiKey>([])
        .when(with(|_, permissions| {
            permissions.insert(Permission::WorkspaceCreate);
        }))
        .outcome()
        .unwrap_err();
    assert_eq!(
        error,
        ApiKeyError::PlatformPermission(Permission::WorkspaceCreate)
    );
    assert_eq!(
        error.to_string(),
        "`workspace.create` is a platform permission: an API key acts in one workspace and cannot carry it"
    );
    given::<ApiKey>([])
        .when(with(|_, permissions| {
            permissions.insert(Permission::PlatformOperate);
        }))
        .then_rejects(ApiKeyError::PlatformPermission(Permission::PlatformOperate));
}

#[test]
fn a_key_is_created_once() {
    given::<ApiKey>([created()])
        .when(create(None))
        .then_rejects(ApiKeyError::AlreadyExists);
    given::<ApiKey>([created(), revoked(None)])
        .when(create(None))
        .then_rejects(ApiKeyError::AlreadyExists);
}

#[test]
fn an_unknown_key_is_not_found() {
    given::<ApiKey>([])
        .when(revoke(None))
        .then_rejects(ApiKeyError::NotFound);
}

#[test]
fn a_key_is_revoked_once() {
    let state = given::<ApiKey>([created()])
        .when(revoke(Some("leaked in a log")))
        .then_expect([revoked(Some("leaked in a log"))]);
    assert_eq!(state.status, ApiKeyStatus::Revoked);
    given::<ApiKey>([created(), revoked(None)])
        .when(revoke(Some("again")))
        .then_expect([]);
    given::<ApiKey>([created()])
        .when(revoke(Some("bad\u{7}reason")))
        .then_rejects(
            ValueError::ControlCharacter {
                field: "reason",
                code: 7,
            }
            .into(),
        );
}

#[test]
fn a_key_authenticates_its_secret_until_it_expires_or_is_revoked() {
    let key = ApiKey::from_events(&[created_until(now() + Duration::seconds(1))]);
    assert_eq!(key.authenticates(&secret(), now()), Ok(()));
    assert_eq!(
        key.authenticates(&secret(), now() + Duration::seconds(1)),
        Err(ApiKeyRejection::Expired)
    );
    assert_eq!(
        key.authenticates(&SecretHash::of(b"guess"), now()),
        Err(ApiKeyRejection::WrongSecret)
    );
    let revoked = ApiKey::from_events(&[created(), revoked(None)]);
    assert_eq!(
        revoked.authenticates(&secret(), now()),
        Err(ApiKeyRejection::Revoked)
    );
}

#[test]
fn only_the_holder_of_the_secret_learns_why_a_key_is_refused() {
    let guess = SecretHash::of(b"guess");
    let revoked = ApiKey::from_events(&[created(), revoked(None)]);
    assert_eq!(
        revoked.authenticates(&guess, now()),
        Err(ApiKeyRejection::WrongSecret)
    );
    let expired = ApiKey::from_events(&[created_until(now())]);
    assert_eq!(
        expired.authenticates(&guess, now()),
        Err(ApiKeyRejection::WrongSecret)
    );
    assert_eq!(
        ApiKey::default().authenticates(&secret(), now()),
        Err(ApiKeyRejection::WrongSecret)
    );
}

#[test]
fn events_are_adjacently_tagged_with_their_names_and_have_schemas() {
    for event in [created(), revoked(Some("rotated"))] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], event.name());
        assert_eq!(serde_json::from_value::<ApiKeyEvent>(json).unwrap(), event);
    }
    let json = serde_json::to_value(created()).unwrap();
    assert_eq!(
        json["data"]["permissions"],
        serde_json::json!(["computation.read", "computation.run"])
    );
    let schemas = crate::schema::of::<ApiKey>();
    let names: Vec<_> = schemas.iter().map(|s| s.event.as_str()).collect();
    assert_eq!(names, ["created", "revoked"]);
    assert_eq!(schemas[0].event_type, "io.prism.api_key.created.v1");
}
