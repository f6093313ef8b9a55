//! Typed claims: what verified evidence says about the machine, ready for a [`crate::Policy`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::hexbytes::HexBytes;

/// The claims of one piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum Claims {
    SevSnp(SnpClaims),
    Tdx(TdxClaims),
    /// Evidence from a machine without a TEE.
    None(NoneClaims),
}

/// Who signed the chain the evidence was verified to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Root {
    /// The manufacturer's real root (AMD's ARK, Intel's SGX root CA).
    Manufacturer,
    /// A root the platform was told to trust for development only (the emulated agent's).
    TestOnly,
}

/// An SEV-SNP TCB version, split by the product's layout (Turin adds an FMC component).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tcb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl Tcb {
    /// Whether every component is at least `minimum`'s (an absent FMC counts as 0).
    pub fn meets(&self, minimum: &Tcb) -> bool {
        self.fmc.unwrap_or(0) >= minimum.fmc.unwrap_or(0)
            && self.bootloader >= minimum.bootloader
            && self.tee >= minimum.tee
            && self.snp >= minimum.snp
            && self.microcode >= minimum.microcode
    }
}

impl std::fmt::Display for Tcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc {fmc}, ")?;
        }
        write!(
            f,
            "bootloader {}, tee {}, snp {}, microcode {}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

impl From<sev::firmware::host::TcbVersion> for Tcb {
    fn from(tcb: sev::firmware::host::TcbVersion) -> Self {
        Tcb {
            fmc: tcb.fmc,
            bootloader: tcb.bootloader,
            tee: tcb.tee,
            snp: tcb.snp,
            microcode: tcb.microcode,
        }
    }
}

/// A firmware version: major.minor, build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareVersion {
    pub major: u8,
    pub minor: u8,
    pub build: u8,
}

impl std::fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} build {}", self.major, self.minor, self.build)
    }
}

/// The fields of a verified SEV-SNP `ATTESTATION_REPORT` and of the chain that signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnpClaims {
    /// AMD's product name as the VCEK or the report's CPUID says (`Milan`, `Genoa`, `Turin`).
    pub product: String,
    pub root: Root,
    pub version: u32,
    pub guest_svn: u32,
    /// GUEST_POLICY as a number; its bits are read by the policy.
    pub guest_policy: u64,
    pub family_id: HexBytes,
    pub image_id: HexBytes,
    pub vmpl: u32,
    pub current_tcb: Tcb,
    pub reported_tcb: Tcb,
    pub committed_tcb: Tcb,
    pub launch_tcb: Tcb,
    /// PLATFORM_INFO as a number.
    pub platform_info: u64,
    /// AUTHOR_KEY_EN: the ID block's author key digest is present.
    pub author_key_enabled: bool,
    /// MASK_CHIP_ID: the chip id is zeros.
    pub chip_id_masked: bool,
    pub report_data: HexBytes,
    pub measurement: HexBytes,
    pub host_data: HexBytes,
    pub id_key_digest: HexBytes,
    pub author_key_digest: HexBytes,
    pub report_id: HexBytes,
    pub report_id_ma: HexBytes,
    pub chip_id: HexBytes,
    pub current_version: FirmwareVersion,
    pub committed_version: FirmwareVersion,
    /// SHA-256 of the VCEK (DER) that signed the report.
    pub vcek_sha256: HexBytes,
}

/// The fields of a verified TDX quote's TD report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TdxClaims {
    pub root: Root,
    pub tee_tcb_svn: HexBytes,
    pub mr_seam: HexBytes,
    pub mr_td: HexBytes,
    pub rtmr0: HexBytes,
    pub rtmr1: HexBytes,
    pub rtmr2: HexBytes,
    pub rtmr3: HexBytes,
    pub td_attributes: HexBytes,
    pub xfam: HexBytes,
    pub report_data: HexBytes,
    /// Bit 0 of TD attributes: the TD is debuggable.
    pub debug: bool,
}

/// What evidence from a machine without a TEE says; nothing in it is proven.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoneClaims {
    /// Where the evidence says it comes from: `NoCC` (a real agent without a TEE) or `SNP` (the
    /// emulated agent's report, signed by its test-only chain).
    pub source: String,
    /// The SEV-SNP claims of the emulated agent's report, verified against its test-only root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated_snp: Option<SnpClaims>,
    pub report_data: HexBytes,
}
