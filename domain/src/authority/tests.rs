use super::*;
use crate::testing::{ctx, given};

fn pem(ca: bool) -> String {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = if ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        rcgen::IsCa::ExplicitNoCa
    };
    params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
}

fn keys() -> AuthorityKeys {
    AuthorityKeys {
        root: "ca.1.root".into(),
        intermediate: "ca.1.intermediate".into(),
        responder: "ca.1.responder".into(),
    }
}

#[test]
fn an_authority_is_established_once_and_its_responder_replaced() {
    let (root, intermediate, responder) = (pem(true), pem(true), pem(false));
    let established = AuthorityEvent::Established(AuthorityEstablished {
        root: root.clone(),
        intermediate: intermediate.clone(),
        responder: responder.clone(),
        keys: keys(),
        established_at: ctx().now,
    });
    given::<Authority>([])
        .when(AuthorityCommand::Establish {
            root: root.clone(),
            intermediate: intermediate.clone(),
            responder: responder.clone(),
            keys: keys(),
        })
        .then_expect([established.clone()]);
    // The loser of the race to establish meets the winner's authority.
    given::<Authority>([established.clone()])
        .when(AuthorityCommand::Establish {
            root,
            intermediate,
            responder,
            keys: keys(),
        })
        .then_rejects(AuthorityError::AlreadyEstablished);
    let next = pem(false);
    let state = given::<Authority>([established])
        .when(AuthorityCommand::ReplaceResponder {
            responder: next.clone(),
            key: "ca.2.responder".into(),
        })
        .then_expect([AuthorityEvent::ResponderReplaced(ResponderReplaced {
            responder: next.clone(),
            key: "ca.2.responder".into(),
            replaced_at: ctx().now,
        })]);
    assert_eq!(state.responder, next);
    assert_eq!(state.keys.unwrap().responder, "ca.2.responder");
}

#[test]
fn certificates_must_be_what_their_place_says() {
    let wrong = given::<Authority>([])
        .when(AuthorityCommand::Establish {
            root: pem(false),
            intermediate: pem(true),
            responder: pem(false),
            keys: keys(),
        })
        .outcome()
        .unwrap_err();
    assert_eq!(
        wrong,
        AuthorityError::Unreadable("the root is not a CA certificate".into())
    );
    given::<Authority>([])
        .when(AuthorityCommand::ReplaceResponder {
            responder: pem(false),
            key: "k".into(),
        })
        .then_rejects(AuthorityError::NotEstablished);
}
