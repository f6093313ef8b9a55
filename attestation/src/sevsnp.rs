//! go-sev-guest's `sevsnp` protobuf messages (github.com/google/go-sev-guest `proto/sevsnp.proto`,
//! v0.14.1, the version Cocos v0.10.2 builds with) and its conversions between an
//! `ATTESTATION_REPORT` and `Report` (`abi/abi.go` `ReportToProto`, `ReportToAbiBytes`).
//!
//! The real agent's SEV-SNP evidence is a marshalled `Attestation`: Cocos's
//! `pkg/attestation/vtpm/sev.go:40-85` takes `client.GetQuoteProtoAtLevel` (report parsed into
//! `Report`, the host's certificate table into `CertificateChain`, the CPU's `SevProduct`) and
//! overwrites `vcek_cert`, `ask_cert` and `ark_cert` with the DER of its cached certificates.
//!
//! The messages are declared here with prost's derive rather than generated, so that this crate
//! needs no protobuf compiler; the field numbers and types are the `.proto`'s. prost encodes fields
//! in field-number order, as Go's protobuf does, so the bytes match a Go marshal of the same values.

use std::collections::HashMap;

/// Length of an `ATTESTATION_REPORT` (`abi.ReportSize`).
pub const REPORT_SIZE: usize = 0x4A0;
const SIGNATURE_OFFSET: usize = 0x2A0;
/// `abi.ReportVersion3`: from this version the report carries the CPUID family/model/stepping.
const REPORT_VERSION_3: u32 = 3;
/// `SIGNATURE_ALGO` 1 (`abi.SignEcdsaP384Sha384`); its signature is 144 bytes, the rest zeros.
const SIGN_ECDSA_P384_SHA384: u32 = 1;
const ECDSA_P384_SHA384_SIGNATURE_SIZE: usize = 144;

/// `sevsnp.Report`: an `ATTESTATION_REPORT`'s fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Report {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(uint32, tag = "2")]
    pub guest_svn: u32,
    #[prost(uint64, tag = "3")]
    pub policy: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub family_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub image_id: Vec<u8>,
    #[prost(uint32, tag = "6")]
    pub vmpl: u32,
    #[prost(uint32, tag = "7")]
    pub signature_algo: u32,
    #[prost(uint64, tag = "8")]
    pub current_tcb: u64,
    #[prost(uint64, tag = "9")]
    pub platform_info: u64,
    #[prost(uint32, tag = "10")]
    pub signer_info: u32,
    #[prost(bytes = "vec", tag = "11")]
    pub report_data: Vec<u8>,
    #[prost(bytes = "vec", tag = "12")]
    pub measurement: Vec<u8>,
    #[prost(bytes = "vec", tag = "13")]
    pub host_data: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub id_key_digest: Vec<u8>,
    #[prost(bytes = "vec", tag = "15")]
    pub author_key_digest: Vec<u8>,
    #[prost(bytes = "vec", tag = "16")]
    pub report_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "17")]
    pub report_id_ma: Vec<u8>,
    #[prost(uint64, tag = "18")]
    pub reported_tcb: u64,
    #[prost(bytes = "vec", tag = "19")]
    pub chip_id: Vec<u8>,
    #[prost(uint64, tag = "20")]
    pub committed_tcb: u64,
    #[prost(uint32, tag = "21")]
    pub current_build: u32,
    #[prost(uint32, tag = "22")]
    pub current_minor: u32,
    #[prost(uint32, tag = "23")]
    pub current_major: u32,
    #[prost(uint32, tag = "24")]
    pub committed_build: u32,
    #[prost(uint32, tag = "25")]
    pub committed_minor: u32,
    #[prost(uint32, tag = "26")]
    pub committed_major: u32,
    #[prost(uint64, tag = "27")]
    pub launch_tcb: u64,
    #[prost(bytes = "vec", tag = "28")]
    pub signature: Vec<u8>,
    #[prost(uint32, tag = "29")]
    pub cpuid1eax_fms: u32,
    #[prost(uint64, tag = "30")]
    pub launch_mit_vector: u64,
    #[prost(uint64, tag = "31")]
    pub current_mit_vector: u64,
}

/// `sevsnp.CertificateChain`: DER certificates (field 4 is deprecated upstream and left empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertificateChain {
    #[prost(bytes = "vec", tag = "1")]
    pub vcek_cert: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    pub vlek_cert: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub ask_cert: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub ark_cert: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub firmware_cert: Vec<u8>,
    #[prost(map = "string, bytes", tag = "7")]
    pub extras: HashMap<String, Vec<u8>>,
}

/// `google.protobuf.UInt32Value`, as `SevProduct.machine_stepping` wraps it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UInt32Value {
    #[prost(uint32, tag = "1")]
    pub value: u32,
}

/// `sevsnp.SevProduct.SevProductName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SevProductName {
    Unknown = 0,
    Milan = 1,
    Genoa = 2,
    Turin = 3,
}

/// `sevsnp.SevProduct`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SevProduct {
    #[prost(enumeration = "SevProductName", tag = "1")]
    pub name: i32,
    /// Deprecated upstream; go-sev-guest v0.14.1 fills `machine_stepping` instead.
    #[prost(uint32, tag = "2")]
    pub stepping: u32,
    #[prost(message, optional, tag = "3")]
    pub machine_stepping: Option<UInt32Value>,
}

/// `sevsnp.Attestation`: what Cocos's SEV-SNP provider marshals as its evidence.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attestation {
    #[prost(message, optional, tag = "1")]
    pub report: Option<Report>,
    #[prost(message, optional, tag = "2")]
    pub certificate_chain: Option<CertificateChain>,
    #[prost(message, optional, tag = "3")]
    pub product: Option<SevProduct>,
}

/// Why report bytes and `Report` do not convert.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("an SEV-SNP attestation report is 0x{REPORT_SIZE:x} bytes, got 0x{0:x}")]
    Size(usize),
    #[error("malformed guest policy 0x{0:x}")]
    Policy(u64),
    #[error("malformed signer info 0x{0:x}")]
    SignerInfo(u32),
    #[error("mbz range [0x{lo:x}:0x{hi:x}] not all zero")]
    MustBeZero { lo: usize, hi: usize },
    #[error("report field {field} is {actual} bytes, expect {expected}")]
    FieldSize {
        field: &'static str,
        actual: usize,
        expected: usize,
    },
    #[error("report field {0} must fit in a byte")]
    FieldRange(&'static str),
}

fn u32_at(data: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(data[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(data: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(data[offset..offset + 8].try_into().expect("8 bytes"))
}

fn must_be_zero(data: &[u8], lo: usize, hi: usize) -> Result<(), ReportError> {
    if data[lo..hi].iter().all(|b| *b == 0) {
        Ok(())
    } else {
        Err(ReportError::MustBeZero { lo, hi })
    }
}

/// `abi.ParseSnpPolicy`'s checks: bit 17 is reserved as 1, bits 25–63 must be zero.
fn check_policy(policy: u64) -> Result<(), ReportError> {
    if policy & (1 << 17) == 0 || policy >> 25 != 0 {
        return Err(ReportError::Policy(policy));
    }
    Ok(())
}

/// `abi.ParseSignerInfo`'s checks: bits 5–31 are zero and signing keys 2–6 are reserved.
fn check_signer_info(signer_info: u32) -> Result<(), ReportError> {
    let signing_key = (signer_info >> 2) & 7;
    if signer_info >> 5 != 0 || (2..7).contains(&signing_key) {
        return Err(ReportError::SignerInfo(signer_info));
    }
    Ok(())
}

/// `abi.FmsToCpuid1Eax`: the masked CPUID[1].EAX for a family, model and stepping.
pub fn fms_to_cpuid1_eax(family: u8, model: u8, stepping: u8) -> u32 {
    let (extended_family, family_id) = if family >= 0xF {
        (family - 0xF, 0xF)
    } else {
        (0, family)
    };
    (u32::from(extended_family) << 20)
        | (u32::from(model >> 4) << 16)
        | (u32::from(family_id) << 8)
        | (u32::from(model & 0xF) << 4)
        | u32::from(stepping & 0xF)
}

/// `abi.FmsFromCpuid1Eax`: family, model and stepping of a CPUID[1].EAX value.
pub fn fms_from_cpuid1_eax(eax: u32) -> (u8, u8, u8) {
    let extended_family = ((eax >> 20) & 0xFF) as u8;
    let extended_model = ((eax >> 16) & 0xF) as u8;
    let family_id = ((eax >> 8) & 0xF) as u8;
    let model_id = ((eax >> 4) & 0xF) as u8;
    (
        extended_family.wrapping_add(family_id),
        (extended_model << 4) | model_id,
        (eax & 0xF) as u8,
    )
}

/// `abi.SevProductFromCpuid1Eax`: the product a CPUID[1].EAX names, stepping hidden when unknown.
pub fn sev_product_from_cpuid1_eax(eax: u32) -> SevProduct {
    let (family, model, stepping) = fms_from_cpuid1_eax(eax);
    let name = match (family, model) {
        (0x19, 0x01) => SevProductName::Milan,
        (0x19, 0x11) => SevProductName::Genoa,
        (0x1A, 0x02) => SevProductName::Turin,
        _ => SevProductName::Unknown,
    };
    let stepping = if name == SevProductName::Unknown {
        0
    } else {
        u32::from(stepping)
    };
    SevProduct {
        name: name as i32,
        stepping: 0,
        machine_stepping: Some(UInt32Value { value: stepping }),
    }
}

impl Report {
    /// `abi.ReportToProto`: the fields of an `ATTESTATION_REPORT`, with its must-be-zero checks.
    pub fn from_abi_bytes(data: &[u8]) -> Result<Self, ReportError> {
        if data.len() < REPORT_SIZE {
            return Err(ReportError::Size(data.len()));
        }
        let data = &data[..REPORT_SIZE];
        let mut r = Report {
            version: u32_at(data, 0x00),
            guest_svn: u32_at(data, 0x04),
            policy: u64_at(data, 0x08),
            family_id: data[0x10..0x20].to_vec(),
            image_id: data[0x20..0x30].to_vec(),
            vmpl: u32_at(data, 0x30),
            signature_algo: u32_at(data, 0x34),
            current_tcb: u64_at(data, 0x38),
            platform_info: u64_at(data, 0x40),
            signer_info: u32_at(data, 0x48),
            report_data: data[0x50..0x90].to_vec(),
            measurement: data[0x90..0xC0].to_vec(),
            host_data: data[0xC0..0xE0].to_vec(),
            id_key_digest: data[0xE0..0x110].to_vec(),
            author_key_digest: data[0x110..0x140].to_vec(),
            report_id: data[0x140..0x160].to_vec(),
            report_id_ma: data[0x160..0x180].to_vec(),
            reported_tcb: u64_at(data, 0x180),
            chip_id: data[0x1A0..0x1E0].to_vec(),
            committed_tcb: u64_at(data, 0x1E0),
            current_build: u32::from(data[0x1E8]),
            current_minor: u32::from(data[0x1E9]),
            current_major: u32::from(data[0x1EA]),
            committed_build: u32::from(data[0x1EC]),
            committed_minor: u32::from(data[0x1ED]),
            committed_major: u32::from(data[0x1EE]),
            launch_tcb: u64_at(data, 0x1F0),
            launch_mit_vector: u64_at(data, 0x1F8),
            current_mit_vector: u64_at(data, 0x200),
            signature: data[SIGNATURE_OFFSET..REPORT_SIZE].to_vec(),
            ..Report::default()
        };
        check_policy(r.policy)?;
        check_signer_info(r.signer_info)?;
        must_be_zero(data, 0x4C, 0x50)?;
        let mut mbz_lo = 0x188;
        if r.version >= REPORT_VERSION_3 {
            mbz_lo = 0x18B;
            r.cpuid1eax_fms = fms_to_cpuid1_eax(data[0x188], data[0x189], data[0x18A]);
        }
        must_be_zero(data, mbz_lo, 0x1A0)?;
        must_be_zero(data, 0x1EB, 0x1EC)?;
        must_be_zero(data, 0x1EF, 0x1F0)?;
        must_be_zero(data, 0x208, SIGNATURE_OFFSET)?;
        if r.signature_algo == SIGN_ECDSA_P384_SHA384 {
            must_be_zero(
                data,
                SIGNATURE_OFFSET + ECDSA_P384_SHA384_SIGNATURE_SIZE,
                REPORT_SIZE,
            )?;
        }
        Ok(r)
    }

    /// `abi.ReportToAbiBytes`: the `ATTESTATION_REPORT` these fields stand for — what a verifier
    /// rebuilds to check the signature over bytes 0x000–0x29F.
    pub fn to_abi_bytes(&self) -> Result<Vec<u8>, ReportError> {
        let sizes: [(&'static str, &[u8], usize); 10] = [
            ("family_id", &self.family_id, 16),
            ("image_id", &self.image_id, 16),
            ("report_data", &self.report_data, 64),
            ("measurement", &self.measurement, 48),
            ("host_data", &self.host_data, 32),
            ("id_key_digest", &self.id_key_digest, 48),
            ("author_key_digest", &self.author_key_digest, 48),
            ("report_id", &self.report_id, 32),
            ("report_id_ma", &self.report_id_ma, 32),
            ("chip_id", &self.chip_id, 64),
        ];
        for (field, bytes, expected) in sizes {
            if bytes.len() != expected {
                return Err(ReportError::FieldSize {
                    field,
                    actual: bytes.len(),
                    expected,
                });
            }
        }
        if self.signature.len() != REPORT_SIZE - SIGNATURE_OFFSET {
            return Err(ReportError::FieldSize {
                field: "signature",
                actual: self.signature.len(),
                expected: REPORT_SIZE - SIGNATURE_OFFSET,
            });
        }
        check_signer_info(self.signer_info)?;
        let byte =
            |field: &'static str, value: u32| u8::try_from(value).map_err(|_| ReportError::FieldRange(field));

        let mut data = vec![0u8; REPORT_SIZE];
        let mut put = |offset: usize, bytes: &[u8]| data[offset..offset + bytes.len()].copy_from_slice(bytes);
        put(0x00, &self.version.to_le_bytes());
        put(0x04, &self.guest_svn.to_le_bytes());
        put(0x08, &self.policy.to_le_bytes());
        put(0x10, &self.family_id);
        put(0x20, &self.image_id);
        put(0x30, &self.vmpl.to_le_bytes());
        put(0x34, &self.signature_algo.to_le_bytes());
        put(0x38, &self.current_tcb.to_le_bytes());
        put(0x40, &self.platform_info.to_le_bytes());
        put(0x48, &self.signer_info.to_le_bytes());
        put(0x50, &self.report_data);
        put(0x90, &self.measurement);
        put(0xC0, &self.host_data);
        put(0xE0, &self.id_key_digest);
        put(0x110, &self.author_key_digest);
        put(0x140, &self.report_id);
        put(0x160, &self.report_id_ma);
        put(0x180, &self.reported_tcb.to_le_bytes());
        if self.version >= REPORT_VERSION_3 {
            let (family, model, stepping) = fms_from_cpuid1_eax(self.cpuid1eax_fms);
            put(0x188, &[family, model, stepping]);
        }
        put(0x1A0, &self.chip_id);
        put(0x1E0, &self.committed_tcb.to_le_bytes());
        put(
            0x1E8,
            &[
                byte("current_build", self.current_build)?,
                byte("current_minor", self.current_minor)?,
                byte("current_major", self.current_major)?,
            ],
        );
        put(
            0x1EC,
            &[
                byte("committed_build", self.committed_build)?,
                byte("committed_minor", self.committed_minor)?,
                byte("committed_major", self.committed_major)?,
            ],
        );
        put(0x1F0, &self.launch_tcb.to_le_bytes());
        put(0x1F8, &self.launch_mit_vector.to_le_bytes());
        put(0x200, &self.current_mit_vector.to_le_bytes());
        put(SIGNATURE_OFFSET, &self.signature);
        Ok(data)
    }
}
