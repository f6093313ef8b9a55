//! Full mutual-TLS handshakes per second over loopback: the revocation-checking verifier (with
//! 10,000 revoked serials) next to rustls's plain WebPKI verifier, and raw ECDSA verification as the
//! reference limit.
//!
//! `cargo bench -p prism-tls --bench handshakes`; `PRISM_BENCH_ROUNDS` rounds (default 5), medians
//! printed. Every handshake is a new TCP connection and a full TLS 1.3 handshake (no resumption on
//! either side); the client waits for one byte the server writes after the handshake, so the server
//! has judged the client's certificate before the next one starts.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use prism_ca::{Authority, CaUrls, KeySource};
use prism_domain::certificate::{Profile, Serial, Subject};
use prism_tls::{
    Alpn, ClientAuth, RevocationCheckingVerifier, RevokedSerials, ServerIdentity, TlsServerConfig,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const REVOKED: usize = 10_000;
/// Concurrent client loops: enough to keep both cores of the machine busy.
const CLIENTS: usize = 4;
/// Each server gets `SLICES` slices of `SLICE` per round.
const SLICE: Duration = Duration::from_millis(250);
const SLICES: usize = 6;
const MICRO_WINDOW: Duration = Duration::from_millis(300);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn main() {
    let rounds: usize = std::env::var("PRISM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (authority, _) = Authority::create(CaUrls::under("https://prism.test"), Utc::now()).unwrap();
    let root = CertificateDer::from(authority.root_der().to_vec());
    let intermediate = CertificateDer::from(authority.intermediate_der().to_vec());
    let server_subject = Subject {
        common_name: "prism-cvms".into(),
        dns_names: vec!["localhost".into()],
        ..Default::default()
    };
    let server = authority
        .issue(
            Profile::Service,
            &server_subject,
            30 * DAY,
            KeySource::Generate,
            Utc::now(),
        )
        .unwrap();
    let server_chain_pem = server.pem.clone() + &authority.intermediate_pem();
    let server_key_pem = server.private_key_pem.clone().unwrap();
    let client_subject = Subject {
        common_name: "cvm-bench".into(),
        ..Default::default()
    };
    let client = authority
        .issue(
            Profile::AgentClient,
            &client_subject,
            7 * DAY,
            KeySource::Generate,
            Utc::now(),
        )
        .unwrap();
    let client_chain = vec![CertificateDer::from(client.der.clone()), intermediate.clone()];
    let client_key =
        PrivateKeyDer::from_pem_slice(client.private_key_pem.as_ref().unwrap().as_bytes()).unwrap();

    // 10,000 revoked serials of the platform's shape (16 random-looking octets), none the client's.
    let revoked = RevokedSerials::with((0..REVOKED as u64).map(|i| {
        let mut bytes = [0x5a; 16];
        bytes[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        Serial::from_bytes(&bytes).unwrap()
    }));
    assert_eq!(revoked.len(), REVOKED);

    let checked = TlsServerConfig::new(
        ServerIdentity::from_pem(&server_chain_pem, &server_key_pem).unwrap(),
        ClientAuth::Required {
            roots: vec![root.clone()],
            revoked: Arc::clone(&revoked),
        },
        Alpn::Http2,
    )
    .unwrap();
    let checked = Arc::clone(checked.rustls());
    let plain = plain_config(&root, &server_chain_pem, &server_key_pem);
    // The same verifier trusting the intermediate instead of the root: the client's chain then ends
    // at a P-256 anchor and the P-384 root signature is never checked.
    let anchored = TlsServerConfig::new(
        ServerIdentity::from_pem(&server_chain_pem, &server_key_pem).unwrap(),
        ClientAuth::Required {
            roots: vec![intermediate.clone()],
            revoked: Arc::clone(&revoked),
        },
        Alpn::Http2,
    )
    .unwrap();
    let anchored = Arc::clone(anchored.rustls());
    let client_config = client_config(&root, client_chain.clone(), client_key.clone_key());

    let (checked_addr, plain_addr, anchored_addr) = runtime.block_on(async {
        (
            start_server(Arc::clone(&checked)).await,
            start_server(Arc::clone(&plain)).await,
            start_server(Arc::clone(&anchored)).await,
        )
    });

    // The verifiers alone, called as rustls calls them.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let wrapped = RevocationCheckingVerifier::new(
        std::slice::from_ref(&root),
        Arc::clone(&revoked),
        Arc::clone(&provider),
    )
    .unwrap();
    let mut store = RootCertStore::empty();
    store.add(root.clone()).unwrap();
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .unwrap();

    let (p256_message, p256_signature, p256_public) = signed(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
    let (p384_message, p384_signature, p384_public) = signed(&signature::ECDSA_P384_SHA384_ASN1_SIGNING);

    let mut results: Vec<[f64; 8]> = Vec::new();
    for round in 0..rounds {
        // Short slices, interleaved, so that the three servers see the same background load (the
        // machine is shared; whole-window runs one after the other swung by 2x between rounds).
        let [checked_rate, plain_rate, anchored_rate] = runtime.block_on(interleaved([
            (checked_addr, &client_config),
            (plain_addr, &client_config),
            (anchored_addr, &client_config),
        ]));
        let now = UnixTime::now();
        // What the wrapper adds to WebPKI, alone: parse the end entity, read the set.
        let lookup = rate(|| {
            let (_, parsed) = x509_parser::parse_x509_certificate(black_box(&client_chain[0])).unwrap();
            assert!(!revoked.is_revoked_bytes(parsed.raw_serial()));
        });
        let wrapped_rate = rate(|| {
            wrapped
                .verify_client_cert(&client_chain[0], &client_chain[1..], now)
                .unwrap();
        });
        let webpki_rate = rate(|| {
            webpki
                .verify_client_cert(&client_chain[0], &client_chain[1..], now)
                .unwrap();
        });
        let p256 = rate(|| {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &p256_public)
                .verify(black_box(&p256_message), &p256_signature)
                .unwrap();
        });
        let p384 = rate(|| {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, &p384_public)
                .verify(black_box(&p384_message), &p384_signature)
                .unwrap();
        });
        println!(
            "round {}: handshakes/s checked {checked_rate:.0}, plain {plain_rate:.0}, anchored at the intermediate {anchored_rate:.0}; verify_client_cert/s wrapped {wrapped_rate:.0}, webpki {webpki_rate:.0}; look-ups/s {lookup:.0}; ECDSA verify/s P-256 {p256:.0}, P-384 {p384:.0}",
            round + 1
        );
        results.push([
            checked_rate,
            plain_rate,
            wrapped_rate,
            webpki_rate,
            p256,
            p384,
            anchored_rate,
            lookup,
        ]);
    }

    let median = |i: usize| {
        let mut values: Vec<f64> = results.iter().map(|r| r[i]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (checked_rate, plain_rate) = (median(0), median(1));
    let (wrapped_rate, webpki_rate) = (median(2), median(3));
    println!();
    println!(
        "medians over {rounds} rounds ({CLIENTS} concurrent clients, TLS 1.3, P-256 leaves, P-384 root, 2 runtime workers):"
    );
    println!("  full mTLS handshakes/s, revocation-checking verifier ({REVOKED} revoked): {checked_rate:.0}");
    println!("  full mTLS handshakes/s, plain WebPkiClientVerifier:                    {plain_rate:.0}");
    // Paired per round (both measured under the same load), then the median.
    let mut ratios: Vec<f64> = results.iter().map(|r| r[0] / r[1]).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "  ratio checked/plain (median of the rounds' ratios): {:.3}",
        ratios[ratios.len() / 2]
    );
    println!(
        "  full mTLS handshakes/s, revocation-checking verifier anchored at the P-256 intermediate: {:.0}",
        median(6)
    );
    println!(
        "  revocation look-up alone (parse the end entity, read the set): {:.0}/s ({:.2} µs)",
        median(7),
        1e6 / median(7)
    );
    println!(
        "  verify_client_cert alone: wrapped {wrapped_rate:.0}/s ({:.0} µs), webpki {webpki_rate:.0}/s ({:.0} µs); the look-up is {:.1}% of it",
        1e6 / wrapped_rate,
        1e6 / webpki_rate,
        100.0 * webpki_rate / median(7)
    );
    println!(
        "  raw ECDSA verify/s (ring, one core): P-256 {:.0}, P-384 {:.0}",
        median(4),
        median(5)
    );
}

/// rustls's WebPKI verifier alone, otherwise configured as `TlsServerConfig` does.
fn plain_config(root: &CertificateDer<'static>, chain_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = Alpn::Http2.protocols();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

fn client_config(
    root: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = Alpn::Http2.protocols();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A bare TLS server: handshake, one byte, close.
async fn start_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"k").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Handshakes per second against each server, measured in `SLICES` slices taken in turn.
async fn interleaved<const N: usize>(servers: [(SocketAddr, &Arc<ClientConfig>); N]) -> [f64; N] {
    let mut done = [0u64; N];
    let mut time = [Duration::ZERO; N];
    for slice in 0..SLICES {
        for offset in 0..N {
            // Rotate who goes first in each slice.
            let i = (slice + offset) % N;
            let (count, elapsed) = handshakes(servers[i].0, servers[i].1).await;
            done[i] += count;
            time[i] += elapsed;
        }
    }
    std::array::from_fn(|i| done[i] as f64 / time[i].as_secs_f64())
}

/// Completed handshakes during one slice, from `CLIENTS` loops, and the time they took.
async fn handshakes(addr: SocketAddr, config: &Arc<ClientConfig>) -> (u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let connector = TlsConnector::from(Arc::clone(config));
    let started = Instant::now();
    let loops: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, stop, connector) = (Arc::clone(&done), Arc::clone(&stop), connector.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let tcp = TcpStream::connect(addr).await.unwrap();
                    tcp.set_nodelay(true).unwrap();
                    let mut tls = connector
                        .connect(ServerName::try_from("localhost").unwrap(), tcp)
                        .await
                        .unwrap();
                    let mut byte = [0u8; 1];
                    tls.read_exact(&mut byte)
                        .await
                        .expect("the server accepted the client");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(SLICE).await;
    stop.store(true, Ordering::Relaxed);
    for handle in loops {
        handle.await.unwrap();
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

/// Calls per second of `f` on this thread.
fn rate(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < MICRO_WINDOW {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// A message, its signature and the public key, for the algorithm `algorithm`.
fn signed(algorithm: &'static signature::EcdsaSigningAlgorithm) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &random).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &random).unwrap();
    let message = b"TLS 1.3, server CertificateVerify: a transcript hash stands here".to_vec();
    let signature = key.sign(&random, &message).unwrap().as_ref().to_vec();
    (message, signature, key.public_key().as_ref().to_vec())
}
