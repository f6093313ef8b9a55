//! SEV-SNP reports verified per second with the VCEK's chain already verified, next to OpenSSL's and
//! ring's ECDSA P-384 verifications per second, in one run on one core.
//!
//! Once a VCEK's chain has been verified (once per VCEK), verifying a report is one ECDSA P-384
//! signature check and a few comparisons, so the signature check is the ceiling. Three cases, each
//! on one thread:
//! * **appraise** — `Appraiser::appraise` of AMD's genuine Milan report (`tests/fixtures`), its VCEK
//!   in a certificate cache, under the default policy: decoding, the report parsed by the `sev`
//!   crate, the VCEK read from the cache and hashed to find its verified chain, the signature
//!   checked with ring, the VCEK's TCB and hwID against the report, the binding, the policy and
//!   the verdict's digests.
//! * **ring** — ring's ECDSA P-384 SHA-384 verification of the same 0x2A0 signed bytes with the
//!   VCEK's key: the ceiling of this implementation.
//! * **openssl** — `openssl speed -seconds N ecdsap384`, its verify/s column: the reference. The
//!   target is appraise ≥ 0.8× OpenSSL.
//!
//! Rates are per CPU second of the measuring process, as `openssl speed` counts them (user time),
//! so that other work on the machine slows no case more than another; the wall-clock rates of the
//! two in-process cases are printed too.
//!
//! Run with `cargo bench -p prism-attestation --bench verify`. Environment overrides:
//! * `PRISM_BENCH_ROUNDS`: timed rounds (default 5); the median round is reported.
//! * `PRISM_BENCH_SECONDS`: how long each case runs in a round (default 2; fractions allowed;
//!   OpenSSL takes whole seconds, at least 1, and spends as long again on signing first).
//!
//! The first appraisal verifies the VCEK's chain to AMD's root and is timed apart; then each
//! in-process case is warmed up for 0.5 s. Within a round OpenSSL runs between the other two,
//! whose order alternates between rounds, so that a drift of the machine hits every case alike.
//! Without `openssl` the other two are still measured. It exits non-zero only when something
//! fails (a report not verified among them), never because of a ratio.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use prism_attestation::binding::{Binding, Expected};
use prism_attestation::none::NoneVerifier;
use prism_attestation::snp::{SIGNED_LEN, SnpVerifier, VcekCache};
use prism_attestation::{Appraiser, Mode, Outcome, Platform, Policy};
use prism_benchkit::{cores, cpu_model, median, process_cpu_seconds, thousands};
use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use x509_parser::prelude::{FromDer as _, X509Certificate};

const MILAN_REPORT_HEX: &str = include_str!("../tests/fixtures/report_milan.hex");
const MILAN_VCEK: &[u8] = include_bytes!("../tests/fixtures/vcek_milan.der");

const DEFAULT_ROUNDS: usize = 5;
const DEFAULT_SECONDS: f64 = 2.0;
const WARMUP: Duration = Duration::from_millis(500);
const COMMAND: &str = "cargo bench -p prism-attestation --bench verify";
/// The row of `openssl speed ecdsap384`'s table this compares with.
const OPENSSL_ROW: &str = "384 bits ecdsa (nistp384)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Appraise,
    Ring,
    OpenSsl,
}

/// One case's measurement in one round.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Per CPU second of the measuring process.
    cpu: f64,
    /// Per wall-clock second; OpenSSL reports only its CPU rate.
    wall: Option<f64>,
}

/// The Milan report, and the key and signature its VCEK signed it with.
struct Fixture {
    report: Vec<u8>,
    expected: Expected,
    vcek_public_key: Vec<u8>,
    /// r ‖ s, big-endian, 48 bytes each.
    signature: [u8; 96],
}

impl Fixture {
    fn load() -> Result<Self, String> {
        let report = hex::decode(MILAN_REPORT_HEX.trim()).map_err(|e| format!("the report fixture: {e}"))?;
        let (_, vcek) =
            X509Certificate::from_der(MILAN_VCEK).map_err(|e| format!("the VCEK fixture: {e}"))?;
        // The report carries r and s little-endian in 72-byte fields, of which P-384 uses 48.
        let mut signature = [0u8; 96];
        for (index, offset) in [SIGNED_LEN, SIGNED_LEN + 72].into_iter().enumerate() {
            for (i, byte) in report[offset..offset + 48].iter().rev().enumerate() {
                signature[index * 48 + i] = *byte;
            }
        }
        let report_data: [u8; 64] = report[0x50..0x90].try_into().expect("64 bytes");
        Ok(Fixture {
            expected: Expected {
                binding: Binding::StartupCertificate {
                    certificate_sha256: Default::default(),
                },
                report_data,
                eat_nonce: Vec::new(),
            },
            vcek_public_key: vcek.public_key().subject_public_key.data.to_vec(),
            signature,
            report,
        })
    }

    fn ring_verify(&self) -> bool {
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &self.vcek_public_key)
            .verify(&self.report[..SIGNED_LEN], &self.signature)
            .is_ok()
    }
}

/// Runs `operation` until `duration` has passed; it must succeed every time.
fn measure(duration: Duration, mut operation: impl FnMut() -> bool) -> Result<Rate, String> {
    let cpu_before = process_cpu_seconds("self");
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        if !std::hint::black_box(operation()) {
            return Err(format!("operation {count} failed"));
        }
        count += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu_before, process_cpu_seconds("self")) {
        (Some(before), Some(after)) if after > before => after - before,
        _ => wall,
    };
    Ok(Rate {
        cpu: count as f64 / cpu,
        wall: Some(count as f64 / wall),
    })
}

/// `openssl speed -seconds <seconds> ecdsap384`'s verifications per second, or why there are none.
fn openssl_speed(seconds: u64) -> Result<f64, String> {
    let output = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "ecdsap384"])
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl speed failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_openssl_speed(&stdout).ok_or_else(|| format!("no {OPENSSL_ROW:?} row with verify/s in:\n{stdout}"))
}

/// The verify/s column of the P-384 row, located by the table's header.
fn parse_openssl_speed(table: &str) -> Option<f64> {
    let header: Vec<&str> = table
        .lines()
        .find(|line| line.contains("verify/s"))?
        .split_whitespace()
        .collect();
    let column = header.iter().position(|name| *name == "verify/s")?;
    let row = table.lines().find(|line| line.contains(OPENSSL_ROW))?;
    let values: Vec<&str> = row.split_once(')')?.1.split_whitespace().collect();
    if values.len() != header.len() {
        return None;
    }
    values[column].parse().ok()
}

fn openssl_version() -> Option<String> {
    let output = Command::new("openssl").arg("version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn run() -> Result<(), String> {
    let rounds = prism_benchkit::env_count("PRISM_BENCH_ROUNDS", DEFAULT_ROUNDS)?;
    let seconds = prism_benchkit::env_seconds("PRISM_BENCH_SECONDS", DEFAULT_SECONDS)?;
    let duration = Duration::from_secs_f64(seconds);
    let openssl_seconds = seconds.ceil().max(1.0) as u64;

    let fixture = Fixture::load()?;
    let cache_dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let cache = VcekCache::new(cache_dir.path());
    let path = cache.path(&fixture.report[0x1A0..0x1E0], &fixture.report[0x180..0x188]);
    std::fs::create_dir_all(path.parent().expect("a chip directory"))
        .and_then(|()| std::fs::write(&path, MILAN_VCEK))
        .map_err(|e| format!("the certificate cache: {e}"))?;
    let amd = SnpVerifier::amd().map_err(|e| e.to_string())?;
    let none = NoneVerifier::new([]).map_err(|e| e.to_string())?;
    let appraiser = Appraiser::new(Mode::Secure, amd.with_cache(cache), none);
    let policy = Policy::default();
    let appraise = || {
        appraiser
            .appraise(Platform::SevSnp, &fixture.report, &fixture.expected, &policy)
            .outcome
            == Outcome::Verified
    };

    println!("machine: {} cores, {}", cores(), cpu_model());
    println!("command: {COMMAND}");
    let openssl = openssl_version();
    match &openssl {
        Some(version) => println!(
            "reference: {version}, `openssl speed -seconds {openssl_seconds} ecdsap384`, its verify/s column"
        ),
        None => println!("reference: openssl not found; OpenSSL's rate is not measured, the rest is"),
    }
    println!(
        "evidence: AMD's genuine Milan report ({} B), its VCEK from a certificate cache, the default policy",
        thousands(fixture.report.len() as f64)
    );

    let first = Instant::now();
    if !appraise() {
        let verdict = appraiser.appraise(Platform::SevSnp, &fixture.report, &fixture.expected, &policy);
        return Err(format!(
            "the genuine report is not verified: {:?}",
            verdict.failures
        ));
    }
    println!(
        "first appraisal, verifying the VCEK's chain to AMD's root: {:.1} ms",
        first.elapsed().as_secs_f64() * 1e3
    );
    if !fixture.ring_verify() {
        return Err("ring does not verify the report's signature with the VCEK's key".to_owned());
    }
    measure(WARMUP, appraise)?;
    measure(WARMUP, || fixture.ring_verify())?;
    println!(
        "{rounds} rounds of {seconds} s per case after {} ms of warm-up, OpenSSL between the other two; \
         rates per CPU second (wall-clock in brackets)",
        WARMUP.as_millis()
    );
    println!();
    println!(
        "{:<6} {:>22} {:>16} {:>22} {:>16} {:>14}",
        "round", "appraise/s", "openssl verify/s", "ring verify/s", "appraise/openssl", "appraise/ring"
    );

    let mut results: Vec<(Case, Rate)> = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Case::Appraise, Case::OpenSsl, Case::Ring]
        } else {
            [Case::Ring, Case::OpenSsl, Case::Appraise]
        };
        let mut this_round = Vec::new();
        for case in order {
            let rate = match case {
                Case::Appraise => Some(measure(duration, appraise).map_err(|e| format!("appraise: {e}"))?),
                Case::Ring => {
                    Some(measure(duration, || fixture.ring_verify()).map_err(|e| format!("ring: {e}"))?)
                }
                Case::OpenSsl if openssl.is_some() => {
                    let rate = openssl_speed(openssl_seconds)?;
                    Some(Rate {
                        cpu: rate,
                        wall: None,
                    })
                }
                Case::OpenSsl => None,
            };
            if let Some(rate) = rate {
                this_round.push((case, rate));
            }
        }
        let rate = |case| this_round.iter().find(|(c, _)| *c == case).map(|(_, rate)| *rate);
        print_row(
            &(round + 1).to_string(),
            rate(Case::Appraise),
            rate(Case::OpenSsl),
            rate(Case::Ring),
        );
        results.extend(this_round);
    }

    let median_of = |case| {
        let rates: Vec<Rate> = results
            .iter()
            .filter(|(c, _)| *c == case)
            .map(|(_, rate)| *rate)
            .collect();
        let cpu = median(rates.iter().map(|rate| rate.cpu).collect())?;
        let wall = median(rates.iter().filter_map(|rate| rate.wall).collect());
        Some(Rate { cpu, wall })
    };
    let (appraise_rate, openssl_rate, ring_rate) = (
        median_of(Case::Appraise),
        median_of(Case::OpenSsl),
        median_of(Case::Ring),
    );
    print_row("median", appraise_rate, openssl_rate, ring_rate);
    println!();
    if let (Some(appraise), Some(ring)) = (appraise_rate, ring_rate) {
        println!(
            "appraise / ring:    {:.2}× (an appraisal is ring's check and the rest; above 1 is noise)",
            appraise.cpu / ring.cpu
        );
    }
    match (appraise_rate, openssl_rate) {
        (Some(appraise), Some(openssl)) => {
            let ratio = appraise.cpu / openssl.cpu;
            println!(
                "appraise / openssl: {ratio:.2}× (target ≥ 0.80×: {})",
                if ratio >= 0.8 { "met" } else { "NOT met" }
            );
        }
        _ => println!("appraise / openssl: not measured (no openssl)"),
    }
    if let (Some(ring), Some(openssl)) = (ring_rate, openssl_rate) {
        println!("ring / openssl:     {:.2}×", ring.cpu / openssl.cpu);
    }
    Ok(())
}

fn print_row(label: &str, appraise: Option<Rate>, openssl: Option<Rate>, ring: Option<Rate>) {
    let rate = |rate: Option<Rate>| match rate {
        Some(Rate {
            cpu,
            wall: Some(wall),
        }) => format!("{} ({})", thousands(cpu), thousands(wall)),
        Some(Rate { cpu, wall: None }) => thousands(cpu),
        None => "-".to_owned(),
    };
    let ratio = |a: Option<Rate>, b: Option<Rate>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a.cpu / b.cpu),
        _ => "-".to_owned(),
    };
    println!(
        "{label:<6} {:>22} {:>16} {:>22} {:>16} {:>14}",
        rate(appraise),
        rate(openssl),
        rate(ring),
        ratio(appraise, openssl),
        ratio(appraise, ring),
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("verify bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}
