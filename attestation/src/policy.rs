//! Attestation policy: what verified claims must say.
//!
//! The SEV-SNP part covers the checks of Google's go-sev-guest `validate.Options`; the TDX part
//! MRTD, RTMR0–3, attributes, XFAM and the minimum TEE TCB SVN. Every field is optional or has a
//! safe default (debug refused, migration agent refused, provisional firmware refused), so `{}`
//! is a valid, strict-by-default policy. [`Policy::appraise`] reports *every* failing field with
//! its expected and actual value, not just the first.
//!
//! A policy is identified by [`Policy::digest`], the SHA-256 of its canonical JSON: the struct
//! serialised with its fields in declaration order, lists as given, bytes as lower-case hex.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::claims::{Claims, NoneClaims, SnpClaims, Tcb, TdxClaims};
use crate::hexbytes::{Hex, HexBytes};
use crate::verdict::Failure;

/// A policy for every platform.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub sev_snp: SnpPolicy,
    #[serde(default)]
    pub tdx: TdxPolicy,
}

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not valid JSON of the policy's form: {0}")]
    Json(#[from] serde_json::Error),
}

/// GUEST_POLICY bits (AMD SEV-SNP ABI, "Guest Policy Structure").
pub mod guest_policy_bit {
    pub const SMT: u64 = 1 << 16;
    pub const MIGRATE_MA: u64 = 1 << 18;
    pub const DEBUG: u64 = 1 << 19;
    pub const SINGLE_SOCKET: u64 = 1 << 20;
    pub const CXL_ALLOW: u64 = 1 << 21;
    pub const MEM_AES_256_XTS: u64 = 1 << 22;
    pub const RAPL_DIS: u64 = 1 << 23;
    pub const CIPHERTEXT_HIDING: u64 = 1 << 24;
    pub const PAGE_SWAP_DISABLE: u64 = 1 << 25;
}

/// PLATFORM_INFO bits (AMD SEV-SNP ABI, "Attestation Report").
pub mod platform_info_bit {
    pub const SMT_EN: u64 = 1 << 0;
    pub const TSME_EN: u64 = 1 << 1;
    pub const ECC_EN: u64 = 1 << 2;
    pub const RAPL_DIS: u64 = 1 << 3;
    pub const CIPHERTEXT_HIDING_EN: u64 = 1 << 4;
    pub const ALIAS_CHECK_COMPLETE: u64 = 1 << 5;
}

/// What the guest policy the VM was launched with may allow and must require.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuestPolicyRule {
    /// Refused by default: a debuggable guest's memory can be read by the host.
    pub allow_debug: bool,
    pub allow_migration_agent: bool,
    pub allow_smt: bool,
    pub allow_cxl: bool,
    pub require_single_socket: bool,
    pub require_memory_aes_256_xts: bool,
    pub require_rapl_disabled: bool,
    pub require_ciphertext_hiding: bool,
    pub require_page_swap_disabled: bool,
    /// The lowest firmware ABI the guest may have asked for (`major.minor`).
    pub minimum_abi_major: u8,
    pub minimum_abi_minor: u8,
}

impl Default for GuestPolicyRule {
    fn default() -> Self {
        GuestPolicyRule {
            allow_debug: false,
            allow_migration_agent: false,
            allow_smt: true,
            allow_cxl: false,
            require_single_socket: false,
            require_memory_aes_256_xts: false,
            require_rapl_disabled: false,
            require_ciphertext_hiding: false,
            require_page_swap_disabled: false,
            minimum_abi_major: 0,
            minimum_abi_minor: 0,
        }
    }
}

/// What the platform's features may and must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformInfoRule {
    pub allow_smt: bool,
    pub require_tsme: bool,
    pub require_ecc: bool,
    pub require_rapl_disabled: bool,
    pub require_ciphertext_hiding: bool,
    pub require_alias_check_complete: bool,
}

impl Default for PlatformInfoRule {
    fn default() -> Self {
        PlatformInfoRule {
            allow_smt: true,
            require_tsme: false,
            require_ecc: false,
            require_rapl_disabled: false,
            require_ciphertext_hiding: false,
            require_alias_check_complete: false,
        }
    }
}

/// A firmware version floor (`major.minor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionFloor {
    pub major: u8,
    pub minor: u8,
}

/// The SEV-SNP checks (go-sev-guest `validate.Options`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SnpPolicy {
    /// AMD products accepted (`Milan`, `Genoa`, `Turin`); empty: any.
    pub products: Vec<String>,
    pub guest_policy: GuestPolicyRule,
    pub minimum_guest_svn: u32,
    /// Exact REPORT_DATA (64 bytes). Usually left out: the binding to the request checks it.
    pub report_data: Option<Hex<64>>,
    /// Exact HOST_DATA (32 bytes).
    pub host_data: Option<Hex<32>>,
    /// Exact IMAGE_ID (16 bytes).
    pub image_id: Option<Hex<16>>,
    /// Exact FAMILY_ID (16 bytes).
    pub family_id: Option<Hex<16>>,
    /// Exact REPORT_ID (32 bytes).
    pub report_id: Option<Hex<32>>,
    /// Exact REPORT_ID_MA (32 bytes).
    pub report_id_ma: Option<Hex<32>>,
    /// Launch measurements accepted (48 bytes each); empty: any.
    pub measurements: Vec<Hex<48>>,
    /// Chip ids accepted (64 bytes each); empty: any.
    pub chip_ids: Vec<Hex<64>>,
    /// Lowest current firmware build.
    pub minimum_build: u8,
    /// Lowest current firmware version.
    pub minimum_version: Option<VersionFloor>,
    /// Lowest TCB, each component; checked against the current, committed and reported TCB.
    pub minimum_tcb: Option<Tcb>,
    /// Lowest TCB at launch, each component.
    pub minimum_launch_tcb: Option<Tcb>,
    /// Whether firmware newer than the committed one (not yet committed) is accepted.
    pub permit_provisional_firmware: bool,
    pub platform_info: PlatformInfoRule,
    /// The exact VMPL the report must come from (Cocos's agent: `AGENT_VMPL`, 0–3).
    pub vmpl: Option<u32>,
    /// The ID block must be signed by an author key.
    pub require_author_key: bool,
    /// The VM must have been launched with an ID block.
    pub require_id_block: bool,
    /// SHA-384 digests of accepted ID block author keys; empty: any.
    pub trusted_author_key_digests: Vec<Hex<48>>,
    /// SHA-384 digests of accepted ID keys; empty: any.
    pub trusted_id_key_digests: Vec<Hex<48>>,
}

/// The TDX checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TdxPolicy {
    /// Refused by default: a debuggable TD's memory can be read by the host.
    pub allow_debug: bool,
    /// MRTD values accepted (48 bytes each); empty: any.
    pub mr_td: Vec<Hex<48>>,
    /// MRSEAM values accepted (48 bytes each); empty: any.
    pub mr_seam: Vec<Hex<48>>,
    pub rtmr0: Option<Hex<48>>,
    pub rtmr1: Option<Hex<48>>,
    pub rtmr2: Option<Hex<48>>,
    pub rtmr3: Option<Hex<48>>,
    /// Exact TD attributes (8 bytes).
    pub td_attributes: Option<Hex<8>>,
    /// Exact XFAM (8 bytes).
    pub xfam: Option<Hex<8>>,
    /// Lowest TEE TCB SVN, each of its 16 bytes.
    pub minimum_tee_tcb_svn: Option<Hex<16>>,
}

impl Policy {
    /// Parses a policy document; every length and value the schema states is checked here.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The canonical JSON this policy is identified by.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a policy always serialises")
    }

    /// SHA-256 of [`Policy::canonical_json`].
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_json()).into()
    }

    /// Every way `claims` fall short of this policy; empty when they satisfy it.
    pub fn appraise(&self, claims: &Claims) -> Vec<Failure> {
        let mut failures = Failures::default();
        match claims {
            Claims::SevSnp(claims) => self.sev_snp.appraise(claims, &mut failures),
            Claims::Tdx(claims) => self.tdx.appraise(claims, &mut failures),
            Claims::None(NoneClaims {
                emulated_snp: Some(claims),
                ..
            }) => self.sev_snp.appraise(claims, &mut failures),
            Claims::None(_) => {}
        }
        failures.0
    }
}

#[derive(Default)]
struct Failures(Vec<Failure>);

impl Failures {
    fn push(&mut self, field: &str, expected: impl ToString, actual: impl ToString) {
        self.0
            .push(Failure::new(field, expected.to_string(), actual.to_string()));
    }

    /// A bit the policy does not allow must be clear.
    fn forbid(&mut self, field: &str, allowed: bool, set: bool) {
        if !allowed && set {
            self.push(field, "not allowed", "allowed");
        }
    }

    /// A bit the policy requires must be set.
    fn require(&mut self, field: &str, required: bool, set: bool) {
        if required && !set {
            self.push(field, "required", "absent");
        }
    }

    fn exact<const N: usize>(&mut self, field: &str, expected: &Option<Hex<N>>, actual: &HexBytes) {
        if let Some(expected) = expected.as_ref().filter(|expected| *expected != actual) {
            self.push(field, expected, actual);
        }
    }

    fn one_of<const N: usize>(&mut self, field: &str, accepted: &[Hex<N>], actual: &HexBytes) {
        if !accepted.is_empty() && !accepted.iter().any(|one| one == actual) {
            let list: Vec<String> = accepted.iter().map(ToString::to_string).collect();
            self.push(field, format!("one of [{}]", list.join(", ")), actual);
        }
    }

    fn tcb_at_least(&mut self, field: &str, minimum: &Option<Tcb>, actual: &Tcb) {
        if let Some(minimum) = minimum.as_ref().filter(|minimum| !actual.meets(minimum)) {
            self.push(field, format!("at least {minimum}"), actual);
        }
    }
}

impl SnpPolicy {
    fn appraise(&self, claims: &SnpClaims, failures: &mut Failures) {
        use guest_policy_bit as gp;
        use platform_info_bit as pi;

        if !self.products.is_empty()
            && !self
                .products
                .iter()
                .any(|product| claims.product.starts_with(product.as_str()))
        {
            failures.push(
                "product",
                format!("one of [{}]", self.products.join(", ")),
                &claims.product,
            );
        }

        let policy = claims.guest_policy;
        let rule = &self.guest_policy;
        failures.forbid("guest_policy.debug", rule.allow_debug, policy & gp::DEBUG != 0);
        failures.forbid(
            "guest_policy.migrate_ma",
            rule.allow_migration_agent,
            policy & gp::MIGRATE_MA != 0,
        );
        failures.forbid("guest_policy.smt", rule.allow_smt, policy & gp::SMT != 0);
        failures.forbid(
            "guest_policy.cxl_allow",
            rule.allow_cxl,
            policy & gp::CXL_ALLOW != 0,
        );
        failures.require(
            "guest_policy.single_socket",
            rule.require_single_socket,
            policy & gp::SINGLE_SOCKET != 0,
        );
        failures.require(
            "guest_policy.mem_aes_256_xts",
            rule.require_memory_aes_256_xts,
            policy & gp::MEM_AES_256_XTS != 0,
        );
        failures.require(
            "guest_policy.rapl_dis",
            rule.require_rapl_disabled,
            policy & gp::RAPL_DIS != 0,
        );
        failures.require(
            "guest_policy.ciphertext_hiding",
            rule.require_ciphertext_hiding,
            policy & gp::CIPHERTEXT_HIDING != 0,
        );
        failures.require(
            "guest_policy.page_swap_disable",
            rule.require_page_swap_disabled,
            policy & gp::PAGE_SWAP_DISABLE != 0,
        );
        let abi = ((policy >> 8) & 0xFF, policy & 0xFF);
        let minimum_abi = (
            u64::from(rule.minimum_abi_major),
            u64::from(rule.minimum_abi_minor),
        );
        if abi < minimum_abi {
            failures.push(
                "guest_policy.abi",
                format!("at least {}.{}", minimum_abi.0, minimum_abi.1),
                format!("{}.{}", abi.0, abi.1),
            );
        }

        if claims.guest_svn < self.minimum_guest_svn {
            failures.push(
                "guest_svn",
                format!("at least {}", self.minimum_guest_svn),
                claims.guest_svn,
            );
        }
        failures.exact("report_data", &self.report_data, &claims.report_data);
        failures.exact("host_data", &self.host_data, &claims.host_data);
        failures.exact("image_id", &self.image_id, &claims.image_id);
        failures.exact("family_id", &self.family_id, &claims.family_id);
        failures.exact("report_id", &self.report_id, &claims.report_id);
        failures.exact("report_id_ma", &self.report_id_ma, &claims.report_id_ma);
        failures.one_of("measurement", &self.measurements, &claims.measurement);
        failures.one_of("chip_id", &self.chip_ids, &claims.chip_id);

        let current = claims.current_version;
        if current.build < self.minimum_build {
            failures.push(
                "current_build",
                format!("at least {}", self.minimum_build),
                current.build,
            );
        }
        if let Some(floor) = self
            .minimum_version
            .filter(|floor| (current.major, current.minor) < (floor.major, floor.minor))
        {
            failures.push(
                "current_version",
                format!("at least {}.{}", floor.major, floor.minor),
                format!("{}.{}", current.major, current.minor),
            );
        }
        failures.tcb_at_least("current_tcb", &self.minimum_tcb, &claims.current_tcb);
        failures.tcb_at_least("committed_tcb", &self.minimum_tcb, &claims.committed_tcb);
        failures.tcb_at_least("reported_tcb", &self.minimum_tcb, &claims.reported_tcb);
        failures.tcb_at_least("launch_tcb", &self.minimum_launch_tcb, &claims.launch_tcb);
        if !self.permit_provisional_firmware {
            if claims.committed_tcb != claims.current_tcb {
                failures.push(
                    "committed_tcb",
                    format!("{} (no provisional firmware)", claims.current_tcb),
                    claims.committed_tcb,
                );
            }
            if claims.committed_version != claims.current_version {
                failures.push(
                    "committed_version",
                    format!("{} (no provisional firmware)", claims.current_version),
                    claims.committed_version,
                );
            }
        }

        let info = claims.platform_info;
        let rule = &self.platform_info;
        failures.forbid(
            "platform_info.smt_enabled",
            rule.allow_smt,
            info & pi::SMT_EN != 0,
        );
        failures.require(
            "platform_info.tsme_enabled",
            rule.require_tsme,
            info & pi::TSME_EN != 0,
        );
        failures.require(
            "platform_info.ecc_enabled",
            rule.require_ecc,
            info & pi::ECC_EN != 0,
        );
        failures.require(
            "platform_info.rapl_disabled",
            rule.require_rapl_disabled,
            info & pi::RAPL_DIS != 0,
        );
        failures.require(
            "platform_info.ciphertext_hiding_enabled",
            rule.require_ciphertext_hiding,
            info & pi::CIPHERTEXT_HIDING_EN != 0,
        );
        failures.require(
            "platform_info.alias_check_complete",
            rule.require_alias_check_complete,
            info & pi::ALIAS_CHECK_COMPLETE != 0,
        );

        if let Some(vmpl) = self.vmpl.filter(|vmpl| *vmpl != claims.vmpl) {
            failures.push("vmpl", vmpl, claims.vmpl);
        }
        failures.require(
            "author_key_en",
            self.require_author_key,
            claims.author_key_enabled,
        );
        let has_id_block = claims.id_key_digest.0.iter().any(|byte| *byte != 0);
        failures.require("id_block", self.require_id_block, has_id_block);
        failures.one_of(
            "author_key_digest",
            &self.trusted_author_key_digests,
            &claims.author_key_digest,
        );
        failures.one_of(
            "id_key_digest",
            &self.trusted_id_key_digests,
            &claims.id_key_digest,
        );
    }
}

impl TdxPolicy {
    fn appraise(&self, claims: &TdxClaims, failures: &mut Failures) {
        failures.forbid("td_attributes.debug", self.allow_debug, claims.debug);
        failures.one_of("mr_td", &self.mr_td, &claims.mr_td);
        failures.one_of("mr_seam", &self.mr_seam, &claims.mr_seam);
        failures.exact("rtmr0", &self.rtmr0, &claims.rtmr0);
        failures.exact("rtmr1", &self.rtmr1, &claims.rtmr1);
        failures.exact("rtmr2", &self.rtmr2, &claims.rtmr2);
        failures.exact("rtmr3", &self.rtmr3, &claims.rtmr3);
        failures.exact("td_attributes", &self.td_attributes, &claims.td_attributes);
        failures.exact("xfam", &self.xfam, &claims.xfam);
        if let Some(minimum) = &self.minimum_tee_tcb_svn {
            let below = minimum
                .0
                .iter()
                .zip(&claims.tee_tcb_svn.0)
                .any(|(floor, actual)| actual < floor);
            if below || claims.tee_tcb_svn.0.len() != minimum.0.len() {
                failures.push(
                    "tee_tcb_svn",
                    format!("at least {minimum} in every byte"),
                    &claims.tee_tcb_svn,
                );
            }
        }
    }
}
