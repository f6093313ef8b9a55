//! Opaque bearer secrets: refresh tokens, personal API keys, invitation, password-reset and e-mail
//! verification links.
//!
//! String form: `<prefix>_<id>_<secret>`, for example
//! `pak_0190f1c2a3b47c8d9e0f1a2b3c4d5e6f_q3Xb…` (3 + 1 + 32 + 1 + 43 = 80 characters):
//! * the **prefix** names the kind, so a secret pasted in the wrong place is refused with a useful
//!   message, and secret scanners (GitHub's, gitleaks) can be taught to recognise leaked Prism keys;
//! * the **id** (the aggregate's UUID, 32 lowercase hex digits) lets the caller load the one record the
//!   secret belongs to instead of searching by hash;
//! * the **secret** is 32 random bytes (256 bits), base64url without padding. Only its SHA-256
//!   ([`SecretHash`], of the 43 characters as written) is stored; at that entropy a fast hash is as
//!   good as a slow one, and a stolen table of hashes is no use.
//!
//! The caller compares the stored hash with the presented one using [`SecretHash::matches`], which runs
//! in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prism_domain::values::SecretHash;
use uuid::Uuid;

/// What an opaque token is for, named by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `prt`: a refresh token of a sign-in session.
    RefreshToken,
    /// `pak`: a personal API key.
    ApiKey,
    /// `inv`: an invitation to a workspace.
    Invitation,
    /// `pwr`: a password-reset link.
    PasswordReset,
    /// `evt`: an e-mail verification link.
    EmailVerification,
    /// `cdt`: a one-time download of a certificate with its key (the id part is the certificate's).
    CertificateDownload,
}

impl TokenKind {
    pub const ALL: &'static [TokenKind] = &[
        TokenKind::RefreshToken,
        TokenKind::ApiKey,
        TokenKind::Invitation,
        TokenKind::PasswordReset,
        TokenKind::EmailVerification,
        TokenKind::CertificateDownload,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Self::RefreshToken => "prt",
            Self::ApiKey => "pak",
            Self::Invitation => "inv",
            Self::PasswordReset => "pwr",
            Self::EmailVerification => "evt",
            Self::CertificateDownload => "cdt",
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.prefix() == prefix)
    }

    fn article(self) -> &'static str {
        match self {
            Self::ApiKey | Self::Invitation | Self::EmailVerification => "an",
            Self::RefreshToken | Self::PasswordReset | Self::CertificateDownload => "a",
        }
    }

    /// The length of every token of this kind.
    pub fn token_len(self) -> usize {
        self.prefix().len() + 1 + OpaqueToken::ID_LEN + 1 + OpaqueToken::SECRET_LEN
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RefreshToken => "refresh token",
            Self::ApiKey => "API key",
            Self::Invitation => "invitation token",
            Self::PasswordReset => "password reset token",
            Self::EmailVerification => "e-mail verification token",
            Self::CertificateDownload => "certificate download token",
        })
    }
}

/// Which part of a token a bad character is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The `_` between prefix, id and secret.
    Separator,
    Id,
    Secret,
}

/// Why a presented string is not a token of the expected kind. The texts never repeat the input: it
/// may be a secret pasted into the wrong field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("{}", wrong_prefix(*expected, *found))]
    WrongPrefix {
        expected: TokenKind,
        found: Option<TokenKind>,
    },
    #[error("{} {kind} is {expected} characters long, this one has {found}", kind.article())]
    WrongLength {
        kind: TokenKind,
        expected: usize,
        found: usize,
    },
    #[error("{}", match part {
        TokenPart::Separator => "the parts of the token must be separated by `_`",
        TokenPart::Id => "the id part of the token must be 32 lowercase hexadecimal digits",
        TokenPart::Secret => "the secret part of the token must be 43 base64url characters",
    })]
    BadCharacter { part: TokenPart },
}

fn wrong_prefix(expected: TokenKind, found: Option<TokenKind>) -> String {
    match found {
        Some(found) => format!(
            "expected {} {expected} (starting with `{}_`), got {} {found} (`{}_`)",
            expected.article(),
            expected.prefix(),
            found.article(),
            found.prefix()
        ),
        None => format!(
            "expected {} {expected}, starting with `{}_`",
            expected.article(),
            expected.prefix()
        ),
    }
}

/// Makes and reads opaque tokens; it has no values, the token is a plain string handed to the user
/// once and never stored.
#[derive(Debug)]
pub enum OpaqueToken {}

impl OpaqueToken {
    /// Length of the id part: a UUID in simple form.
    pub const ID_LEN: usize = 32;
    /// Length of the secret part: 32 bytes in base64url without padding.
    pub const SECRET_LEN: usize = 43;
    const SECRET_BYTES: usize = 32;

    /// A new token of `kind` for the record `id`, and the hash to store with that record. The token
    /// goes to the user and nowhere else (not into logs or events).
    pub fn generate(kind: TokenKind, id: Uuid) -> (String, SecretHash) {
        let mut secret = [0u8; Self::SECRET_BYTES];
        crate::fill_random(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let hash = SecretHash::of(secret.as_bytes());
        (format!("{}_{}_{}", kind.prefix(), id.simple(), secret), hash)
    }

    /// The record id and the hash of the secret of `token`, if it is a well-formed token of `expected`.
    /// Well-formed is not valid: the caller loads the record by id and compares the hashes.
    pub fn parse(expected: TokenKind, token: &str) -> Result<(Uuid, SecretHash), TokenFormatError> {
        // Bytes, not `str` slices: every valid character is ASCII, and slicing bytes cannot panic on a
        // multi-byte character.
        let bytes = token.as_bytes();
        let prefix = expected.prefix().as_bytes();
        if !(bytes.starts_with(prefix) && bytes.get(prefix.len()) == Some(&b'_')) {
            let found = TokenKind::ALL.iter().copied().find(|kind| {
                bytes.starts_with(kind.prefix().as_bytes()) && bytes.get(kind.prefix().len()) == Some(&b'_')
            });
            return Err(TokenFormatError::WrongPrefix { expected, found });
        }
        if bytes.len() != expected.token_len() {
            return Err(TokenFormatError::WrongLength {
                kind: expected,
                expected: expected.token_len(),
                found: token.chars().count(),
            });
        }
        let id_start = prefix.len() + 1;
        let id = &bytes[id_start..id_start + Self::ID_LEN];
        if bytes[id_start + Self::ID_LEN] != b'_' {
            return Err(TokenFormatError::BadCharacter {
                part: TokenPart::Separator,
            });
        }
        let secret = &bytes[id_start + Self::ID_LEN + 1..];

        if !id.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(TokenFormatError::BadCharacter { part: TokenPart::Id });
        }
        let id =
            Uuid::try_parse_ascii(id).map_err(|_| TokenFormatError::BadCharacter { part: TokenPart::Id })?;

        // The decoder also refuses a last character with stray low bits, so each secret has exactly
        // one spelling.
        let secret_ok = secret
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            && URL_SAFE_NO_PAD
                .decode(secret)
                .is_ok_and(|raw| raw.len() == Self::SECRET_BYTES);
        if !secret_ok {
            return Err(TokenFormatError::BadCharacter {
                part: TokenPart::Secret,
            });
        }
        Ok((id, SecretHash::of(secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: TokenKind) -> (String, Uuid, SecretHash) {
        let id = Uuid::now_v7();
        let (token, hash) = OpaqueToken::generate(kind, id);
        (token, id, hash)
    }

    #[test]
    fn generated_tokens_parse_back_to_their_id_and_hash() {
        for &kind in TokenKind::ALL {
            let (token, id, hash) = sample(kind);
            assert_eq!(token.len(), 80);
            assert_eq!(token.len(), kind.token_len());
            assert!(
                token.starts_with(&format!("{}_{}_", kind.prefix(), id.simple())),
                "{token}"
            );
            let (parsed_id, parsed_hash) = OpaqueToken::parse(kind, &token).unwrap();
            assert_eq!(parsed_id, id);
            assert!(parsed_hash.matches(&hash));
            // The hash is of the secret part as written (which may itself contain `_`).
            let secret = &token[kind.prefix().len() + 1 + OpaqueToken::ID_LEN + 1..];
            assert_eq!(hash, SecretHash::of(secret.as_bytes()));
            assert_eq!(TokenKind::from_prefix(kind.prefix()), Some(kind));
        }
    }

    #[test]
    fn every_token_has_its_own_secret() {
        let id = Uuid::now_v7();
        let (a, ha) = OpaqueToken::generate(TokenKind::ApiKey, id);
        let (b, hb) = OpaqueToken::generate(TokenKind::ApiKey, id);
        assert_ne!(a, b);
        assert!(!ha.matches(&hb));
    }

    #[test]
    fn a_token_of_another_kind_is_refused_by_name() {
        let (token, _, _) = sample(TokenKind::ApiKey);
        let err = OpaqueToken::parse(TokenKind::RefreshToken, &token).unwrap_err();
        assert_eq!(
            err,
            TokenFormatError::WrongPrefix {
                expected: TokenKind::RefreshToken,
                found: Some(TokenKind::ApiKey)
            }
        );
        assert_eq!(
            err.to_string(),
            "expected a refresh token (starting with `prt_`), got an API key (`pak_`)"
        );
        for bad in ["", "prt", "prtx_", "PRT_", "xyz_0190"] {
            assert_eq!(
                OpaqueToken::parse(TokenKind::RefreshToken, bad),
                Err(TokenFormatError::WrongPrefix {
                    expected: TokenKind::RefreshToken,
                    found: None
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let (token, _, _) = sample(TokenKind::Invitation);
        for bad in [&token[..79], &format!("{token}A"), "inv_", "inv_abc"] {
            assert!(
                matches!(
                    OpaqueToken::parse(TokenKind::Invitation, bad),
                    Err(TokenFormatError::WrongLength { expected: 80, .. })
                ),
                "{bad:?}"
            );
        }
        let err = OpaqueToken::parse(TokenKind::Invitation, "inv_abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "an invitation token is 80 characters long, this one has 7"
        );
    }

    #[test]
    fn bad_characters_are_refused_by_part() {
        let (token, _, _) = sample(TokenKind::PasswordReset);
        let with = |at: usize, c: &str| format!("{}{}{}", &token[..at], c, &token[at + 1..]);
        let part = |t: &str| match OpaqueToken::parse(TokenKind::PasswordReset, t) {
            Err(TokenFormatError::BadCharacter { part }) => Some(part),
            other => panic!("{t:?}: {other:?}"),
        };
        // Uppercase hex is a different spelling of the id: refused, so each token has one form.
        assert_eq!(part(&with(4, "A")), Some(TokenPart::Id));
        assert_eq!(part(&with(10, "g")), Some(TokenPart::Id));
        assert_eq!(part(&with(36, "-")), Some(TokenPart::Separator));
        assert_eq!(part(&with(50, "+")), Some(TokenPart::Secret));
        assert_eq!(part(&with(50, "=")), Some(TokenPart::Secret));
        assert_eq!(part(&with(50, ".")), Some(TokenPart::Secret));
        // 32 bytes leave 4 unused bits in the last character: only one spelling decodes.
        // `B` is 0b000001: its low bits would be set, which a generated token never has.
        assert_ne!(token.as_bytes()[79], b'B');
        assert_eq!(part(&with(79, "B")), Some(TokenPart::Secret));
    }

    #[test]
    fn non_ascii_input_is_refused_without_panicking() {
        let (token, _, _) = sample(TokenKind::EmailVerification);
        // Same byte length, a two-byte character straddling the id and the separator.
        let tricky = format!("{}é{}", &token[..35], &token[37..]);
        assert_eq!(tricky.len(), 80);
        assert!(OpaqueToken::parse(TokenKind::EmailVerification, &tricky).is_err());
        let tricky = format!("{}é", &token[..78]);
        assert!(OpaqueToken::parse(TokenKind::EmailVerification, &tricky).is_err());
    }

    #[test]
    fn errors_do_not_repeat_the_input() {
        let (token, _, _) = sample(TokenKind::ApiKey);
        let secret = &token[37..];
        for presented in [format!("{token}x"), format!("{}+{}", &token[..60], &token[61..])] {
            let err = OpaqueToken::parse(TokenKind::ApiKey, &presented).unwrap_err();
            assert!(!err.to_string().contains(&secret[..20]), "{err}");
            assert!(!format!("{err:?}").contains(&secret[..20]), "{err:?}");
        }
    }
}
