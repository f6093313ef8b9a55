//! What a certificate says, read from its PEM: the domain checks that a certificate it records is the
//! one the command describes (serial, validity, names), so the log never pairs a certificate with
//! facts it does not carry.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use super::Serial;
use super::profile::Subject;
use crate::values::Email;

/// Facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub serial: Serial,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub subject: Subject,
    /// The certificate can sign certificates (basic constraints `cA`).
    pub is_ca: bool,
}

/// Why a certificate's text was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the certificate is unreadable: {0}")]
pub struct FactsError(pub String);

impl CertificateFacts {
    /// The facts of the one certificate in `pem`.
    pub fn of_pem(pem: &str) -> Result<Self, FactsError> {
        let bad = |e: &dyn std::fmt::Display| FactsError(e.to_string());
        let (rest, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(&e))?;
        if block.label != "CERTIFICATE" {
            return Err(FactsError(format!(
                "a `{}` block, not a CERTIFICATE",
                block.label
            )));
        }
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return Err(FactsError("more than one PEM block".into()));
        }
        let (rest, certificate) =
            x509_parser::certificate::X509Certificate::from_der(&block.contents).map_err(|e| bad(&e))?;
        if !rest.is_empty() {
            return Err(FactsError("trailing bytes after the certificate".into()));
        }
        let time = |t: x509_parser::time::ASN1Time| {
            DateTime::from_timestamp(t.timestamp(), 0).ok_or_else(|| FactsError("a date out of range".into()))
        };
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut subject = Subject {
            common_name,
            ..Default::default()
        };
        if let Ok(Some(names)) = certificate.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => subject.dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => subject
                            .ip_addresses
                            .push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("four octets"))),
                        16 => subject.ip_addresses.push(IpAddr::from(
                            <[u8; 16]>::try_from(*bytes).expect("sixteen octets"),
                        )),
                        _ => return Err(FactsError("an IP address of odd length".into())),
                    },
                    GeneralName::RFC822Name(email) => {
                        subject.emails.push(Email::parse(email).map_err(|e| bad(&e))?)
                    }
                    GeneralName::URI(uri) => subject.uris.push((*uri).to_owned()),
                    _ => {
                        return Err(FactsError(
                            "an alternative name of a kind the platform does not issue".into(),
                        ));
                    }
                }
            }
        }
        let is_ca = certificate
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|c| c.value.ca);
        Ok(Self {
            serial: Serial::from_bytes(certificate.raw_serial()).map_err(|e| bad(&e))?,
            not_before: time(certificate.validity().not_before)?,
            not_after: time(certificate.validity().not_after)?,
            subject,
            is_ca,
        })
    }
}
