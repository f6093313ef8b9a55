//! The authority itself: a root, an issuing intermediate and a delegated OCSP responder, created once
//! and loaded from their certificates and (unsealed) keys afterwards; certificates issued by profile
//! for generated keys or for the public key of a verified CSR; CRLs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prism_domain::certificate::{Profile, Serial, Subject};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData, RevokedCertParams, SanType, SerialNumber, SigningKey,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::ocsp::IssuerIds;
use crate::{CaError, aia};

/// The root's lifetime; it signs only the intermediate (and that one's replacements).
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The issuing intermediate's lifetime.
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// The OCSP responder's certificate: short, and replaced well before it ends.
pub const RESPONDER_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// A responder certificate closer than this to its end is replaced.
pub const RESPONDER_RENEW_BEFORE: Duration = Duration::from_secs(10 * 24 * 3600);
/// Certificates start this much before they are made, for clocks that lag.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Octets of a random serial number (RFC 5280 allows 20; CA/B Forum asks for ≥ 64 random bits).
const SERIAL_OCTETS: usize = 16;

/// The public addresses every issued certificate names: where its CRL, its OCSP responder and its
/// issuer's certificate are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaUrls {
    pub crl: String,
    pub ocsp: String,
    pub issuer: String,
}

impl CaUrls {
    /// The addresses under the platform's public URL (`https://prism.example.org`).
    pub fn under(public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        Self {
            crl: format!("{base}/certs/crl"),
            ocsp: format!("{base}/certs/ocsp"),
            issuer: format!("{base}/certs/ca/issuer.der"),
        }
    }
}

/// What an authority is made of, to be stored: certificates (public) and keys (PKCS#8, to be sealed).
#[derive(Clone)]
pub struct AuthorityMaterial {
    pub root: Vec<u8>,
    pub root_key: Zeroizing<Vec<u8>>,
    pub intermediate: Vec<u8>,
    pub intermediate_key: Zeroizing<Vec<u8>>,
    pub responder: Vec<u8>,
    pub responder_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for AuthorityMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityMaterial").finish_non_exhaustive()
    }
}

/// Where an issued certificate's key comes from.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// The authority makes a P-256 key and hands it back once, with the certificate.
    Generate,
    /// The holder keeps its key: the certificate is for this SubjectPublicKeyInfo (DER), taken from a
    /// verified CSR.
    PublicKey(&'a [u8]),
}

/// A certificate just issued.
#[derive(Clone)]
pub struct Issued {
    pub serial: Serial,
    pub der: Vec<u8>,
    pub pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// PKCS#8 PEM of a key the authority generated; `None` for a CSR.
    pub private_key_pem: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// One revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Serial,
    pub revoked_at: DateTime<Utc>,
    /// RFC 5280 `CRLReason` code (0–10 but 7).
    pub reason: Option<u8>,
}

/// A signed CRL in both encodings.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
}

/// The platform's certificate authority, ready to sign.
pub struct Authority {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    pub(crate) responder: Vec<u8>,
    pub(crate) responder_key: KeyPair,
    pub(crate) ids: IssuerIds,
    urls: CaUrls,
    random: SystemRandom,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

fn time(at: DateTime<Utc>) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(at.timestamp()).map_err(|e| CaError::Internal(e.to_string()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Prism");
    name.push(DnType::CommonName, common_name);
    name
}

fn ca_params(
    common_name: &str,
    path_length: u8,
    now: DateTime<Utc>,
    lifetime: Duration,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_length));
    // No extended key usage on a CA: verifiers check it along the whole path, and a CA that lists some
    // would narrow every certificate under it.
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = time(now - BACKDATE)?;
    params.not_after = time(now + lifetime)?;
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

fn key_pair(pkcs8: &[u8]) -> Result<KeyPair, CaError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.to_vec());
    KeyPair::try_from(&der).map_err(|e| CaError::Material(format!("a key does not load: {e}")))
}

impl Authority {
    /// A new authority: a P-384 root, a P-256 intermediate under it, and an OCSP responder under that.
    pub fn create(urls: CaUrls, now: DateTime<Utc>) -> Result<(Self, AuthorityMaterial), CaError> {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let root_params = ca_params("Prism Root CA", 1, now, ROOT_LIFETIME)?;
        let root = root_params.self_signed(&root_key)?;
        let root_issuer = Issuer::new(root_params, &root_key);

        let intermediate_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut intermediate_params = ca_params("Prism Issuing CA", 0, now, INTERMEDIATE_LIFETIME)?;
        intermediate_params.use_authority_key_identifier_extension = true;
        intermediate_params.serial_number = Some(random_serial(&SystemRandom::new())?.1);
        let intermediate = intermediate_params.signed_by(&intermediate_key, &root_issuer)?;

        let mut material = AuthorityMaterial {
            root: root.der().to_vec(),
            root_key: Zeroizing::new(root_key.serialize_der()),
            intermediate: intermediate.der().to_vec(),
            intermediate_key: Zeroizing::new(intermediate_key.serialize_der()),
            responder: Vec::new(),
            responder_key: Zeroizing::new(Vec::new()),
        };
        let issuer = Issuer::from_ca_cert_der(
            &CertificateDer::from(material.intermediate.clone()),
            intermediate_key,
        )?;
        let (responder, responder_key) = make_responder(&issuer, now)?;
        material.responder = responder;
        material.responder_key = Zeroizing::new(responder_key.serialize_der());
        let authority = Self::load(&material, urls)?;
        Ok((authority, material))
    }

    /// The authority `material` describes.
    pub fn load(material: &AuthorityMaterial, urls: CaUrls) -> Result<Self, CaError> {
        let issuer = Issuer::from_ca_cert_der(
            &CertificateDer::from(material.intermediate.clone()),
            key_pair(&material.intermediate_key)?,
        )?;
        let ids = IssuerIds::of(&material.intermediate)?;
        Ok(Self {
            root: material.root.clone(),
            intermediate: material.intermediate.clone(),
            issuer,
            responder: material.responder.clone(),
            responder_key: key_pair(&material.responder_key)?,
            ids,
            urls,
            random: SystemRandom::new(),
        })
    }

    /// Whether the OCSP responder's certificate is close enough to its end to be replaced at `now`.
    pub fn responder_due(&self, now: DateTime<Utc>) -> Result<bool, CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.responder)
            .map_err(|e| CaError::Material(format!("the responder certificate does not parse: {e}")))?;
        let end = cert.validity().not_after.timestamp();
        Ok(end - now.timestamp() < RESPONDER_RENEW_BEFORE.as_secs() as i64)
    }

    /// A new OCSP responder certificate and key (DER, PKCS#8); the caller stores them and loads again.
    pub fn new_responder(&self, now: DateTime<Utc>) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), CaError> {
        let (cert, key) = make_responder(&self.issuer, now)?;
        Ok((cert, Zeroizing::new(key.serialize_der())))
    }

    /// The root certificate (DER): what relying parties trust.
    pub fn root_der(&self) -> &[u8] {
        &self.root
    }

    /// The issuing intermediate's certificate (DER).
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate
    }

    /// The chain above every issued certificate, as PEM: the intermediate, then the root.
    pub fn chain_pem(&self) -> String {
        pem("CERTIFICATE", &self.intermediate) + &pem("CERTIFICATE", &self.root)
    }

    /// The OCSP responder's certificate, as PEM.
    pub fn responder_pem(&self) -> String {
        pem("CERTIFICATE", &self.responder)
    }

    /// The intermediate alone, as PEM.
    pub fn intermediate_pem(&self) -> String {
        pem("CERTIFICATE", &self.intermediate)
    }

    /// The root alone, as PEM.
    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", &self.root)
    }

    /// Issues a certificate of `profile` for `subject`, valid for `lifetime` from `now`. The profile's
    /// rules are checked first: nothing is signed that the profile does not allow.
    pub fn issue(
        &self,
        profile: Profile,
        subject: &Subject,
        lifetime: Duration,
        key: KeySource<'_>,
        now: DateTime<Utc>,
    ) -> Result<Issued, CaError> {
        profile.check(subject, lifetime)?;
        let (serial, serial_number) = random_serial(&self.random)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&subject.common_name);
        params.serial_number = Some(serial_number);
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = time(now - BACKDATE)?;
        params.not_after = time(now + lifetime)?;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.subject_alt_names = alt_names(subject)?;
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.urls.crl.clone()],
        }];
        params.custom_extensions = vec![aia::extension(&self.urls.ocsp, &self.urls.issuer)];
        if profile.server_auth() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if profile.client_auth() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let (certificate, private_key_pem) = match key {
            KeySource::Generate => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let certificate = params.signed_by(&key, &self.issuer)?;
                (certificate, Some(Zeroizing::new(key.serialize_pem())))
            }
            KeySource::PublicKey(spki) => {
                let public = rcgen::SubjectPublicKeyInfo::from_der(spki).map_err(|e| {
                    CaError::Request(format!("the public key is not one the authority signs for: {e}"))
                })?;
                if is_rsa(&public) {
                    // TLS 1.2's RSA key exchange encrypts with the certificate's key.
                    params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
                }
                (params.signed_by(&public, &self.issuer)?, None)
            }
        };
        let der = certificate.der().to_vec();
        Ok(Issued {
            serial,
            pem: certificate.pem(),
            der,
            not_before: now - BACKDATE,
            not_after: now + lifetime,
            private_key_pem,
        })
    }

    /// A CRL listing `revoked`, numbered `number` (it must grow with every new CRL: the platform uses
    /// the sequence of the last revocation in its log), valid until `now + validity`.
    pub fn crl(
        &self,
        revoked: &[RevokedEntry],
        number: u64,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Result<Crl, CaError> {
        let revoked_certs = revoked
            .iter()
            .map(|entry| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(entry.serial.as_bytes()),
                    revocation_time: time(entry.revoked_at)?,
                    reason_code: entry.reason.and_then(reason_code),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: time(now)?,
            next_update: time(now + validity)?,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            // None: the CRL then covers every certificate of the issuer (webpki and OpenSSL agree).
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        Ok(Crl {
            der: crl.der().to_vec(),
            pem: crl.pem()?,
        })
    }

    /// Signs `message` with the OCSP responder's key (ECDSA P-256 with SHA-256, DER).
    pub(crate) fn responder_sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        Ok(self.responder_key.sign(message)?)
    }
}

fn make_responder(issuer: &Issuer<'_, KeyPair>, now: DateTime<Utc>) -> Result<(Vec<u8>, KeyPair), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("Prism OCSP Responder");
    params.serial_number = Some(random_serial(&SystemRandom::new())?.1);
    params.is_ca = IsCa::ExplicitNoCa;
    params.not_before = time(now - BACKDATE)?;
    params.not_after = time(now + RESPONDER_LIFETIME)?;
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    // id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients need not ask about the responder itself.
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
        vec![0x05, 0x00],
    )];
    let certificate = params.signed_by(&key, issuer)?;
    Ok((certificate.der().to_vec(), key))
}

fn alt_names(subject: &Subject) -> Result<Vec<SanType>, CaError> {
    let ia5 = |s: &str| {
        rcgen::string::Ia5String::try_from(s)
            .map_err(|e| CaError::Request(format!("`{s}` is not an IA5 string: {e}")))
    };
    let mut names = Vec::new();
    for dns in &subject.dns_names {
        names.push(SanType::DnsName(ia5(dns)?));
    }
    for ip in &subject.ip_addresses {
        names.push(SanType::IpAddress(*ip));
    }
    for email in &subject.emails {
        names.push(SanType::Rfc822Name(ia5(email.as_str())?));
    }
    for uri in &subject.uris {
        names.push(SanType::URI(ia5(uri)?));
    }
    Ok(names)
}

fn is_rsa(key: &rcgen::SubjectPublicKeyInfo) -> bool {
    [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .iter()
    .any(|alg| std::ptr::eq(key.algorithm(), *alg))
}

fn reason_code(code: u8) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match code {
        0 => R::Unspecified,
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        8 => R::RemoveFromCrl,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        _ => return None,
    })
}

/// A random positive serial of [`SERIAL_OCTETS`] octets (the first one non-zero, top bit clear).
fn random_serial(random: &SystemRandom) -> Result<(Serial, SerialNumber), CaError> {
    let mut bytes = [0u8; SERIAL_OCTETS];
    random
        .fill(&mut bytes)
        .map_err(|e| CaError::Internal(e.to_string()))?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    let serial = Serial::from_bytes(&bytes).map_err(|e| CaError::Internal(e.to_string()))?;
    Ok((serial, SerialNumber::from_slice(&bytes)))
}

/// The DER inside the first PEM block of `text` labelled `label`.
pub fn der_of(label: &str, text: &str) -> Result<Vec<u8>, CaError> {
    let block = pem::parse(text).map_err(|e| CaError::Material(format!("not PEM: {e}")))?;
    if block.tag() != label {
        return Err(CaError::Material(format!(
            "a `{}` block, not `{label}`",
            block.tag()
        )));
    }
    Ok(block.into_contents())
}

/// The SubjectPublicKeyInfo (DER) of the PKCS#8 private key in `key_pem`.
pub fn public_key_of_key(key_pem: &str) -> Result<Vec<u8>, CaError> {
    let key =
        KeyPair::from_pem(key_pem).map_err(|e| CaError::Material(format!("a key does not load: {e}")))?;
    der_of("PUBLIC KEY", &key.public_key_pem())
}

/// The SubjectPublicKeyInfo (DER) of the certificate in `certificate_pem`.
pub fn public_key_of_certificate(certificate_pem: &str) -> Result<Vec<u8>, CaError> {
    let der = der_of("CERTIFICATE", certificate_pem)?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CaError::Material(format!("a certificate does not parse: {e}")))?;
    Ok(certificate.public_key().raw.to_vec())
}

/// PEM armour around DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
