//! Shared fixtures: AMD's genuine Milan evidence, and a test-only chain that signs reports with
//! whatever fields a test needs.
#![allow(dead_code)]

use prism_attestation::binding::{Binding, Expected};
use prism_attestation::evidence::{Evidence, EvidenceKind, SnpCertificates};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SigningKey as _,
};

pub const MILAN_REPORT_HEX: &str = include_str!("../fixtures/report_milan.hex");
pub const MILAN_VCEK: &[u8] = include_bytes!("../fixtures/vcek_milan.der");
pub const COCOS_REPORT: &[u8] = include_bytes!("../fixtures/cocos_attestation.bin");

pub const REPORT_LEN: usize = 0x4A0;
pub const SIGNED_LEN: usize = 0x2A0;

/// The genuine Milan report's bytes.
pub fn milan_report() -> Vec<u8> {
    hex::decode(MILAN_REPORT_HEX.trim()).expect("the fixture is hex")
}

/// What the genuine report carries, taken as what was asked for (it was made for another verifier's
/// request, so the binding here is the report's own data).
pub fn expected_for(report: &[u8]) -> Expected {
    let report_data: [u8; 64] = report[0x50..0x90].try_into().unwrap();
    Expected {
        binding: Binding::StartupCertificate {
            certificate_sha256: Default::default(),
        },
        report_data,
        eat_nonce: Vec::new(),
    }
}

/// Bare SEV-SNP evidence with the VCEK sent along.
pub fn snp_evidence(report: Vec<u8>, vcek: &[u8]) -> Evidence {
    Evidence {
        kind: EvidenceKind::Snp,
        eat_nonce: None,
        report,
        snp_certificates: Some(SnpCertificates {
            ark: Vec::new(),
            ask: Vec::new(),
            vcek: vcek.to_vec(),
        }),
    }
}

/// A test-only ARK → ASK → VCEK chain, all ECDSA P-384, whose VCEK may carry AMD's TCB and hwID
/// extensions.
pub struct TestChain {
    pub ark_der: Vec<u8>,
    pub ask_der: Vec<u8>,
    pub vcek_der: Vec<u8>,
    vcek_key: KeyPair,
}

fn params(name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    }
    params
}

fn der_integer(value: u8) -> Vec<u8> {
    if value < 0x80 {
        vec![0x02, 1, value]
    } else {
        vec![0x02, 2, 0, value]
    }
}

fn oid(text: &str) -> Vec<u64> {
    text.split('.').map(|part| part.parse().unwrap()).collect()
}

impl TestChain {
    /// `vcek_tcb`: (bootloader, tee, snp, microcode) written as AMD's extensions; `hardware_id`
    /// likewise.
    pub fn new(vcek_tcb: Option<[u8; 4]>, hardware_id: Option<[u8; 64]>) -> Self {
        let ark = CertifiedIssuer::self_signed(
            params("TEST ARK", true),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
        )
        .unwrap();
        let ask = CertifiedIssuer::signed_by(
            params("TEST ASK", true),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
            &ark,
        )
        .unwrap();
        let vcek_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut vcek_params = params("TEST VCEK", false);
        if let Some([bootloader, tee, snp, microcode]) = vcek_tcb {
            for (suffix, value) in [("1", bootloader), ("2", tee), ("3", snp), ("8", microcode)] {
                vcek_params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        &oid(&format!("1.3.6.1.4.1.3704.1.3.{suffix}")),
                        der_integer(value),
                    ));
            }
        }
        if let Some(hardware_id) = hardware_id {
            let mut content = vec![0x04, 64];
            content.extend_from_slice(&hardware_id);
            vcek_params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &oid("1.3.6.1.4.1.3704.1.4"),
                    content,
                ));
        }
        let vcek = vcek_params.signed_by(&vcek_key, &ask).unwrap();
        TestChain {
            ark_der: ark.der().to_vec(),
            ask_der: ask.der().to_vec(),
            vcek_der: vcek.der().to_vec(),
            vcek_key,
        }
    }

    pub fn certificates(&self) -> SnpCertificates {
        SnpCertificates {
            ark: self.ark_der.clone(),
            ask: self.ask_der.clone(),
            vcek: self.vcek_der.clone(),
        }
    }

    /// Signs `report` in place with the VCEK (r and s little-endian in 72-byte fields).
    pub fn sign(&self, report: &mut [u8]) {
        let der = self.vcek_key.sign(&report[..SIGNED_LEN]).unwrap();
        let (r, s) = scalars(&der);
        report[SIGNED_LEN..].fill(0);
        for (offset, scalar) in [(SIGNED_LEN, r), (SIGNED_LEN + 72, s)] {
            for (i, byte) in scalar.iter().rev().enumerate() {
                report[offset + i] = *byte;
            }
        }
    }

    pub fn evidence(&self, report: Vec<u8>, eat_nonce: Option<Vec<u8>>) -> Evidence {
        Evidence {
            kind: EvidenceKind::Snp,
            eat_nonce,
            report,
            snp_certificates: Some(self.certificates()),
        }
    }
}

/// A plausible report (version 2, Milan layout) carrying `report_data`, not yet signed.
pub fn report_template(report_data: &[u8; 64]) -> Vec<u8> {
    let mut report = vec![0u8; REPORT_LEN];
    let mut put = |offset: usize, bytes: &[u8]| report[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(0x000, &2u32.to_le_bytes());
    put(0x008, &0x3_0000u64.to_le_bytes());
    put(0x034, &1u32.to_le_bytes());
    let tcb = [3, 0, 0, 0, 0, 0, 8, 115];
    put(0x038, &tcb);
    put(0x050, report_data);
    put(0x090, &[0xAB; 48]);
    put(0x180, &tcb);
    put(0x1A0, &[0xC1; 64]);
    put(0x1E0, &tcb);
    put(0x1E8, &[4, 52, 1]);
    put(0x1EC, &[4, 52, 1]);
    put(0x1F0, &tcb);
    report
}

fn scalars(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    // SEQUENCE { INTEGER r, INTEGER s } with short lengths (P-384 signatures are < 128 bytes).
    assert_eq!(der[0], 0x30);
    let body = &der[2..];
    let integer = |bytes: &[u8]| {
        assert_eq!(bytes[0], 0x02);
        let len = bytes[1] as usize;
        let value: Vec<u8> = bytes[2..2 + len]
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        (value, 2 + len)
    };
    let (r, used) = integer(body);
    let (s, _) = integer(&body[used..]);
    (r, s)
}

/// A tiny deterministic generator for the mutation tests (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}
