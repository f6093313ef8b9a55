//! Certificate profiles: what a certificate for each kind of entity may say. A profile fixes the key
//! usage, the extended key usage, which subject alternative names are required or allowed, and the
//! longest lifetime; every certificate the platform issues or signs from a CSR is checked against its
//! profile first, so a request asking for more than its profile allows is refused, naming the rule.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::Email;

/// Longest common name (X.520 `ub-common-name`).
pub const COMMON_NAME_MAX: usize = 64;
/// Most subject alternative names in one certificate.
pub const NAMES_MAX: usize = 32;
/// Longest DNS name (RFC 1035).
pub const DNS_NAME_MAX: usize = 253;
/// Longest URI name.
pub const URI_MAX: usize = 2048;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The kind of entity a certificate identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A CVM's agent as a TLS server: participants connect to it to send algorithm and data.
    AgentServer,
    /// A CVM's agent as a TLS client of the platform's agent channel.
    AgentClient,
    /// A control-plane service (the agent channel's server, a CVM manager, a provisioner): server and
    /// client of mutual TLS.
    Service,
    /// A participant (a user, their command-line tool) as a TLS client of an agent.
    Participant,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::AgentServer,
        Profile::AgentClient,
        Profile::Service,
        Profile::Participant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentServer => "agent_server",
            Self::AgentClient => "agent_client",
            Self::Service => "service",
            Self::Participant => "participant",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The longest lifetime a certificate of this profile may have.
    pub fn max_lifetime(self) -> Duration {
        match self {
            Self::AgentServer | Self::AgentClient | Self::Participant => 30 * DAY,
            Self::Service => 90 * DAY,
        }
    }

    /// The lifetime given when a request names none.
    pub fn default_lifetime(self) -> Duration {
        match self {
            Self::AgentServer | Self::AgentClient => 7 * DAY,
            Self::Service | Self::Participant => 30 * DAY,
        }
    }

    /// The certificate authenticates a TLS server (EKU `serverAuth`).
    pub fn server_auth(self) -> bool {
        matches!(self, Self::AgentServer | Self::Service)
    }

    /// The certificate authenticates a TLS client (EKU `clientAuth`).
    pub fn client_auth(self) -> bool {
        matches!(self, Self::AgentClient | Self::Service | Self::Participant)
    }

    /// Whether the names and lifetime of `subject` are what this profile allows.
    pub fn check(self, subject: &Subject, lifetime: Duration) -> Result<(), ProfileError> {
        let refuse = |rule: String| Err(ProfileError { profile: self, rule });
        let cn = &subject.common_name;
        if cn.is_empty() || cn.chars().count() > COMMON_NAME_MAX || cn.chars().any(char::is_control) {
            return refuse(format!(
                "the common name must have 1–{COMMON_NAME_MAX} characters and no control characters"
            ));
        }
        let names =
            subject.dns_names.len() + subject.ip_addresses.len() + subject.emails.len() + subject.uris.len();
        if names > NAMES_MAX {
            return refuse(format!("at most {NAMES_MAX} alternative names, not {names}"));
        }
        if let Some(bad) = subject.dns_names.iter().find(|n| !is_dns_name(n)) {
            return refuse(format!(
                "`{bad}` is not a DNS host name (letters, digits and hyphens in dot-separated labels; no wildcard)"
            ));
        }
        if let Some(bad) = subject.uris.iter().find(|u| !is_uri(u)) {
            return refuse(format!("`{bad}` is not an absolute URI"));
        }
        let hosts = subject.dns_names.len() + subject.ip_addresses.len();
        match self {
            Self::AgentServer | Self::Service => {
                if hosts == 0 {
                    return refuse(
                        "a server certificate needs at least one DNS name or IP address (the ones its clients dial)"
                            .into(),
                    );
                }
                if !subject.emails.is_empty() || !subject.uris.is_empty() {
                    return refuse("a server certificate names hosts only: no e-mail or URI names".into());
                }
            }
            Self::AgentClient => {
                if hosts > 0 || !subject.emails.is_empty() {
                    return refuse(
                        "an agent's client certificate names no host and no e-mail address".into(),
                    );
                }
            }
            Self::Participant => {
                if hosts > 0 {
                    return refuse("a participant's certificate names no DNS name or IP address".into());
                }
            }
        }
        if lifetime.is_zero() {
            return refuse("the lifetime must be positive".into());
        }
        if lifetime > self.max_lifetime() {
            return refuse(format!(
                "the lifetime may be at most {} days",
                self.max_lifetime().as_secs() / DAY.as_secs()
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a certificate names: its common name and subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub common_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
}

/// A request the profile does not allow; `rule` says which rule, in words meant for the requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {profile} profile does not allow this: {rule}")]
pub struct ProfileError {
    pub profile: Profile,
    pub rule: String,
}

/// A host name as RFC 1123 has it: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= DNS_NAME_MAX
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An absolute URI: a scheme (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`), a colon, and
/// printable ASCII without spaces.
fn is_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    uri.len() <= URI_MAX
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Subject {
        Subject {
            common_name: "cvm-1".into(),
            dns_names: vec![name.into()],
            ..Default::default()
        }
    }

    fn ip(address: &str) -> Subject {
        Subject {
            common_name: "cvm-1".into(),
            ip_addresses: vec![address.parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn server_profiles_need_a_host_and_name_nothing_else() {
        let week = 7 * DAY;
        assert_eq!(Profile::AgentServer.check(&ip("10.0.0.7"), week), Ok(()));
        assert_eq!(Profile::Service.check(&host("cvms.prism.internal"), week), Ok(()));
        let nameless = Subject {
            common_name: "cvm-1".into(),
            ..Default::default()
        };
        let refused = Profile::AgentServer.check(&nameless, week).unwrap_err();
        assert!(
            refused.rule.contains("at least one DNS name or IP address"),
            "{refused}"
        );
        let mut with_mail = ip("10.0.0.7");
        with_mail.emails.push(Email::parse("ada@example.org").unwrap());
        assert!(Profile::Service.check(&with_mail, week).is_err());
    }

    #[test]
    fn client_profiles_name_no_host() {
        let week = 7 * DAY;
        let agent = Subject {
            common_name: "cvm-1".into(),
            uris: vec!["urn:prism:cvm:1".into()],
            ..Default::default()
        };
        assert_eq!(Profile::AgentClient.check(&agent, week), Ok(()));
        assert!(Profile::AgentClient.check(&ip("10.0.0.7"), week).is_err());
        let person = Subject {
            common_name: "Ada".into(),
            emails: vec![Email::parse("ada@example.org").unwrap()],
            ..Default::default()
        };
        assert_eq!(Profile::Participant.check(&person, week), Ok(()));
        assert!(
            Profile::Participant
                .check(&host("ada.example.org"), week)
                .is_err()
        );
    }

    #[test]
    fn a_lifetime_beyond_the_profiles_is_refused_naming_the_limit() {
        let refused = Profile::AgentServer.check(&ip("10.0.0.7"), 31 * DAY).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the agent_server profile does not allow this: the lifetime may be at most 30 days"
        );
        assert_eq!(Profile::Service.check(&ip("10.0.0.7"), 90 * DAY), Ok(()));
        assert!(Profile::Service.check(&ip("10.0.0.7"), Duration::ZERO).is_err());
        for p in Profile::ALL {
            assert!(p.default_lifetime() <= p.max_lifetime());
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn names_are_checked() {
        let week = 7 * DAY;
        for good in ["cvm-1.prism.internal", "localhost", "a.b.c.", "x1"] {
            assert_eq!(Profile::AgentServer.check(&host(good), week), Ok(()), "{good}");
        }
        for bad in [
            "*.prism.internal",
            "-a.b",
            "a..b",
            "",
            "a_b",
            "é.example",
            &"a".repeat(64),
        ] {
            assert!(Profile::AgentServer.check(&host(bad), week).is_err(), "{bad:?}");
        }
        let mut many = ip("10.0.0.1");
        many.dns_names = (0..NAMES_MAX).map(|i| format!("h{i}")).collect();
        assert!(Profile::AgentServer.check(&many, week).is_err());
        let mut long_cn = ip("10.0.0.1");
        long_cn.common_name = "c".repeat(COMMON_NAME_MAX + 1);
        assert!(Profile::AgentServer.check(&long_cn, week).is_err());
        let bad_uri = Subject {
            common_name: "cvm-1".into(),
            uris: vec!["no scheme".into()],
            ..Default::default()
        };
        assert!(Profile::AgentClient.check(&bad_uri, week).is_err());
    }
}
