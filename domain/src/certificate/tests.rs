use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::ids::{CertificateId, WorkspaceId};
use crate::testing::{ctx, given};
use crate::values::SecretHash;

fn now() -> DateTime<Utc> {
    ctx().now
}

fn cvm() -> Subject {
    Subject {
        common_name: "cvm-7".into(),
        ip_addresses: vec!["10.0.0.7".parse().unwrap()],
        ..Default::default()
    }
}

/// A certificate (self-signed: the domain reads facts, it does not verify signatures) for `subject`.
fn pem(
    subject: &Subject,
    serial: u8,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    ca: bool,
) -> String {
    let time = |t: DateTime<Utc>| time::OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject.common_name.as_str());
    params.subject_alt_names = subject
        .ip_addresses
        .iter()
        .map(|ip| rcgen::SanType::IpAddress(*ip))
        .chain(
            subject
                .dns_names
                .iter()
                .map(|d| rcgen::SanType::DnsName(d.as_str().try_into().unwrap())),
        )
        .collect();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x10, serial]));
    params.not_before = time(not_before);
    params.not_after = time(not_after);
    params.is_ca = if ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        rcgen::IsCa::ExplicitNoCa
    };
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// The week-long certificate `serial` for [`cvm`] from `start`: the same text each time it is asked
/// for (keys are random, and events are compared whole).
fn week_from(serial: u8, start: DateTime<Utc>) -> String {
    static MADE: std::sync::Mutex<Vec<((u8, i64), String)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap();
    let key = (serial, start.timestamp());
    if let Some((_, pem)) = made.iter().find(|(k, _)| *k == key) {
        return pem.clone();
    }
    let text = pem(
        &cvm(),
        serial,
        start - Duration::minutes(5),
        start + Duration::days(7),
        false,
    );
    made.push((key, text.clone()));
    text
}

fn issue(certificate: String) -> CertificateCommand {
    issue_for("cvm-7", certificate)
}

fn issue_for(entity: &str, certificate: String) -> CertificateCommand {
    CertificateCommand::Issue {
        id: CertificateId(uuid::Uuid::from_u128(1)),
        workspace: Some(WorkspaceId(uuid::Uuid::from_u128(2))),
        entity: Entity {
            kind: EntityKind::Cvm,
            id: entity.into(),
        },
        profile: Profile::AgentServer,
        subject: cvm(),
        certificate,
        key: KeyCustody::Authority {
            key_name: "cert.1".into(),
        },
    }
}

fn issued() -> CertificateEvent {
    let certificate = week_from(1, now());
    let facts = CertificateFacts::of_pem(&certificate).unwrap();
    CertificateEvent::Issued(CertificateIssued {
        id: CertificateId(uuid::Uuid::from_u128(1)),
        workspace: Some(WorkspaceId(uuid::Uuid::from_u128(2))),
        entity: Entity {
            kind: EntityKind::Cvm,
            id: "cvm-7".into(),
        },
        profile: Profile::AgentServer,
        subject: cvm(),
        issuance: Issuance {
            serial: facts.serial,
            not_before: facts.not_before,
            not_after: facts.not_after,
            certificate,
        },
        key: KeyCustody::Authority {
            key_name: "cert.1".into(),
        },
        issued_by: ctx().actor,
        issued_at: now(),
    })
}

fn serial(n: u8) -> Serial {
    Serial::from_bytes(&[0x10, n]).unwrap()
}

#[test]
fn a_certificate_is_recorded_when_it_is_what_the_command_and_profile_say() {
    let state = given::<Certificate>([])
        .when(issue(week_from(1, now())))
        .then_expect([issued()]);
    assert_eq!(state.status, CertificateStatus::Active);
    assert_eq!(state.current().unwrap().serial, serial(1));

    // Another subject than the command says, a CA, a lifetime beyond the profile, a start far off.
    let mut other = cvm();
    other.ip_addresses = vec!["10.0.0.8".parse().unwrap()];
    let cases = [
        pem(&other, 1, now(), now() + Duration::days(7), false),
        pem(&cvm(), 1, now(), now() + Duration::days(7), true),
        pem(&cvm(), 1, now(), now() + Duration::days(31), false),
        pem(
            &cvm(),
            1,
            now() - Duration::days(1),
            now() + Duration::days(7),
            false,
        ),
        "not a certificate".to_owned(),
    ];
    for certificate in cases {
        let rejection = given::<Certificate>([])
            .when(issue(certificate))
            .outcome()
            .unwrap_err();
        assert_eq!(
            crate::aggregate::Rejection::kind(&rejection),
            crate::aggregate::RejectionKind::Invalid,
            "{rejection}"
        );
    }
    given::<Certificate>([])
        .when(issue_for("cvm 7/..", week_from(1, now())))
        .then_rejects(CertificateError::EntityId("cvm 7/..".into()));
}

#[test]
fn a_renewal_adds_a_new_serial_and_keeps_the_earlier_one_valid() {
    let renewal = week_from(2, now());
    let state = given::<Certificate>([issued()])
        .when(CertificateCommand::Renew {
            certificate: renewal.clone(),
        })
        .then_expect([CertificateEvent::Renewed(CertificateRenewed {
            issuance: Issuance {
                serial: serial(2),
                not_before: now() - Duration::minutes(5),
                not_after: now() + Duration::days(7),
                certificate: renewal,
            },
            previous_serial: serial(1),
            renewed_by: ctx().actor,
            renewed_at: now(),
        })]);
    assert_eq!(state.unexpired(now()).count(), 2);
    assert_eq!(state.current().unwrap().serial, serial(2));
    // The same serial again is no renewal.
    given::<Certificate>([issued()])
        .when(CertificateCommand::Renew {
            certificate: week_from(1, now()),
        })
        .then_rejects(CertificateError::Mismatch(
            "a renewal has a new serial number".into(),
        ));
}

#[test]
fn revoking_revokes_every_unexpired_certificate_once_and_ends_renewals_and_downloads() {
    let renewed = {
        let given = given::<Certificate>([issued()]);
        given
            .when(CertificateCommand::Renew {
                certificate: week_from(2, now()),
            })
            .outcome()
            .unwrap()
            .remove(0)
    };
    let revoked = CertificateEvent::Revoked(CertificateRevoked {
        serials: vec![serial(1), serial(2)],
        reason: RevocationReason::KeyCompromise,
        revoked_by: ctx().actor,
        revoked_at: now(),
    });
    given::<Certificate>([issued(), renewed.clone()])
        .when(CertificateCommand::Revoke {
            reason: RevocationReason::KeyCompromise,
        })
        .then_expect([revoked.clone()]);
    let history = [issued(), renewed, revoked];
    given::<Certificate>(history.clone())
        .when(CertificateCommand::Revoke {
            reason: RevocationReason::Superseded,
        })
        .then_expect([]);
    given::<Certificate>(history.clone())
        .when(CertificateCommand::Renew {
            certificate: week_from(3, now()),
        })
        .then_rejects(CertificateError::Revoked);
    given::<Certificate>(history)
        .when(CertificateCommand::IssueDownloadToken {
            token: SecretHash::of(b"t"),
            expires_at: now() + Duration::minutes(5),
        })
        .then_rejects(CertificateError::Revoked);
    assert_eq!(RevocationReason::KeyCompromise.code(), 1);
    assert_eq!(RevocationReason::PrivilegeWithdrawn.code(), 9);
    for reason in RevocationReason::ALL {
        assert_eq!(RevocationReason::parse(reason.as_str()), Some(reason));
    }
}

#[test]
fn a_lineage_expires_only_after_its_newest_certificate() {
    given::<Certificate>([issued()])
        .when(CertificateCommand::Expire)
        .then_rejects(CertificateError::NotExpired);
    let later = now() + Duration::days(8);
    let expired = given::<Certificate>([issued()])
        .at(later)
        .when(CertificateCommand::Expire)
        .outcome()
        .unwrap();
    assert!(matches!(&expired[..], [CertificateEvent::Expired(e)] if e.serial == serial(1)));
}

#[test]
fn a_download_token_works_once_before_it_expires_and_only_for_an_authority_held_key() {
    let token = SecretHash::of(b"download");
    let handed = CertificateEvent::DownloadTokenIssued(CertificateDownloadTokenIssued {
        token: token.clone(),
        expires_at: now() + Duration::minutes(5),
        issued_by: ctx().actor,
        issued_at: now(),
    });
    given::<Certificate>([issued()])
        .when(CertificateCommand::IssueDownloadToken {
            token: token.clone(),
            expires_at: now() + Duration::minutes(5),
        })
        .then_expect([handed.clone()]);
    given::<Certificate>([issued()])
        .when(CertificateCommand::IssueDownloadToken {
            token: token.clone(),
            expires_at: now() + Duration::days(2),
        })
        .then_rejects(CertificateError::DownloadTokenLifetime);
    let downloaded = CertificateEvent::Downloaded(CertificateDownloaded {
        serial: serial(1),
        downloaded_by: ctx().actor,
        downloaded_at: now(),
    });
    given::<Certificate>([issued(), handed.clone()])
        .when(CertificateCommand::RedeemDownloadToken { token: token.clone() })
        .then_expect([downloaded.clone()]);
    for (history, presented) in [
        (vec![issued(), handed.clone(), downloaded], token.clone()),
        (vec![issued(), handed.clone()], SecretHash::of(b"guess")),
    ] {
        given::<Certificate>(history)
            .when(CertificateCommand::RedeemDownloadToken { token: presented })
            .then_rejects(CertificateError::InvalidDownloadToken);
    }
    given::<Certificate>([issued(), handed])
        .at(now() + Duration::minutes(6))
        .when(CertificateCommand::RedeemDownloadToken { token: token.clone() })
        .then_rejects(CertificateError::InvalidDownloadToken);

    // A certificate signed for a CSR: the platform never had its key.
    let CertificateEvent::Issued(mut held) = issued() else {
        unreachable!()
    };
    held.key = KeyCustody::Holder;
    given::<Certificate>([CertificateEvent::Issued(held)])
        .when(CertificateCommand::IssueDownloadToken {
            token,
            expires_at: now() + Duration::minutes(5),
        })
        .then_rejects(CertificateError::KeyNotHeld);
}
