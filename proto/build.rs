//! Compiles the vendored Cocos `.proto` contracts with pure-Rust `protox`
//! (no system `protoc`) and generates prost messages plus tonic clients/servers.

const PROTOS: [&str; 4] = [
    "cocos/manager/manager.proto",
    "cocos/agent/cvms/cvms.proto",
    "cocos/agent/agent.proto",
    "cocos/internal/proto/attestation/v1/attestation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    // `google/protobuf/{empty,timestamp}.proto` are bundled with protox.
    let fds = protox::compile(PROTOS, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
