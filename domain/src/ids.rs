//! Newtype identifiers, so that one kind of id can never be passed where another is expected.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A workspace: the tenant boundary that owns computations.
    WorkspaceId
);
uuid_id!(
    /// A computation: one algorithm over several parties' datasets.
    ComputationId
);

uuid_id!(
    /// A user account. Derived from the normalised e-mail address ([`UserId::for_email`]), so that two
    /// registrations of one address meet at the same aggregate and the second is refused.
    UserId
);
uuid_id!(
    /// A sign-in session: one family of refresh tokens, each spent by the next.
    SessionId
);
uuid_id!(
    /// A personal API key.
    ApiKeyId
);
uuid_id!(
    /// An invitation to join a workspace.
    InvitationId
);
uuid_id!(
    /// A certificate lineage: one issued certificate and its renewals.
    CertificateId
);
uuid_id!(
    /// A confidential VM.
    CvmId
);
uuid_id!(
    /// One run of a computation.
    RunId
);
uuid_id!(
    /// An algorithm or dataset record of a workspace: what its file is (SHA3-256, name, type), never
    /// the file itself.
    AssetId
);
uuid_id!(
    /// A backend that runs CVMs (a Cocos manager, the local emulator, a bring-your-own machine).
    BackendId
);

uuid_id!(
    /// A webhook endpoint of a workspace: where the platform delivers the workspace's events.
    WebhookId
);

impl UserId {
    /// Namespace of the name-based (version 5) user ids; fixed forever, as ids derive from it.
    const NAMESPACE: Uuid = Uuid::from_u128(0x7d1c_9a4e_52b3_4f0e_9c61_0b8e_33a2_d5f7);

    /// The id of the account registered with `email` (compared case-insensitively).
    pub fn for_email(email: &crate::values::Email) -> Self {
        Self(Uuid::new_v5(&Self::NAMESPACE, email.as_str().as_bytes()))
    }
}

/// Who acts: a user, an API client or a platform service (`service:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Actor(pub String);

impl Actor {
    pub fn service(name: &str) -> Self {
        Self(format!("service:{name}"))
    }

    pub fn user(id: UserId) -> Self {
        Self(format!("user:{id}"))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant of a computation: a registered user, or an e-mail address named before its holder
/// has a verified account (a pending invitation: it grants nothing until it is linked to the user
/// once that address is verified; [`ParticipantId::person`] names that user). Written as the user id,
/// or as the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub enum ParticipantId {
    User(UserId),
    Invited(crate::values::Email),
}

impl ParticipantId {
    pub fn parse(value: impl Into<String>) -> Result<Self, crate::values::ValueError> {
        let value = value.into();
        // The hyphenated form only, so that what is written and what is read back look alike.
        if value.len() == 36
            && let Ok(id) = uuid::Uuid::try_parse(&value)
        {
            return Ok(Self::User(UserId(id)));
        }
        crate::values::Email::parse(&value)
            .map(Self::Invited)
            .map_err(|_| crate::values::ValueError::ParticipantId(value))
    }

    /// The user this participant is, once linked.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::Invited(_) => None,
        }
    }

    /// The user this participant is or will be: a user's id derives from their address, so an address
    /// and the id of its account name the same person.
    pub fn person(&self) -> UserId {
        match self {
            Self::User(id) => *id,
            Self::Invited(email) => UserId::for_email(email),
        }
    }
}

impl TryFrom<String> for ParticipantId {
    type Error = crate::values::ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ParticipantId> for String {
    fn from(id: ParticipantId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "{id}"),
            Self::Invited(email) => f.write_str(email.as_str()),
        }
    }
}
