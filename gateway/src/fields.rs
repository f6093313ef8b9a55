//! Schemas of the values whose rules the API enforces, built from the domain's own limits so that the
//! OpenAPI description says exactly what the server accepts — no more (a client would be refused a
//! value the description allows) and no less (a client could not know why a value is refused).
//!
//! Patterns are ECMA-262 regular expressions, as JSON Schema specifies; lengths count characters
//! (Unicode scalar values), as both JSON Schema and the domain do.

use prism_domain::values::Email;
use prism_domain::{computation, workspace};
use serde_json::json;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, Schema};

use crate::cursor;

/// Text without control characters other than tab, line feed and carriage return (Unicode `Cc`).
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// [`TEXT_PATTERN`] with at least one character that is not white space (Unicode `White_Space`), so
/// that nothing is left blank once surrounding white space is trimmed.
pub const NAME_PATTERN: &str = concat!(
    r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
);

/// A participant id (see [`ParticipantId`]): a user id (hyphenated UUID), or an e-mail address as
/// [`EMAIL_PATTERN`] has it.
pub const PARTICIPANT_ID_PATTERN: &str = concat!(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$|",
    r#"^[^\s<>()\[\],;:\\"@\x00-\x1f\x7f-\x9f\ufeff]+@[^\s<>()\[\],;:\\"@.\x00-\x1f\x7f-\x9f\ufeff]+(\.[^\s<>()\[\],;:\\"@.\x00-\x1f\x7f-\x9f\ufeff]+)*$"#
);

/// A SHA3-256 digest in hexadecimal, either case.
pub const SHA3_DIGEST_PATTERN: &str = r"^[0-9a-fA-F]{64}$";

/// A public key as PEM (`-----BEGIN PUBLIC KEY-----`) or as base64 DER. The pattern gives the format
/// only: whether the bytes are a key Prism accepts is checked by parsing them (422 if not).
pub const PUBLIC_KEY_PATTERN: &str =
    r"^\s*(?:-----BEGIN PUBLIC KEY-----[\s\S]*-----END PUBLIC KEY-----|[A-Za-z0-9+/\s]+={0,2})\s*$";

fn string(nullable: bool) -> ObjectBuilder {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(schema_type)
}

/// Free text of at most `max` characters.
fn text(max: usize, nullable: bool, description: &str) -> Schema {
    string(nullable)
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN))
        .description(Some(format!(
            "{description} Up to {max} characters; no control characters except tab and line breaks."
        )))
        .into()
}

/// A name: 1 to `max` characters, not blank; surrounding white space is trimmed.
fn name(max: usize, nullable: bool, example: &str) -> Schema {
    string(nullable)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(NAME_PATTERN))
        .description(Some(format!(
            "1–{max} characters, not all white space (surrounding white space is trimmed); no control \
             characters except tab and line breaks."
        )))
        .examples([example])
        .into()
}

pub fn workspace_name() -> Schema {
    name(workspace::NAME_MAX, false, "Hospital consortium")
}

pub fn workspace_name_change() -> Schema {
    name(workspace::NAME_MAX, true, "Hospital consortium")
}

pub fn workspace_description() -> Schema {
    text(workspace::DESCRIPTION_MAX, true, "What the workspace is for.")
}

pub fn display_name() -> Schema {
    name(prism_domain::user::DISPLAY_NAME_MAX, false, "Ada Lovelace")
}

/// An e-mail address as the platform accepts it: one `@`, no white space (not even around it),
/// control characters or `<>()[],;:\"` (so no quoted local parts), compared case-insensitively.
pub fn email() -> Schema {
    string(false)
        .min_length(Some(3))
        .max_length(Some(prism_domain::values::Email::MAX_LEN))
        .pattern(Some(EMAIL_PATTERN))
        .examples(["ada@example.org"])
        .into()
}

/// What [`prism_domain::values::Email::parse`] accepts (after trimming and lowercasing).
pub const EMAIL_PATTERN: &str = r#"^[^\s<>()\[\],;:\\"@\x00-\x1f\x7f-\x9f\ufeff]+@[^\s<>()\[\],;:\\"@.\x00-\x1f\x7f-\x9f\ufeff]+(\.[^\s<>()\[\],;:\\"@.\x00-\x1f\x7f-\x9f\ufeff]+)*$"#;

/// A password: its policy's length bounds (counted in characters).
pub fn password() -> Schema {
    string(false)
        .min_length(Some(8))
        .max_length(Some(128))
        .description(Some("8–128 characters.".to_owned()))
        .into()
}

pub fn computation_name() -> Schema {
    name(computation::NAME_MAX, false, "Joint survival study")
}

pub fn computation_name_change() -> Schema {
    name(computation::NAME_MAX, true, "Joint survival study")
}

pub fn computation_description() -> Schema {
    text(computation::DESCRIPTION_MAX, true, "What the computation does.")
}

pub fn asset_name() -> Schema {
    text(
        computation::ASSET_NAME_MAX,
        true,
        "A label for the asset, e.g. its file name.",
    )
}

pub fn archive_reason() -> Schema {
    text(
        computation::REASON_MAX,
        true,
        "Why the computation is archived; recorded in the event. Blank is the same as absent.",
    )
}

/// Why a participant vetoes a proposal or halts execution: recorded in the event, so not blank.
pub fn governance_reason() -> Schema {
    name(
        computation::REASON_MAX,
        false,
        "Our dataset is under audit until the end of the month",
    )
}

fn participant(description: &str) -> Schema {
    string(false)
        .min_length(Some(1))
        .max_length(Some(Email::MAX_LEN))
        .pattern(Some(PARTICIPANT_ID_PATTERN))
        .description(Some(format!(
            "{description} A registered user's id, or an e-mail address (at most {} characters): a \
             person without a verified account there is invited by address, holds nothing until they \
             verify it, and is then named by their user id.",
            Email::MAX_LEN
        )))
        .examples(["alice@example.org"])
        .into()
}

pub fn participant_id() -> Schema {
    participant("Who takes part.")
}

pub fn provider() -> Schema {
    participant(
        "The participant who uploads the asset: one of the participants, holding the provider role \
         (`algorithm_provider` for the algorithm, `dataset_provider` for a dataset).",
    )
}

pub fn sha3_digest() -> Schema {
    string(false)
        .min_length(Some(64))
        .max_length(Some(64))
        .pattern(Some(SHA3_DIGEST_PATTERN))
        .description(Some(
            "SHA3-256 digest: 64 hexadecimal characters, either case (responses give lowercase).",
        ))
        .examples(["a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"])
        .into()
}

pub fn public_key() -> Schema {
    string(true)
        .min_length(Some(1))
        .pattern(Some(PUBLIC_KEY_PATTERN))
        .description(Some(
            "An X.509 SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`) or base64 DER: RSA of 2048 \
             to 16384 bits with an odd exponent of at least 65537, EC on P-256, P-384 or P-521 (a named \
             curve), or Ed25519. Required for `algorithm_provider`, `dataset_provider` and \
             `result_consumer`. A value that is not such a key is refused with 422 and a pointer to it. \
             Responses give canonical PEM.",
        ))
        .examples(["MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="])
        .into()
}

/// A participant's roles: at least one; a role listed twice counts once.
pub fn roles() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Role"))
        .description(Some(
            "The participant's built-in roles; a participant needs at least one role, built-in or custom.",
        ))
        .into()
}

pub fn computation_custom_roles() -> Schema {
    ArrayBuilder::new()
        .items(crate::routes::members::role_name_builder())
        .description(Some(
            "Custom roles of the workspace (422 if one is not defined there) granted on this computation \
             only: their permissions of computation scope apply to it, the others do not.",
        ))
        .into()
}

fn list(item: &str, max: usize, nullable: bool, min: usize, description: String) -> ArrayBuilder {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::Array, Type::Null])
    } else {
        SchemaType::new(Type::Array)
    };
    ArrayBuilder::new()
        .schema_type(schema_type)
        .items(Ref::from_schema_name(item))
        .min_items(Some(min))
        .max_items(Some(max))
        .unique_items(true)
        .description(Some(description))
}

fn participants_description() -> String {
    format!(
        "1–{} participants, each listed once (by `id`), at least one of them an `owner`.",
        computation::PARTICIPANTS_MAX
    )
}

/// At least one participant with the `owner` role. utoipa has no builder for `contains`, which JSON
/// Schema 2020-12 has; it goes in as an extension, written beside the other keywords.
fn an_owner() -> Extensions {
    Extensions::from_iter([(
        "contains",
        json!({"properties": {"roles": {"contains": {"const": "owner"}}}}),
    )])
}

pub fn participants() -> Schema {
    list(
        "Participant",
        computation::PARTICIPANTS_MAX,
        false,
        1,
        participants_description(),
    )
    .extensions(Some(an_owner()))
    .into()
}

pub fn participants_change() -> Schema {
    list(
        "Participant",
        computation::PARTICIPANTS_MAX,
        true,
        1,
        format!("Replaces the whole list: {}", participants_description()),
    )
    .extensions(Some(an_owner()))
    .into()
}

pub fn datasets() -> Schema {
    list(
        "Asset",
        computation::DATASETS_MAX,
        true,
        0,
        format!(
            "Up to {} datasets, each digest listed once, each provided by a `dataset_provider`.",
            computation::DATASETS_MAX
        ),
    )
    .into()
}

/// `limit` of a page.
pub fn limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(cursor::MAX_LIMIT))
        .default(Some(cursor::DEFAULT_LIMIT.into()))
        .description(Some(format!(
            "Page size, 1–{} (default {}).",
            cursor::MAX_LIMIT,
            cursor::DEFAULT_LIMIT
        )))
        .into()
}

/// `max_run_seconds` of a computation's run limits.
pub fn max_run_seconds() -> Schema {
    use prism_domain::run::RunLimits;
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(RunLimits::MIN_RUN_SECONDS))
        .maximum(Some(RunLimits::MAX_RUN_SECONDS))
        .description(Some(format!(
            "The longest a run may take from its request to its results, in seconds: {}–{}; past it \
             the run times out and is cleaned up. Part of the manifest participants consent to.",
            RunLimits::MIN_RUN_SECONDS,
            RunLimits::MAX_RUN_SECONDS
        )))
        .into()
}

/// `cursor` of a page.
pub fn cursor() -> Schema {
    string(false)
        .pattern(Some(cursor::PATTERN))
        .description(Some(
            "`next_cursor` of the previous page, unchanged (opaque; its pattern is given so that a \
             malformed one is recognised without asking).",
        ))
        .into()
}

/// `min_sequence` of a read.
pub fn min_sequence() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .description(Some(
            "Wait (up to a few seconds) until the read model has applied this stream sequence, e.g. the \
             `Prism-Sequence` of a command just sent; 503 if it does not get there in time. A sequence \
             beyond the end of the event log is refused at once with 400.",
        ))
        .into()
}

/// The format of a computation document: one value, so a document of another version is told apart.
pub fn document_format() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(["prism.computation.v1"]))
        .examples(["prism.computation.v1"])
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use prism_domain::ParticipantId;
    use prism_domain::values::{Sha3Digest, check_text};
    use regex::Regex;

    use super::*;
    use crate::strings;

    /// Characters the text rules treat differently: every control character, every kind of white
    /// space, and ordinary characters inside and beyond ASCII.
    fn text_alphabet() -> Vec<char> {
        let mut alphabet: Vec<char> = ('\u{0}'..='\u{a1}').collect();
        alphabet.extend(
            "\u{1680}\u{2000}\u{200a}\u{200b}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}é€😀\u{e000}"
                .chars(),
        );
        alphabet
    }

    #[test]
    fn the_text_pattern_is_the_domains_rule() {
        let pattern = Regex::new(TEXT_PATTERN).unwrap();
        for s in strings::over(&text_alphabet(), 2, 5000, 8) {
            let domain = check_text("text", &s, usize::MAX, false).is_ok();
            assert_eq!(pattern.is_match(&s), domain, "{s:?}");
        }
    }

    #[test]
    fn the_name_pattern_is_the_domains_rule_for_required_text() {
        let pattern = Regex::new(NAME_PATTERN).unwrap();
        for s in strings::over(&text_alphabet(), 2, 5000, 8) {
            let domain = check_text("name", &s, usize::MAX, true).is_ok();
            assert_eq!(pattern.is_match(&s), domain, "{s:?}");
        }
    }

    #[test]
    fn the_participant_id_pattern_is_the_domains_rule() {
        let pattern = Regex::new(PARTICIPANT_ID_PATTERN).unwrap();
        let alphabet: Vec<char> = "aZ09._@+-/ :é\u{0}".chars().collect();
        let mut samples = strings::over(&alphabet, 3, 2000, 12);
        let user = "0192a5c4-7b1e-7c3d-9a8b-1234567890ab";
        samples.extend([
            user.to_owned(),
            user.to_uppercase(),
            user.replace('-', ""),
            format!("{{{user}}}"),
            format!("{user}0"),
            format!("{}@example.org", "a".repeat(242)),
            format!("{}@example.org", "a".repeat(243)),
        ]);
        for s in samples {
            let schema = pattern.is_match(&s) && s.chars().count() <= Email::MAX_LEN;
            assert_eq!(schema, ParticipantId::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn the_digest_pattern_is_the_domains_rule() {
        let pattern = Regex::new(SHA3_DIGEST_PATTERN).unwrap();
        let digest = "ab".repeat(32);
        for s in [
            digest.clone(),
            digest.to_uppercase(),
            digest[1..].to_owned(),
            format!("{digest}0"),
            format!("{}g", &digest[1..]),
            String::new(),
        ] {
            assert_eq!(pattern.is_match(&s), Sha3Digest::parse(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn a_public_key_prism_accepts_matches_the_pattern() {
        let pattern = Regex::new(PUBLIC_KEY_PATTERN).unwrap();
        let der = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
        let pem = prism_domain::values::PublicKey::parse(der).unwrap();
        for key in [der, pem.as_pem()] {
            assert!(pattern.is_match(key), "{key}");
        }
        assert!(!pattern.is_match("not a key!"));
    }
}
