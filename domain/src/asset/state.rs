use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::computation::Role;
use crate::ids::{AssetId, UserId, WorkspaceId};
use crate::values::{FileName, MimeType, Sha3Digest};

/// What an asset is to a computation: its algorithm, or one of its datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Algorithm,
    Dataset,
}

impl AssetKind {
    pub const ALL: [AssetKind; 2] = [AssetKind::Algorithm, AssetKind::Dataset];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Algorithm => "algorithm",
            Self::Dataset => "dataset",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The computation role whose holder provides an asset of this kind.
    pub fn provider_role(self) -> Role {
        match self {
            Self::Algorithm => Role::AlgorithmProvider,
            Self::Dataset => Role::DatasetProvider,
        }
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a Cocos agent runs an algorithm (its `algo_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmType {
    /// A Python script (with its requirements sent alongside).
    Python,
    /// An executable.
    Bin,
    /// A WebAssembly module.
    Wasm,
    /// A Docker image archive.
    Docker,
}

impl AlgorithmType {
    pub const ALL: [AlgorithmType; 4] = [Self::Python, Self::Bin, Self::Wasm, Self::Docker];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Bin => "bin",
            Self::Wasm => "wasm",
            Self::Docker => "docker",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for AlgorithmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the platform knows of an asset's file: never the file itself. The digest and the file name are
/// what a computation's manifest names and its participants consent to, so they never change: a file
/// with another digest or name is another asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetRecord {
    pub kind: AssetKind,
    /// How the agent runs it: for an algorithm only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_type: Option<AlgorithmType>,
    /// What the file holds.
    pub mime_type: MimeType,
    /// SHA3-256 of the file, which the agent checks the upload against.
    pub sha3_256: Sha3Digest,
    /// The base name the agent expects the file under.
    pub file_name: FileName,
    #[serde(default)]
    pub description: String,
}

/// A sample of an asset's data that the platform keeps (at most [`super::SAMPLE_MAX`] bytes), so that
/// participants can see what it looks like before they consent. Its bytes are kept outside the log,
/// under [`Sample::blob_name`]; the log holds what identifies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// SHA-256 (hex) of the sample's bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    pub mime_type: MimeType,
}

impl Sample {
    /// The name the bytes of `asset`'s sample are kept under.
    pub fn blob_name(&self, asset: AssetId) -> String {
        blob_name(asset, &self.sha256)
    }
}

/// The name the bytes of a sample of `asset` with SHA-256 `sha256` are kept under.
pub fn blob_name(asset: AssetId, sha256: &str) -> String {
    format!("{asset}.{sha256}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// No event yet: the asset does not exist.
    #[default]
    New,
    Active,
    /// Out of use: it can no longer be linked or changed; its record stays.
    Archived,
}

impl AssetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }
}

/// An attached sample and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedSample {
    pub sample: Sample,
    pub attached_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub status: AssetStatus,
    pub id: Option<AssetId>,
    pub workspace_id: Option<WorkspaceId>,
    /// The user who registered it: the only one who changes it, and the provider it names when linked
    /// (whoever provides an asset is who will send its file to the agent).
    pub owner: Option<UserId>,
    pub record: Option<AssetRecord>,
    pub sample: Option<AttachedSample>,
}

impl Asset {
    pub fn record(&self) -> &AssetRecord {
        self.record.as_ref().expect("an existing asset has a record")
    }
}
