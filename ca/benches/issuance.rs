//! Signing rate of the certificate authority, pure CPU on one thread: `Authority::issue` next to what
//! it cannot beat, ring's own P-256 operations, in one run.
//!
//! * **Generated key** — `Authority::issue(Profile::AgentServer, …, KeySource::Generate, now)`: the
//!   profile check, a random serial, a new P-256 key (PKCS#8 PEM handed back), the certificate built
//!   and signed by the P-256 intermediate. Its limit is **raw keygen + sign**: ring's
//!   `EcdsaKeyPair::generate_pkcs8` + `from_pkcs8` (what rcgen does to make a key) + one ECDSA P-256
//!   SHA-256 signature of a message as long as the certificate's TBS. The ratio issue/raw is what
//!   building and encoding a certificate costs on top of the two unavoidable EC operations.
//! * **CSR** — `prism_ca::read_csr` (PEM, parse, verify the CSR's signature, check the extensions it
//!   asks for) of a CSR made once with rcgen, then `Authority::issue(…, KeySource::PublicKey(&spki),
//!   …)`. Its limit is **raw sign**: one ECDSA P-256 SHA-256 signature. For information, the same issue
//!   without `read_csr` (its cost is then the difference), and **raw verify + sign** (one ring P-256
//!   verification and one signature: the two EC operations the CSR path cannot avoid).
//!
//! Run with `cargo bench -p prism-ca --bench issuance`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds per case (default 5); the median round is reported.
//! * `PRISM_BENCH_SECONDS`: about how long one round of one case takes (default 1; fractions allowed),
//!   sized from a 0.5 s warm-up of that case.
//!
//! The cases run in turn within a round and the order is reversed every other round, so a drift of the
//! machine hits every case alike. Everything runs on the main thread. It exits non-zero only when
//! something fails, never because a ratio misses a target.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::Utc;
use prism_benchkit::{cores, cpu_model, median, thousands};
use prism_ca::{Authority, CaUrls, KeySource, read_csr};
use prism_domain::certificate::{Profile, Subject};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey,
};

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_SECONDS: f64 = 1.0;
const WARMUP: Duration = Duration::from_millis(500);
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug)]
struct Settings {
    rounds: usize,
    seconds: f64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let rounds =
            prism_benchkit::env_count("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS).map_err(anyhow::Error::msg)?;
        let seconds = prism_benchkit::env_seconds("PRISM_BENCH_SECONDS", DEFAULT_SECONDS)
            .map_err(anyhow::Error::msg)?;
        Ok(Self { rounds, seconds })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    RawKeygenSign,
    IssueGenerated,
    RawSign,
    IssueCsr,
    RawVerifySign,
    IssuePublicKey,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::RawKeygenSign,
        Case::IssueGenerated,
        Case::RawSign,
        Case::IssueCsr,
        Case::RawVerifySign,
        Case::IssuePublicKey,
    ];

    fn label(self) -> &'static str {
        match self {
            Case::RawKeygenSign => "raw: P-256 keygen + 1 sign (ring)",
            Case::IssueGenerated => "issue, generated key",
            Case::RawSign => "raw: 1 ECDSA P-256 sign (ring)",
            Case::IssueCsr => "CSR: read_csr + issue(PublicKey)",
            Case::RawVerifySign => "raw: 1 verify + 1 sign (ring)",
            Case::IssuePublicKey => "issue(PublicKey), no read_csr",
        }
    }

    /// The case this one is compared with, and whether the comparison is only for information.
    fn limit(self) -> Option<(Case, bool)> {
        match self {
            Case::IssueGenerated => Some((Case::RawKeygenSign, false)),
            Case::IssueCsr => Some((Case::RawSign, false)),
            Case::IssuePublicKey => Some((Case::RawSign, true)),
            Case::RawKeygenSign | Case::RawSign | Case::RawVerifySign => None,
        }
    }
}

/// Everything the cases work with, made once.
struct Bench {
    authority: Authority,
    subject: Subject,
    csr_pem: String,
    /// The SubjectPublicKeyInfo of the CSR's key, for the case without `read_csr`.
    spki: Vec<u8>,
    random: SystemRandom,
    /// The key the raw-sign case signs with (ring, P-256), and a message as long as a TBSCertificate.
    raw_key: EcdsaKeyPair,
    message: Vec<u8>,
    /// `raw_key`'s signature of `message` and its public key, for the raw verification.
    signature: Vec<u8>,
    public_key: Vec<u8>,
}

impl Bench {
    fn new() -> anyhow::Result<Self> {
        let now = Utc::now();
        let (authority, _) = Authority::create(CaUrls::under("https://prism.example.org"), now)?;
        let subject = Subject {
            common_name: "cvm-7".into(),
            dns_names: vec!["cvm-7.prism.internal".into()],
            ip_addresses: vec!["10.0.0.7".parse::<IpAddr>()?],
            ..Default::default()
        };

        // A CSR for the same names, made once with rcgen.
        let csr_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(subject.dns_names.clone())?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(subject.ip_addresses[0]));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, subject.common_name.clone());
        let csr_pem = params.serialize_request(&csr_key)?.pem()?;
        let read = read_csr(csr_pem.as_bytes(), Profile::AgentServer)?;
        ensure!(
            read.subject == subject,
            "the CSR reads back as {:?}",
            read.subject
        );

        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random)
            .map_err(|_| anyhow::anyhow!("ring: P-256 key generation failed"))?;
        let raw_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random)
            .map_err(|_| anyhow::anyhow!("ring: the generated key does not load"))?;

        // The raw signature covers as many bytes as the issuer signs: an issued certificate's TBS.
        let sample = authority.issue(Profile::AgentServer, &subject, LIFETIME, KeySource::Generate, now)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&sample.der)
            .map_err(|e| anyhow::anyhow!("an issued certificate does not parse: {e}"))?;
        let message = parsed.tbs_certificate.as_ref().to_vec();
        let signature = raw_key
            .sign(&random, &message)
            .map_err(|_| anyhow::anyhow!("ring: signing failed"))?
            .as_ref()
            .to_vec();
        let public_key = raw_key.public_key().as_ref().to_vec();

        Ok(Self {
            authority,
            subject,
            csr_pem,
            spki: read.public_key,
            random,
            raw_key,
            message,
            signature,
            public_key,
        })
    }

    /// One operation of `case`.
    fn once(&self, case: Case) -> anyhow::Result<()> {
        match case {
            Case::RawKeygenSign => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.random)
                    .map_err(|_| anyhow::anyhow!("ring: P-256 key generation failed"))?;
                let key =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &self.random)
                        .map_err(|_| anyhow::anyhow!("ring: the generated key does not load"))?;
                let signature = key
                    .sign(&self.random, &self.message)
                    .map_err(|_| anyhow::anyhow!("ring: signing failed"))?;
                black_box((pkcs8, signature));
            }
            Case::RawSign => {
                let signature = self
                    .raw_key
                    .sign(&self.random, &self.message)
                    .map_err(|_| anyhow::anyhow!("ring: signing failed"))?;
                black_box(signature);
            }
            Case::RawVerifySign => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&self.public_key))
                    .verify(&self.message, black_box(&self.signature))
                    .map_err(|_| anyhow::anyhow!("ring: the signature does not verify"))?;
                let signature = self
                    .raw_key
                    .sign(&self.random, &self.message)
                    .map_err(|_| anyhow::anyhow!("ring: signing failed"))?;
                black_box(signature);
            }
            Case::IssueGenerated => {
                let issued = self.authority.issue(
                    Profile::AgentServer,
                    &self.subject,
                    LIFETIME,
                    KeySource::Generate,
                    Utc::now(),
                )?;
                black_box(issued);
            }
            Case::IssueCsr => {
                let read = read_csr(black_box(self.csr_pem.as_bytes()), Profile::AgentServer)?;
                let issued = self.authority.issue(
                    Profile::AgentServer,
                    &read.subject,
                    LIFETIME,
                    KeySource::PublicKey(&read.public_key),
                    Utc::now(),
                )?;
                black_box(issued);
            }
            Case::IssuePublicKey => {
                let issued = self.authority.issue(
                    Profile::AgentServer,
                    &self.subject,
                    LIFETIME,
                    KeySource::PublicKey(black_box(&self.spki)),
                    Utc::now(),
                )?;
                black_box(issued);
            }
        }
        Ok(())
    }

    /// `n` operations of `case`; their rate per second.
    fn round(&self, case: Case, n: usize) -> anyhow::Result<f64> {
        let start = Instant::now();
        for _ in 0..n {
            self.once(case)?;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// Runs `case` for [`WARMUP`]; its rate per second.
    fn warm_up(&self, case: Case) -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < WARMUP {
            self.once(case)?;
            done += 1;
        }
        Ok(done as f64 / start.elapsed().as_secs_f64())
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let bench = Bench::new()?;
    let sample = bench.authority.issue(
        Profile::AgentServer,
        &bench.subject,
        LIFETIME,
        KeySource::Generate,
        Utc::now(),
    )?;

    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "one thread; {} rounds per case of about {} s, cases interleaved (order reversed every other round); median round reported",
        settings.rounds, settings.seconds
    );
    println!(
        "issued certificate {} B DER ({} B signed TBS, {} B PEM key); CSR {} B PEM; profile agent_server, 1 DNS + 1 IP name",
        sample.der.len(),
        bench.message.len(),
        sample.private_key_pem.as_ref().map_or(0, |k| k.len()),
        bench.csr_pem.len(),
    );

    let mut planned = Vec::new();
    for case in Case::ALL {
        let rate = bench.warm_up(case)?;
        planned.push((case, ((rate * settings.seconds) as usize).max(10)));
    }
    let n_of = |case: Case| planned.iter().find(|(c, _)| *c == case).map_or(10, |(_, n)| *n);

    let mut rounds: Vec<(Case, f64)> = Vec::new();
    for r in 0..settings.rounds {
        let mut order = Case::ALL.to_vec();
        if r % 2 == 1 {
            order.reverse();
        }
        for case in order {
            rounds.push((case, bench.round(case, n_of(case))?));
        }
    }
    let rates_of = |case: Case| -> Vec<f64> {
        rounds
            .iter()
            .filter(|(c, _)| *c == case)
            .map(|(_, r)| *r)
            .collect()
    };
    let median_of = |case: Case| median(rates_of(case)).unwrap_or(f64::NAN);

    println!();
    println!(
        "{:<36} {:>10} {:>9} {:>7}   compared with",
        "case", "per second", "µs each", "ratio"
    );
    for case in Case::ALL {
        let rate = median_of(case);
        let (ratio, against) = match case.limit() {
            Some((limit, information)) => (
                format!("{:.2}", rate / median_of(limit)),
                format!(
                    "{}{}",
                    limit.label(),
                    if information { " (information)" } else { "" }
                ),
            ),
            None if case == Case::RawVerifySign => (
                "1.00".to_owned(),
                "(limit with the CSR's verification; information)".to_owned(),
            ),
            None => ("1.00".to_owned(), "(limit)".to_owned()),
        };
        println!(
            "{:<36} {:>10} {:>9.1} {:>7}   {against}",
            case.label(),
            thousands(rate),
            1e6 / rate,
            ratio,
        );
    }
    let per = |case: Case| 1e6 / median_of(case);
    println!(
        "cost beyond the limit, µs: generated key {:.1}; CSR {:.1}, of which read_csr {:.1}",
        per(Case::IssueGenerated) - per(Case::RawKeygenSign),
        per(Case::IssueCsr) - per(Case::RawSign),
        per(Case::IssueCsr) - per(Case::IssuePublicKey),
    );
    println!(
        "CSR path against raw verify + sign (information): {:.2}",
        median_of(Case::IssueCsr) / median_of(Case::RawVerifySign)
    );
    println!("rounds, per second in run order:");
    for case in Case::ALL {
        let rates: Vec<String> = rates_of(case).into_iter().map(thousands).collect();
        println!(
            "  {:<36} {}   ({} each)",
            case.label(),
            rates.join(" "),
            thousands(n_of(case) as f64)
        );
    }
    Ok(())
}
