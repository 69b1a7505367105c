//! Compiles `proto/` (authzed.api.v1, arbor.v1 and google.rpc.Status) into Rust with protox and
//! tonic-prost-build, with no system `protoc`, and writes the descriptor set that server
//! reflection serves.

use std::path::PathBuf;

use prost::Message as _;

/// The services Arbor serves; their imports are compiled with them.
const PROTOS: &[&str] = &[
    "authzed/api/v1/permission_service.proto",
    "authzed/api/v1/schema_service.proto",
    "authzed/api/v1/watch_service.proto",
    "authzed/api/v1/error_reason.proto",
    "google/rpc/error_details.proto",
    "arbor/v1/organization.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out_dir.join("authzed_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .include_file("protos.rs")
        .compile_fds(fds)?;
    Ok(())
}
