//! The platform's certificate authority as the log knows it: established once (its root, issuing
//! intermediate and OCSP responder certificates, and the names under which their keys are sealed in
//! the key store — never the keys), and its OCSP responder replaced before it expires. There is one,
//! with the id [`AUTHORITY_ID`]: processes that start together race to establish it, and the log's
//! optimistic concurrency lets exactly one win; the others load the winner's.

mod command;
mod error;
mod event;
mod state;

pub use command::AuthorityCommand;
pub use error::AuthorityError;
pub use event::{AuthorityEstablished, AuthorityEvent, AuthorityKeys, ResponderReplaced};
pub use state::{Authority, AuthorityStatus};

use crate::aggregate::{Aggregate, CommandContext};
use crate::certificate::CertificateFacts;

/// The id of the platform's one authority.
pub const AUTHORITY_ID: &str = "platform";

/// The certificate in `pem` is readable and, when `ca`, a CA.
fn readable(what: &str, pem: &str, ca: bool) -> Result<(), AuthorityError> {
    let facts =
        CertificateFacts::of_pem(pem).map_err(|e| AuthorityError::Unreadable(format!("{what}: {e}")))?;
    if facts.is_ca != ca {
        return Err(AuthorityError::Unreadable(format!(
            "{what} {} a CA certificate",
            if ca { "is not" } else { "is" }
        )));
    }
    Ok(())
}

impl Aggregate for Authority {
    const TYPE: &'static str = "certificate_authority";
    type Command = AuthorityCommand;
    type Event = AuthorityEvent;
    type Error = AuthorityError;

    fn decide(
        &self,
        command: AuthorityCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<AuthorityEvent>, AuthorityError> {
        use AuthorityCommand as C;
        use AuthorityStatus as S;
        match (self.status, command) {
            (
                S::New,
                C::Establish {
                    root,
                    intermediate,
                    responder,
                    keys,
                },
            ) => {
                readable("the root", &root, true)?;
                readable("the intermediate", &intermediate, true)?;
                readable("the responder", &responder, false)?;
                Ok(vec![AuthorityEvent::Established(AuthorityEstablished {
                    root,
                    intermediate,
                    responder,
                    keys,
                    established_at: ctx.now,
                })])
            }
            (S::New, C::ReplaceResponder { .. }) => Err(AuthorityError::NotEstablished),
            (S::Established, C::Establish { .. }) => Err(AuthorityError::AlreadyEstablished),
            (S::Established, C::ReplaceResponder { responder, key }) => {
                readable("the responder", &responder, false)?;
                Ok(vec![AuthorityEvent::ResponderReplaced(ResponderReplaced {
                    responder,
                    key,
                    replaced_at: ctx.now,
                })])
            }
        }
    }

    fn apply(&mut self, event: &AuthorityEvent) {
        match event {
            AuthorityEvent::Established(e) => {
                self.status = AuthorityStatus::Established;
                self.root = e.root.clone();
                self.intermediate = e.intermediate.clone();
                self.responder = e.responder.clone();
                self.keys = Some(e.keys.clone());
            }
            AuthorityEvent::ResponderReplaced(e) => {
                self.responder = e.responder.clone();
                if let Some(keys) = &mut self.keys {
                    keys.responder = e.key.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
