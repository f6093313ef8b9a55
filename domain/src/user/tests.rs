use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::aggregate::{DomainEvent, Rejection, RejectionKind};
use crate::ids::SessionId;
use crate::testing::{ctx, given};
use crate::values::{Email, PasswordHash, SecretHash, ValueError};

fn now() -> DateTime<Utc> {
    ctx().now
}

fn email() -> Email {
    Email::parse("ada@example.org").unwrap()
}

fn id() -> UserId {
    UserId::for_email(&email())
}

fn password(tag: &str) -> PasswordHash {
    PasswordHash::parse(&format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${tag}")).unwrap()
}

fn token(tag: &str) -> SecretHash {
    SecretHash::of(tag.as_bytes())
}

fn link(tag: &str, expires_at: DateTime<Utc>) -> PendingToken {
    PendingToken {
        hash: token(tag),
        expires_at,
    }
}

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 3,
        window: Duration::minutes(15),
        lockout: Duration::minutes(30),
    }
}

fn register() -> UserCommand {
    UserCommand::Register {
        id: id(),
        email: email(),
        display_name: "  Ada Lovelace ".into(),
        password: Some(password("first")),
        platform_admin: false,
        email_verified: false,
        verification: Some((token("verify"), now() + Duration::days(1))),
    }
}

/// Registered with a password and a verification link that expires at `expires_at`.
fn registered_until(expires_at: DateTime<Utc>) -> UserEvent {
    UserEvent::Registered(UserRegistered {
        id: id(),
        email: email(),
        display_name: "Ada Lovelace".into(),
        password: Some(password("first")),
        platform_admin: false,
        email_verified: false,
        verification: Some(link("verify", expires_at)),
        registered_by: ctx().actor,
        registered_at: now(),
    })
}

fn registered() -> UserEvent {
    registered_until(now() + Duration::days(1))
}

fn email_verified() -> UserEvent {
    UserEvent::EmailVerified(UserEmailVerified { verified_at: now() })
}

fn failed_at(at: DateTime<Utc>) -> UserEvent {
    failed(SignInFailure::WrongPassword, at)
}

fn failed(reason: SignInFailure, at: DateTime<Utc>) -> UserEvent {
    UserEvent::SignInFailed(UserSignInFailed {
        reason,
        source: Some("192.0.2.7".into()),
        failed_at: at,
    })
}

fn locked_until(until: DateTime<Utc>) -> UserEvent {
    UserEvent::LockedOut(UserLockedOut {
        until,
        locked_at: now(),
    })
}

fn signed_in() -> UserEvent {
    UserEvent::SignedIn(UserSignedIn {
        source: Some("192.0.2.7".into()),
        signed_in_at: now(),
    })
}

fn disabled() -> UserEvent {
    UserEvent::Disabled(UserDisabled {
        reason: None,
        disabled_by: ctx().actor,
        disabled_at: now(),
    })
}

fn reset_requested(expires_at: DateTime<Utc>) -> UserEvent {
    UserEvent::PasswordResetRequested(UserPasswordResetRequested {
        reset: link("reset", expires_at),
        requested_at: now(),
    })
}

fn sign_in(outcome: SignInOutcome) -> UserCommand {
    UserCommand::RecordSignIn {
        outcome,
        source: Some("192.0.2.7".into()),
        policy: policy(),
    }
}

fn wrong_password() -> UserCommand {
    sign_in(SignInOutcome::Failed {
        reason: SignInFailure::WrongPassword,
    })
}

fn disable() -> UserCommand {
    UserCommand::Disable {
        reason: None,
        sole_owner_of: vec![],
    }
}

fn every_command_but_register() -> Vec<UserCommand> {
    vec![
        UserCommand::VerifyEmail {
            token: token("verify"),
        },
        UserCommand::IssueEmailVerification {
            token: token("verify-2"),
            expires_at: now() + Duration::days(1),
        },
        sign_in(SignInOutcome::Succeeded),
        UserCommand::ChangePassword {
            new_password: password("second"),
            keep_session: None,
        },
        UserCommand::RequestPasswordReset {
            token: token("reset"),
            expires_at: now() + Duration::hours(1),
        },
        UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        },
        UserCommand::LinkIdentity {
            issuer: "https://accounts.example.org".into(),
            subject: "248289761001".into(),
        },
        disable(),
        UserCommand::Enable,
        UserCommand::GrantPlatformAdmin,
        UserCommand::RevokePlatformAdmin,
    ]
}

#[test]
fn a_user_registers_under_the_id_of_their_address_with_a_trimmed_name() {
    let state = given::<User>([]).when(register()).then_expect([registered()]);
    assert_eq!(state.status, UserStatus::Active);
    assert_eq!(state.email, Some(email()));
    assert_eq!(
        state.pending_verification,
        Some(link("verify", now() + Duration::days(1)))
    );
}

#[test]
fn the_id_must_derive_from_the_address() {
    let mut command = register();
    if let UserCommand::Register { id, .. } = &mut command {
        *id = UserId::for_email(&Email::parse("bob@example.org").unwrap());
    }
    given::<User>([])
        .when(command)
        .then_rejects(UserError::IdDoesNotMatchEmail);
}

#[test]
fn a_user_signing_in_only_through_openid_connect_has_no_password() {
    let command = UserCommand::Register {
        id: id(),
        email: email(),
        display_name: "Ada".into(),
        password: None,
        platform_admin: true,
        email_verified: true,
        verification: None,
    };
    let events = given::<User>([]).when(command).outcome().unwrap();
    let state = User::from_events(&events);
    assert_eq!(state.password, None);
    assert!(state.email_verified && state.platform_admin);
    assert_eq!(state.pending_verification, None);
}

#[test]
fn a_display_name_is_required_and_bounded() {
    for (name, error) in [
        (
            "  ".to_owned(),
            ValueError::Empty {
                field: "display name",
            },
        ),
        (
            "x".repeat(DISPLAY_NAME_MAX + 1),
            ValueError::TooLong {
                field: "display name",
                len: DISPLAY_NAME_MAX + 1,
                max: DISPLAY_NAME_MAX,
            },
        ),
    ] {
        let mut command = register();
        if let UserCommand::Register { display_name, .. } = &mut command {
            *display_name = name;
        }
        given::<User>([]).when(command).then_rejects(error.into());
    }
}

#[test]
fn an_address_is_registered_once() {
    given::<User>([registered()])
        .when(register())
        .then_rejects(UserError::AlreadyExists);
    assert_eq!(
        UserError::AlreadyExists.to_string(),
        "a user with this e-mail address is registered"
    );
    assert_eq!(UserError::AlreadyExists.kind(), RejectionKind::AlreadyExists);
}

#[test]
fn a_verification_link_must_be_needed_and_alive() {
    let mut verified = register();
    if let UserCommand::Register { email_verified, .. } = &mut verified {
        *email_verified = true;
    }
    given::<User>([])
        .when(verified)
        .then_rejects(UserError::VerifiedNeedsNoVerification);
    let mut void = register();
    if let UserCommand::Register { verification, .. } = &mut void {
        *verification = Some((token("verify"), now()));
    }
    given::<User>([])
        .when(void)
        .then_rejects(UserError::ExpiresInThePast);
}

#[test]
fn an_unknown_user_is_not_found_whatever_the_command() {
    for command in every_command_but_register() {
        given::<User>([]).when(command).then_rejects(UserError::NotFound);
    }
}

#[test]
fn a_verification_link_verifies_the_address_once() {
    let state = given::<User>([registered()])
        .when(UserCommand::VerifyEmail {
            token: token("verify"),
        })
        .then_expect([email_verified()]);
    assert!(state.email_verified);
    assert_eq!(state.pending_verification, None);
    // Following the link again (or any link) changes nothing.
    given::<User>([registered(), email_verified()])
        .when(UserCommand::VerifyEmail {
            token: token("verify"),
        })
        .then_expect([]);
}

#[test]
fn a_wrong_or_expired_verification_link_is_refused() {
    given::<User>([registered()])
        .when(UserCommand::VerifyEmail {
            token: token("guess"),
        })
        .then_rejects(UserError::InvalidVerification);
    // A link is accepted strictly before its expiry.
    given::<User>([registered_until(now())])
        .when(UserCommand::VerifyEmail {
            token: token("verify"),
        })
        .then_rejects(UserError::InvalidVerification);
    given::<User>([registered_until(now() + Duration::seconds(1))])
        .when(UserCommand::VerifyEmail {
            token: token("verify"),
        })
        .then_expect([email_verified()]);
    assert_eq!(
        UserError::InvalidVerification.to_string(),
        "the verification link is invalid or has expired"
    );
    assert_eq!(UserError::InvalidVerification.kind(), RejectionKind::Invalid);
}

#[test]
fn a_new_verification_link_replaces_the_pending_one() {
    let issued = UserEvent::EmailVerificationIssued(UserEmailVerificationIssued {
        verification: link("verify-2", now() + Duration::days(1)),
        issued_at: now(),
    });
    given::<User>([registered()])
        .when(UserCommand::IssueEmailVerification {
            token: token("verify-2"),
            expires_at: now() + Duration::days(1),
        })
        .then_expect([issued.clone()]);
    given::<User>([registered(), issued.clone()])
        .when(UserCommand::VerifyEmail {
            token: token("verify"),
        })
        .then_rejects(UserError::InvalidVerification);
    given::<User>([registered(), issued])
        .when(UserCommand::VerifyEmail {
            token: token("verify-2"),
        })
        .then_expect([email_verified()]);
}

#[test]
fn a_verified_address_gets_no_new_link_and_a_link_must_expire_later() {
    given::<User>([registered(), email_verified()])
        .when(UserCommand::IssueEmailVerification {
            token: token("verify-2"),
            expires_at: now() + Duration::days(1),
        })
        .then_rejects(UserError::AlreadyVerified);
    given::<User>([registered()])
        .when(UserCommand::IssueEmailVerification {
            token: token("verify-2"),
            expires_at: now(),
        })
        .then_rejects(UserError::ExpiresInThePast);
}

#[test]
fn a_sign_in_is_recorded_and_clears_earlier_failures() {
    let history = [
        registered(),
        failed_at(now() - Duration::minutes(2)),
        failed_at(now() - Duration::minutes(1)),
    ];
    let state = given::<User>(history.clone())
        .when(sign_in(SignInOutcome::Succeeded))
        .then_expect([signed_in()]);
    assert!(state.recent_failures.is_empty());
    // After the sign-in, two more failures do not lock the account.
    let mut after = history.to_vec();
    after.extend([signed_in(), failed_at(now() - Duration::seconds(30))]);
    given::<User>(after)
        .when(wrong_password())
        .then_expect([failed_at(now())]);
}

#[test]
fn wrong_passwords_reaching_the_limit_within_the_window_lock_the_account() {
    let state = given::<User>([
        registered(),
        failed_at(now() - Duration::minutes(10)),
        failed_at(now() - Duration::minutes(5)),
    ])
    .when(wrong_password())
    .then_expect([failed_at(now()), locked_until(now() + Duration::minutes(30))]);
    assert!(state.is_locked(now()));
    assert_eq!(state.can_sign_in(now()), Err(SignInFailure::Locked));
    assert!(state.recent_failures.is_empty());
}

#[test]
fn wrong_passwords_spread_beyond_the_window_do_not_lock() {
    given::<User>([
        registered(),
        failed_at(now() - Duration::minutes(40)),
        failed_at(now() - Duration::minutes(20)),
    ])
    .when(wrong_password())
    .then_expect([failed_at(now())]);
    // A failure exactly one window old has aged out; one a second younger still counts.
    given::<User>([
        registered(),
        failed_at(now() - Duration::minutes(15)),
        failed_at(now() - Duration::minutes(1)),
    ])
    .when(wrong_password())
    .then_expect([failed_at(now())]);
    given::<User>([
        registered(),
        failed_at(now() - Duration::minutes(15) + Duration::seconds(1)),
        failed_at(now() - Duration::minutes(1)),
    ])
    .when(wrong_password())
    .then_expect([failed_at(now()), locked_until(now() + Duration::minutes(30))]);
}

#[test]
fn a_locked_account_records_every_attempt_as_locked_without_extending_the_lockout() {
    let history = [registered(), locked_until(now() + Duration::minutes(1))];
    given::<User>(history.clone())
        .when(sign_in(SignInOutcome::Succeeded))
        .then_expect([failed(SignInFailure::Locked, now())]);
    let state = given::<User>(history)
        .when(wrong_password())
        .then_expect([failed(SignInFailure::Locked, now())]);
    assert!(
        state.recent_failures.is_empty(),
        "attempts while locked do not count"
    );
}

#[test]
fn a_lockout_ends_at_its_time() {
    let state = given::<User>([registered(), locked_until(now())])
        .when(sign_in(SignInOutcome::Succeeded))
        .then_expect([signed_in()]);
    assert_eq!(state.locked_until, None);
    let locked = User::from_events(&[registered(), locked_until(now())]);
    assert!(locked.is_locked(now() - Duration::seconds(1)));
    assert!(!locked.is_locked(now()));
    assert_eq!(locked.can_sign_in(now()), Ok(()));
}

#[test]
fn a_disabled_account_records_every_attempt_as_disabled() {
    let state = given::<User>([registered(), disabled()])
        .when(sign_in(SignInOutcome::Succeeded))
        .then_expect([failed(SignInFailure::Disabled, now())]);
    assert_eq!(state.can_sign_in(now()), Err(SignInFailure::Disabled));
    let history = [
        registered(),
        disabled(),
        failed_at(now() - Duration::minutes(2)),
        failed_at(now() - Duration::minutes(1)),
    ];
    given::<User>(history)
        .when(wrong_password())
        .then_expect([failed(SignInFailure::Disabled, now())]);
}

#[test]
fn the_outcome_of_a_sign_in_is_read_from_its_events() {
    assert_eq!(
        User::sign_in_outcome(&[signed_in()]),
        Some(SignInOutcome::Succeeded)
    );
    assert_eq!(
        User::sign_in_outcome(&[failed_at(now()), locked_until(now())]),
        Some(SignInOutcome::Failed {
            reason: SignInFailure::WrongPassword
        })
    );
    assert_eq!(User::sign_in_outcome(&[]), None);
    assert_eq!(
        User::default().can_sign_in(now()),
        Err(SignInFailure::WrongPassword)
    );
}

#[test]
fn a_sign_in_source_is_checked_text() {
    given::<User>([registered()])
        .when(UserCommand::RecordSignIn {
            outcome: SignInOutcome::Succeeded,
            source: Some("x".repeat(SOURCE_MAX + 1)),
            policy: policy(),
        })
        .then_rejects(
            ValueError::TooLong {
                field: "source",
                len: SOURCE_MAX + 1,
                max: SOURCE_MAX,
            }
            .into(),
        );
}

#[test]
fn a_lockout_policy_must_be_sane() {
    let bad = [
        LockoutPolicy {
            max_failures: 0,
            ..policy()
        },
        LockoutPolicy {
            max_failures: FAILURES_KEPT as u32 + 1,
            ..policy()
        },
        LockoutPolicy {
            window: Duration::zero(),
            ..policy()
        },
        LockoutPolicy {
            lockout: Duration::seconds(-1),
            ..policy()
        },
    ];
    for policy in bad {
        let outcome = given::<User>([registered()])
            .when(UserCommand::RecordSignIn {
                outcome: SignInOutcome::Succeeded,
                source: None,
                policy,
            })
            .outcome();
        assert!(
            matches!(outcome, Err(UserError::LockoutPolicy(_))),
            "{policy:?}: {outcome:?}"
        );
    }
}

#[test]
fn the_state_remembers_a_bounded_number_of_failures() {
    let mut history = vec![registered()];
    history.extend(
        (0..FAILURES_KEPT as i64 + 5).map(|i| failed_at(now() - Duration::days(30) + Duration::seconds(i))),
    );
    let state = User::from_events(&history);
    assert_eq!(state.recent_failures.len(), FAILURES_KEPT);
    assert_eq!(
        state.recent_failures[0],
        now() - Duration::days(30) + Duration::seconds(5)
    );
}

#[test]
fn a_password_change_voids_a_pending_reset_link() {
    let changed = UserEvent::PasswordChanged(UserPasswordChanged {
        password: password("second"),
        kept_session: None,
        changed_at: now(),
    });
    let state = given::<User>([registered(), reset_requested(now() + Duration::hours(1))])
        .when(UserCommand::ChangePassword {
            new_password: password("second"),
            keep_session: None,
        })
        .then_expect([changed.clone()]);
    assert_eq!(state.password, Some(password("second")));
    given::<User>([registered(), reset_requested(now() + Duration::hours(1)), changed])
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("third"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
}

#[test]
fn a_disabled_user_cannot_change_their_password() {
    given::<User>([registered(), disabled()])
        .when(UserCommand::ChangePassword {
            new_password: password("second"),
            keep_session: None,
        })
        .then_rejects(UserError::Disabled);
    assert_eq!(UserError::Disabled.to_string(), "the account is disabled");
    assert_eq!(UserError::Disabled.kind(), RejectionKind::StateConflict);
}

#[test]
fn a_reset_request_records_the_link_and_replaces_an_earlier_one() {
    let later = UserEvent::PasswordResetRequested(UserPasswordResetRequested {
        reset: link("reset-2", now() + Duration::hours(2)),
        requested_at: now(),
    });
    given::<User>([registered(), reset_requested(now() + Duration::hours(1))])
        .when(UserCommand::RequestPasswordReset {
            token: token("reset-2"),
            expires_at: now() + Duration::hours(2),
        })
        .then_expect([later.clone()]);
    given::<User>([registered(), reset_requested(now() + Duration::hours(1)), later])
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
    given::<User>([registered()])
        .when(UserCommand::RequestPasswordReset {
            token: token("reset"),
            expires_at: now() - Duration::seconds(1),
        })
        .then_rejects(UserError::ExpiresInThePast);
}

#[test]
fn a_reset_link_sets_a_new_password_once_and_lifts_a_lockout() {
    let history = [
        registered(),
        failed_at(now() - Duration::minutes(1)),
        locked_until(now() + Duration::minutes(29)),
        failed_at(now()),
        reset_requested(now() + Duration::seconds(1)),
    ];
    let reset = UserEvent::PasswordReset(UserPasswordReset {
        password: password("second"),
        reset_at: now(),
    });
    let state = given::<User>(history.clone())
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        })
        .then_expect([reset.clone()]);
    assert_eq!(state.password, Some(password("second")));
    assert_eq!(state.pending_reset, None);
    assert!(!state.is_locked(now()) && state.recent_failures.is_empty());
    let mut spent = history.to_vec();
    spent.push(reset);
    given::<User>(spent)
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("third"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
}

#[test]
fn a_wrong_or_expired_reset_link_is_refused() {
    given::<User>([registered(), reset_requested(now() + Duration::hours(1))])
        .when(UserCommand::ResetPassword {
            token: token("guess"),
            new_password: password("second"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
    given::<User>([registered(), reset_requested(now())])
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
    given::<User>([registered()])
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        })
        .then_rejects(UserError::InvalidPasswordReset);
    assert_eq!(UserError::InvalidPasswordReset.kind(), RejectionKind::Invalid);
}

#[test]
fn an_identity_is_linked_once() {
    let link = UserCommand::LinkIdentity {
        issuer: "https://accounts.example.org".into(),
        subject: "248289761001".into(),
    };
    let linked = UserEvent::IdentityLinked(UserIdentityLinked {
        identity: ExternalIdentity {
            issuer: "https://accounts.example.org".into(),
            subject: "248289761001".into(),
        },
        linked_at: now(),
    });
    let state = given::<User>([registered()])
        .when(link.clone())
        .then_expect([linked.clone()]);
    assert_eq!(state.identities.len(), 1);
    given::<User>([registered(), linked]).when(link).then_expect([]);
}

#[test]
fn an_identity_names_a_url_issuer_and_a_bounded_subject() {
    let link = |issuer: &str, subject: &str| UserCommand::LinkIdentity {
        issuer: issuer.into(),
        subject: subject.into(),
    };
    given::<User>([registered()])
        .when(link("accounts.example.org", "1"))
        .then_rejects(UserError::IssuerNotUrl("accounts.example.org".into()));
    given::<User>([registered()])
        .when(link(&format!("https://{}", "x".repeat(ISSUER_MAX)), "1"))
        .then_rejects(
            ValueError::TooLong {
                field: "issuer",
                len: ISSUER_MAX + 8,
                max: ISSUER_MAX,
            }
            .into(),
        );
    given::<User>([registered()])
        .when(link("https://accounts.example.org", ""))
        .then_rejects(ValueError::Empty { field: "subject" }.into());
    given::<User>([registered()])
        .when(link("https://accounts.example.org", &"1".repeat(SUBJECT_MAX + 1)))
        .then_rejects(
            ValueError::TooLong {
                field: "subject",
                len: SUBJECT_MAX + 1,
                max: SUBJECT_MAX,
            }
            .into(),
        );
}

#[test]
fn the_sole_owner_of_something_cannot_be_disabled() {
    let error = given::<User>([registered()])
        .when(UserCommand::Disable {
            reason: None,
            sole_owner_of: vec!["workspace Hospitals".into(), "computation Trial 7".into()],
        })
        .outcome()
        .unwrap_err();
    assert_eq!(
        error,
        UserError::SoleOwner(vec!["workspace Hospitals".into(), "computation Trial 7".into()])
    );
    assert_eq!(
        error.to_string(),
        "this user is the only owner of workspace Hospitals, computation Trial 7: transfer ownership first"
    );
    assert_eq!(error.kind(), RejectionKind::StateConflict);
}

#[test]
fn a_user_is_disabled_with_a_reason_and_enabled_again() {
    let with_reason = UserEvent::Disabled(UserDisabled {
        reason: Some("left the company".into()),
        disabled_by: ctx().actor,
        disabled_at: now(),
    });
    let state = given::<User>([registered(), reset_requested(now() + Duration::hours(1))])
        .when(UserCommand::Disable {
            reason: Some("left the company".into()),
            sole_owner_of: vec![],
        })
        .then_expect([with_reason]);
    assert_eq!(state.status, UserStatus::Disabled);
    assert_eq!(
        state.pending_reset, None,
        "a reset link does not survive disabling"
    );
    let state = given::<User>([registered(), disabled()])
        .by("service:admin")
        .when(UserCommand::Enable)
        .then_expect([UserEvent::Enabled(UserEnabled {
            enabled_by: crate::ids::Actor("service:admin".into()),
            enabled_at: now(),
        })]);
    assert_eq!(state.status, UserStatus::Active);
}

#[test]
fn disabling_and_enabling_need_the_other_state() {
    given::<User>([registered(), disabled()])
        .when(disable())
        .then_rejects(UserError::AlreadyDisabled);
    given::<User>([registered()])
        .when(UserCommand::Enable)
        .then_rejects(UserError::NotDisabled);
    assert_eq!(UserError::AlreadyDisabled.kind(), RejectionKind::StateConflict);
    assert_eq!(UserError::NotDisabled.kind(), RejectionKind::StateConflict);
}

#[test]
fn a_disabled_account_takes_only_enable_sign_in_records_and_admin_revocation() {
    let admin = UserEvent::PlatformAdminGranted(UserPlatformAdminGranted {
        granted_by: ctx().actor,
        granted_at: now(),
    });
    for command in every_command_but_register() {
        let outcome = given::<User>([registered(), admin.clone(), disabled()])
            .when(command.clone())
            .outcome();
        match command {
            UserCommand::Enable | UserCommand::RecordSignIn { .. } | UserCommand::RevokePlatformAdmin => {
                assert!(matches!(outcome.as_deref(), Ok([_])), "{command:?}: {outcome:?}");
            }
            UserCommand::Disable { .. } => assert_eq!(outcome, Err(UserError::AlreadyDisabled)),
            _ => assert_eq!(outcome, Err(UserError::Disabled), "{command:?}"),
        }
    }
}

#[test]
fn platform_administration_is_granted_and_revoked_when_it_changes_something() {
    let granted = UserEvent::PlatformAdminGranted(UserPlatformAdminGranted {
        granted_by: ctx().actor,
        granted_at: now(),
    });
    let revoked = UserEvent::PlatformAdminRevoked(UserPlatformAdminRevoked {
        revoked_by: ctx().actor,
        revoked_at: now(),
    });
    let state = given::<User>([registered()])
        .when(UserCommand::GrantPlatformAdmin)
        .then_expect([granted.clone()]);
    assert!(state.platform_admin);
    given::<User>([registered(), granted.clone()])
        .when(UserCommand::GrantPlatformAdmin)
        .then_expect([]);
    let state = given::<User>([registered(), granted.clone()])
        .when(UserCommand::RevokePlatformAdmin)
        .then_expect([revoked]);
    assert!(!state.platform_admin);
    given::<User>([registered()])
        .when(UserCommand::RevokePlatformAdmin)
        .then_expect([]);
}

#[test]
fn the_state_does_not_print_the_password_hash() {
    let state = User::from_events(&[registered()]);
    let printed = format!("{state:?}");
    assert!(!printed.contains("c2FsdA"), "{printed}");
}

#[test]
fn events_are_adjacently_tagged_with_their_names_and_have_schemas() {
    let events = [registered(), failed_at(now()), locked_until(now()), disabled()];
    for event in &events {
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json["event"], event.name());
        assert_eq!(serde_json::from_value::<UserEvent>(json).unwrap(), *event);
    }
    let json = serde_json::to_value(failed_at(now())).unwrap();
    assert_eq!(json["data"]["reason"], "wrong_password");
    let schemas = crate::schema::of::<User>();
    let names: Vec<_> = schemas.iter().map(|s| s.event.as_str()).collect();
    assert_eq!(names.len(), 14);
    assert!(names.contains(&"sign_in_failed") && names.contains(&"platform_admin_revoked"));
    assert_eq!(schemas[0].event_type, "io.prism.user.registered.v1");
}

/// A session of `user` begun under credential generation `credentials`.
fn session(tag: u128, credentials: u32) -> crate::session::Session {
    crate::session::Session {
        id: Some(SessionId(uuid::Uuid::from_u128(tag))),
        credentials,
        ..Default::default()
    }
}

#[test]
fn a_password_change_ends_every_session_but_the_one_it_was_made_from() {
    let (current, other) = (session(1, 0), session(2, 0));
    let given_registered = given::<User>([registered()]);
    let before = given_registered.state();
    assert!(before.admits(&current) && before.admits(&other));

    let state = given::<User>([registered()])
        .when(UserCommand::ChangePassword {
            new_password: password("second"),
            keep_session: current.id,
        })
        .then_expect([UserEvent::PasswordChanged(UserPasswordChanged {
            password: password("second"),
            kept_session: current.id,
            changed_at: now(),
        })]);
    assert!(
        state.admits(&current),
        "the session the change was made from stays"
    );
    assert!(!state.admits(&other), "every other session ends");
    assert!(state.admits(&session(3, 1)), "a sign-in after the change holds");

    // A second change from the new session ends the first one too.
    let again = given::<User>([
        registered(),
        UserEvent::PasswordChanged(UserPasswordChanged {
            password: password("second"),
            kept_session: current.id,
            changed_at: now(),
        }),
    ])
    .when(UserCommand::ChangePassword {
        new_password: password("third"),
        keep_session: Some(SessionId(uuid::Uuid::from_u128(3))),
    })
    .then_expect([UserEvent::PasswordChanged(UserPasswordChanged {
        password: password("third"),
        kept_session: Some(SessionId(uuid::Uuid::from_u128(3))),
        changed_at: now(),
    })]);
    assert!(!again.admits(&current));
    assert!(again.admits(&session(3, 1)));
}

#[test]
fn a_password_reset_ends_every_session() {
    let state = given::<User>([registered(), reset_requested(now() + Duration::hours(1))])
        .when(UserCommand::ResetPassword {
            token: token("reset"),
            new_password: password("second"),
        })
        .then_expect([UserEvent::PasswordReset(UserPasswordReset {
            password: password("second"),
            reset_at: now(),
        })]);
    assert!(!state.admits(&session(1, 0)));
    assert!(state.admits(&session(2, 1)));
}
