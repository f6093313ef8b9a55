use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::aggregate::{DomainEvent, Rejection, RejectionKind};
use crate::ids::{SessionId, UserId};
use crate::testing::{ctx, given};
use crate::values::ValueError;

fn now() -> DateTime<Utc> {
    ctx().now
}

fn token(tag: &str) -> SecretHash {
    SecretHash::of(tag.as_bytes())
}

fn start(expires_at: DateTime<Utc>, family_expires_at: DateTime<Utc>) -> SessionCommand {
    SessionCommand::Start {
        id: SessionId(uuid::Uuid::from_u128(3)),
        user: UserId(uuid::Uuid::from_u128(4)),
        method: SignInMethod::Password,
        refresh: token("t1"),
        expires_at,
        family_expires_at,
        credentials: 0,
    }
}

/// Started with token `t1` expiring at `expires_at`, in a family expiring at `family_expires_at`.
fn started_until(expires_at: DateTime<Utc>, family_expires_at: DateTime<Utc>) -> SessionEvent {
    SessionEvent::Started(SessionStarted {
        id: SessionId(uuid::Uuid::from_u128(3)),
        user: UserId(uuid::Uuid::from_u128(4)),
        method: SignInMethod::Password,
        refresh: token("t1"),
        expires_at,
        family_expires_at,
        credentials: 0,
        started_at: now(),
    })
}

fn started() -> SessionEvent {
    started_until(now() + Duration::days(1), now() + Duration::days(30))
}

fn rotated(spent: &str, next: &str, expires_at: DateTime<Utc>) -> SessionEvent {
    SessionEvent::Rotated(SessionRotated {
        spent: token(spent),
        next: token(next),
        expires_at,
        rotated_at: now(),
    })
}

fn refresh(presented: &str, next: &str) -> SessionCommand {
    SessionCommand::Refresh {
        presented: token(presented),
        next: token(next),
        expires_at: now() + Duration::days(1),
    }
}

fn revoked(reason: RevocationReason) -> SessionEvent {
    SessionEvent::Revoked(SessionRevoked {
        reason,
        revoked_by: ctx().actor,
        revoked_at: now(),
    })
}

#[test]
fn a_session_starts_with_the_first_token_of_its_family() {
    let state = given::<Session>([])
        .when(start(now() + Duration::days(1), now() + Duration::days(30)))
        .then_expect([started()]);
    assert_eq!(state.status, SessionStatus::Active);
    assert!(state.is_active(now()));
    assert_eq!(state.current.map(|t| t.hash), Some(token("t1")));
}

#[test]
fn a_token_never_outlives_its_family() {
    given::<Session>([])
        .when(start(now() + Duration::days(90), now() + Duration::days(30)))
        .then_expect([started_until(
            now() + Duration::days(30),
            now() + Duration::days(30),
        )]);
    given::<Session>([started_until(
        now() + Duration::days(1),
        now() + Duration::hours(2),
    )])
    .when(refresh("t1", "t2"))
    .then_expect([rotated("t1", "t2", now() + Duration::hours(2))]);
}

#[test]
fn a_session_must_expire_in_the_future() {
    given::<Session>([])
        .when(start(now(), now() + Duration::days(30)))
        .then_rejects(SessionError::ExpiresInThePast);
    given::<Session>([])
        .when(start(now() + Duration::days(1), now()))
        .then_rejects(SessionError::ExpiresInThePast);
    given::<Session>([started()])
        .when(SessionCommand::Refresh {
            presented: token("t1"),
            next: token("t2"),
            expires_at: now(),
        })
        .then_rejects(SessionError::ExpiresInThePast);
}

#[test]
fn an_openid_connect_session_names_its_issuer() {
    let with_method = |method: SignInMethod| SessionCommand::Start {
        id: SessionId(uuid::Uuid::from_u128(3)),
        user: UserId(uuid::Uuid::from_u128(4)),
        method,
        refresh: token("t1"),
        expires_at: now() + Duration::days(1),
        family_expires_at: now() + Duration::days(30),
        credentials: 0,
    };
    given::<Session>([])
        .when(with_method(SignInMethod::OpenIdConnect { issuer: " ".into() }))
        .then_rejects(ValueError::Empty { field: "issuer" }.into());
    let events = given::<Session>([])
        .when(with_method(SignInMethod::OpenIdConnect {
            issuer: "https://accounts.example.org".into(),
        }))
        .outcome()
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn a_session_starts_once() {
    given::<Session>([started()])
        .when(start(now() + Duration::days(1), now() + Duration::days(30)))
        .then_rejects(SessionError::AlreadyExists);
}

#[test]
fn an_unknown_session_is_not_found() {
    given::<Session>([])
        .when(refresh("t1", "t2"))
        .then_rejects(SessionError::NotFound);
    given::<Session>([])
        .when(SessionCommand::Revoke {
            reason: RevocationReason::SignedOut,
        })
        .then_rejects(SessionError::NotFound);
}

#[test]
fn a_refresh_spends_the_current_token_for_the_next() {
    let state = given::<Session>([started()])
        .when(refresh("t1", "t2"))
        .then_expect([rotated("t1", "t2", now() + Duration::days(1))]);
    assert_eq!(state.spent, vec![token("t1")]);
    let state = given::<Session>([started(), rotated("t1", "t2", now() + Duration::days(1))])
        .when(refresh("t2", "t3"))
        .then_expect([rotated("t2", "t3", now() + Duration::days(1))]);
    assert_eq!(state.spent, vec![token("t1"), token("t2")]);
    assert_eq!(Session::refresh_outcome(&[rotated("t2", "t3", now())]), Ok(()));
}

#[test]
fn reusing_a_spent_token_revokes_the_whole_family() {
    let history = [
        started(),
        rotated("t1", "t2", now() + Duration::days(1)),
        rotated("t2", "t3", now() + Duration::days(1)),
    ];
    let state = given::<Session>(history.clone())
        .when(refresh("t1", "t4"))
        .then_expect([
            SessionEvent::ReuseDetected(SessionReuseDetected {
                presented: token("t1"),
                detected_at: now(),
            }),
            revoked(RevocationReason::RefreshTokenReused),
        ]);
    assert_eq!(state.status, SessionStatus::Revoked);
    assert_eq!(state.revoked, Some(RevocationReason::RefreshTokenReused));
    assert!(!state.is_active(now()));
    // The legitimate holder of the current token is shut out too.
    let mut after = history.to_vec();
    after.extend([
        SessionEvent::ReuseDetected(SessionReuseDetected {
            presented: token("t1"),
            detected_at: now(),
        }),
        revoked(RevocationReason::RefreshTokenReused),
    ]);
    given::<Session>(after)
        .when(refresh("t3", "t4"))
        .then_rejects(SessionError::Ended);
}

#[test]
fn the_caller_presenting_a_reused_token_is_refused_after_the_revocation_is_recorded() {
    let events = given::<Session>([started(), rotated("t1", "t2", now() + Duration::days(1))])
        .when(refresh("t1", "t3"))
        .outcome()
        .unwrap();
    assert_eq!(
        Session::refresh_outcome(&events),
        Err(SessionError::RefreshTokenReused)
    );
    assert_eq!(SessionError::RefreshTokenReused.kind(), RejectionKind::Invalid);
}

#[test]
fn a_reuse_is_detected_even_after_the_family_expired() {
    let outcome = given::<Session>([
        started_until(now() - Duration::days(2), now() - Duration::days(1)),
        rotated("t1", "t2", now() - Duration::days(1)),
    ])
    .when(refresh("t1", "t3"))
    .outcome()
    .unwrap();
    assert_eq!(
        Session::refresh_outcome(&outcome),
        Err(SessionError::RefreshTokenReused)
    );
}

#[test]
fn an_ended_session_takes_no_refresh_not_even_a_reuse() {
    let history = [
        started(),
        rotated("t1", "t2", now() + Duration::days(1)),
        revoked(RevocationReason::SignedOut),
    ];
    for presented in ["t1", "t2", "unknown"] {
        given::<Session>(history.clone())
            .when(refresh(presented, "t3"))
            .then_rejects(SessionError::Ended);
    }
    assert_eq!(SessionError::Ended.to_string(), "the session has ended");
    assert_eq!(SessionError::Ended.kind(), RejectionKind::StateConflict);
}

#[test]
fn an_unknown_token_is_invalid() {
    given::<Session>([started()])
        .when(refresh("guess", "t2"))
        .then_rejects(SessionError::RefreshTokenInvalid);
    assert_eq!(
        SessionError::RefreshTokenInvalid.to_string(),
        "refresh token is invalid"
    );
}

#[test]
fn a_token_is_accepted_strictly_before_it_expires() {
    given::<Session>([started_until(now(), now() + Duration::days(30))])
        .when(refresh("t1", "t2"))
        .then_rejects(SessionError::RefreshTokenExpired);
    given::<Session>([started_until(
        now() + Duration::seconds(1),
        now() + Duration::days(30),
    )])
    .when(refresh("t1", "t2"))
    .then_expect([rotated("t1", "t2", now() + Duration::days(1))]);
    assert_eq!(
        SessionError::RefreshTokenExpired.to_string(),
        "refresh token has expired"
    );
}

#[test]
fn no_token_is_accepted_once_the_family_expired() {
    let mut family_ended = Session::from_events(&[started_until(now() - Duration::hours(1), now())]);
    // A current token that would still be valid does not outlive the family.
    family_ended.current = Some(RefreshToken {
        hash: token("t1"),
        expires_at: now() + Duration::hours(1),
    });
    assert_eq!(
        family_ended.decide(refresh("t1", "t2"), &ctx()),
        Err(SessionError::SessionExpired)
    );
    assert!(!family_ended.is_active(now()));
}

#[test]
fn the_next_token_must_be_new_to_the_family() {
    let history = [started(), rotated("t1", "t2", now() + Duration::days(1))];
    for next in ["t1", "t2"] {
        given::<Session>(history.clone())
            .when(refresh("t2", next))
            .then_rejects(SessionError::NextTokenNotFresh);
    }
}

#[test]
fn a_session_is_revoked_once() {
    let state = given::<Session>([started()])
        .when(SessionCommand::Revoke {
            reason: RevocationReason::SignedOut,
        })
        .then_expect([revoked(RevocationReason::SignedOut)]);
    assert!(!state.is_active(now()));
    given::<Session>([started(), revoked(RevocationReason::SignedOut)])
        .when(SessionCommand::Revoke {
            reason: RevocationReason::Administrator,
        })
        .then_expect([]);
}

#[test]
fn a_session_is_active_until_its_token_expires() {
    let state = Session::from_events(&[started()]);
    assert!(state.is_active(now() + Duration::days(1) - Duration::seconds(1)));
    assert!(!state.is_active(now() + Duration::days(1)));
    assert!(!Session::default().is_active(now()));
}

#[test]
fn events_are_adjacently_tagged_with_their_names_and_have_schemas() {
    let oidc = SessionEvent::Started(SessionStarted {
        method: SignInMethod::OpenIdConnect {
            issuer: "https://accounts.example.org".into(),
        },
        ..match started() {
            SessionEvent::Started(s) => s,
            _ => unreachable!(),
        }
    });
    for event in [
        oidc.clone(),
        rotated("t1", "t2", now()),
        revoked(RevocationReason::RefreshTokenReused),
    ] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], event.name());
        assert_eq!(serde_json::from_value::<SessionEvent>(json).unwrap(), event);
    }
    let json = serde_json::to_value(&oidc).unwrap();
    assert_eq!(
        json["data"]["method"],
        serde_json::json!({"kind": "openid_connect", "issuer": "https://accounts.example.org"})
    );
    let mut extra = json.clone();
    extra["data"]["method"]["audience"] = "x".into();
    assert!(serde_json::from_value::<SessionEvent>(extra).is_err());
    let names: Vec<_> = crate::schema::of::<Session>()
        .into_iter()
        .map(|s| s.event)
        .collect();
    assert_eq!(names, ["started", "rotated", "reuse_detected", "revoked"]);
}
