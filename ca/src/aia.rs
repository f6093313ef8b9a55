//! The Authority Information Access extension (RFC 5280 §4.2.2.1), which rcgen does not write: where
//! the OCSP responder answers for a certificate, and where its issuer's certificate can be fetched.

use rcgen::CustomExtension;
use yasna::Tag;
use yasna::models::ObjectIdentifier;

const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
const AD_CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];

/// `AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription`, each an access method and a
/// `uniformResourceIdentifier` (`[6] IA5String`), built with yasna (rcgen's own DER writer).
pub(crate) fn extension(ocsp: &str, issuer: &str) -> CustomExtension {
    let content = yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            for (method, location) in [(AD_OCSP, ocsp), (AD_CA_ISSUERS, issuer)] {
                writer.next().write_sequence(|writer| {
                    writer.next().write_oid(&ObjectIdentifier::from_slice(method));
                    writer
                        .next()
                        .write_tagged_implicit(Tag::context(6), |writer| writer.write_ia5_string(location));
                });
            }
        });
    });
    CustomExtension::from_oid_content(AUTHORITY_INFO_ACCESS, content)
}
