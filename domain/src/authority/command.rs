use super::event::AuthorityKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityCommand {
    /// Records a new authority: its certificates (PEM) and where its keys are sealed.
    Establish {
        root: String,
        intermediate: String,
        responder: String,
        keys: AuthorityKeys,
    },
    /// A new OCSP responder certificate and the name of its sealed key.
    ReplaceResponder { responder: String, key: String },
}
