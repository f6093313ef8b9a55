//! Certificate signing requests: parsed, their signature verified (the requester holds the key), and
//! what they ask for read out, so that the authority signs what the profile allows and nothing the
//! request adds. What a CSR asks beyond its profile — to be a CA, an extended key usage the profile
//! does not grant, a critical extension the authority does not know — is refused, naming it.

use std::net::IpAddr;

use prism_domain::certificate::{Profile, Subject};
use prism_domain::values::Email;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use crate::CaError;

/// Largest CSR accepted (a 16384-bit RSA key and 32 names fit well within).
pub const CSR_MAX_BYTES: usize = 16 * 1024;

/// What a verified CSR asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrRequest {
    /// The subject's common name and the alternative names it requests.
    pub subject: Subject,
    /// The requester's public key (SubjectPublicKeyInfo, DER).
    pub public_key: Vec<u8>,
}

/// Reads a CSR (PEM `CERTIFICATE REQUEST`, or DER), verifies its signature, and checks that it asks for
/// nothing `profile` does not allow beyond names (those the profile checks when signing).
pub fn read_csr(input: &[u8], profile: Profile) -> Result<CsrRequest, CaError> {
    if input.len() > CSR_MAX_BYTES {
        return Err(CaError::Request(format!(
            "a CSR may have at most {CSR_MAX_BYTES} bytes"
        )));
    }
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(input)
            .map_err(|e| CaError::Request(format!("the CSR is not PEM: {e}")))?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CaError::Request(format!(
                "the PEM block is a `{}`, not a `CERTIFICATE REQUEST`",
                pem.label
            )));
        }
        pem.contents
    } else {
        input.to_vec()
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CaError::Request(format!("the CSR does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::Request("the CSR has trailing bytes".into()));
    }
    csr.verify_signature().map_err(|e| {
        CaError::Request(format!(
            "the CSR's signature does not verify with its own key: {e}"
        ))
    })?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .map(|cn| cn.as_str().map(str::to_owned))
        .transpose()
        .map_err(|e| CaError::Request(format!("the CSR's common name is not text: {e}")))?
        .unwrap_or_default();
    let mut subject = Subject {
        common_name,
        ..Default::default()
    };
    for attribute in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(requested) = attribute.parsed_attribute() else {
            continue;
        };
        for extension in &requested.extensions {
            match extension.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(names) => {
                    for name in &names.general_names {
                        add_name(&mut subject, name)?;
                    }
                }
                ParsedExtension::BasicConstraints(constraints) if constraints.ca => {
                    return Err(CaError::Request(
                        "the CSR asks to be a certificate authority".into(),
                    ));
                }
                ParsedExtension::ExtendedKeyUsage(usage) => {
                    let beyond = [
                        (usage.server_auth && !profile.server_auth(), "serverAuth"),
                        (usage.client_auth && !profile.client_auth(), "clientAuth"),
                        (usage.any, "anyExtendedKeyUsage"),
                        (usage.code_signing, "codeSigning"),
                        (usage.email_protection, "emailProtection"),
                        (usage.time_stamping, "timeStamping"),
                        (usage.ocsp_signing, "OCSPSigning"),
                        (
                            !usage.other.is_empty(),
                            "an extended key usage the authority does not grant",
                        ),
                    ];
                    if let Some((_, what)) = beyond.iter().find(|(asked, _)| *asked) {
                        return Err(CaError::Request(format!(
                            "the CSR asks for {what}, which the {profile} profile does not grant"
                        )));
                    }
                }
                // Key usage and basic constraints without `ca` are the profile's to set.
                ParsedExtension::KeyUsage(_) | ParsedExtension::BasicConstraints(_) => {}
                _ if extension.critical => {
                    return Err(CaError::Request(format!(
                        "the CSR asks for the critical extension {}, which the authority does not grant",
                        extension.oid
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(CsrRequest {
        subject,
        public_key: info.subject_pki.raw.to_vec(),
    })
}

fn add_name(subject: &mut Subject, name: &GeneralName<'_>) -> Result<(), CaError> {
    match name {
        GeneralName::DNSName(dns) => subject.dns_names.push((*dns).to_owned()),
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("four octets")),
                16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("sixteen octets")),
                n => {
                    return Err(CaError::Request(format!(
                        "an IP address of {n} octets in the CSR"
                    )));
                }
            };
            subject.ip_addresses.push(ip);
        }
        GeneralName::RFC822Name(email) => subject
            .emails
            .push(Email::parse(email).map_err(|e| CaError::Request(format!("in the CSR: {e}")))?),
        GeneralName::URI(uri) => subject.uris.push((*uri).to_owned()),
        other => {
            return Err(CaError::Request(format!(
                "the CSR asks for an alternative name the authority does not issue: {other:?}"
            )));
        }
    }
    Ok(())
}
