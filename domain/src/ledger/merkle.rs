//! The Merkle tree hash of RFC 6962 (section 2.1), over leaf hashes: a leaf is
//! `SHA-256(0x00 || data)`, an inner node `SHA-256(0x01 || left || right)`, and a tree of n > 1
//! leaves splits at the largest power of two below n. Written here rather than taken from a crate
//! because it is these few lines, and the exact RFC shape matters to outside verifiers (checked
//! against the RFC's reference vectors in the tests).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, written as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "DigestSchema")]
pub struct Digest(pub [u8; 32]);

/// How a [`Digest`] looks in JSON.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct DigestSchema(#[schemars(regex(pattern = r"^[0-9a-f]{64}$"))] String);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!("`{s}` is not 64 lowercase hexadecimal digits"));
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|e| e.to_string())?;
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Digest {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

/// The leaf hash of `data`.
pub fn leaf_hash(data: &[u8]) -> Digest {
    Digest(
        Sha256::new()
            .chain_update([0])
            .chain_update(data)
            .finalize()
            .into(),
    )
}

/// The leaf of a stream sequence that held no message when it was sealed (the store never deletes,
/// so this vouches that a gap was already there).
pub fn absent_leaf() -> Digest {
    leaf_hash(b"prism-audit-absent-v1")
}

fn node(left: &Digest, right: &Digest) -> Digest {
    Digest(
        Sha256::new()
            .chain_update([1])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The tree hash of `leaves` (already leaf hashes); none for an empty list.
pub fn tree_hash(leaves: &[Digest]) -> Option<Digest> {
    match leaves.len() {
        0 => None,
        1 => Some(leaves[0]),
        n => {
            let split = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (left, right) = leaves.split_at(split);
            Some(node(&tree_hash(left)?, &tree_hash(right)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's reference inputs, as certificate-transparency's and Trillian's tests use them,
    /// with the tree hash of the first n leaves for n = 1..=8.
    #[test]
    fn tree_hashes_match_the_reference_vectors() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Digest> = inputs.iter().map(|data| leaf_hash(data)).collect();
        for (n, root) in roots.iter().enumerate() {
            assert_eq!(
                tree_hash(&leaves[..=n]).unwrap().to_string(),
                *root,
                "{} leaves",
                n + 1
            );
        }
        assert_eq!(tree_hash(&[]), None);
    }

    #[test]
    fn digests_are_lowercase_hex() {
        let d: Digest = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
            .parse()
            .unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        assert!(
            "6E340B9CFFB37A989CA544E6BB780A2C78901D3FB33738768511A30617AFA01D"
                .parse::<Digest>()
                .is_err()
        );
        assert!("6e34".parse::<Digest>().is_err());
        assert!(serde_json::from_str::<Digest>("\"zz\"").is_err());
    }
}
