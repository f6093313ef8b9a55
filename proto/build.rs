//! Compiles the vendored Cocos `.proto` contracts and Prism's own extension services with pure-Rust
//! `protox` (no system `protoc`) and generates prost messages plus tonic clients/servers.

/// Upstream's contracts, byte-for-byte (`proto/README.md`).
const COCOS_PROTOS: [&str; 4] = [
    "cocos/manager/manager.proto",
    "cocos/agent/cvms/cvms.proto",
    "cocos/agent/agent.proto",
    "cocos/internal/proto/attestation/v1/attestation.proto",
];

/// Prism's services beside upstream's; kept apart so the vendored files stay untouched.
const PRISM_PROTOS: [&str; 1] = ["prism/agent/v1/participant_auth.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    let protos: Vec<&str> = COCOS_PROTOS.iter().chain(PRISM_PROTOS.iter()).copied().collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }

    // `google/protobuf/{empty,timestamp}.proto` are bundled with protox.
    let fds = protox::compile(&protos, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
