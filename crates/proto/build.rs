//! Compiles `proto/` with protox (pure Rust, no `protoc` on the machine) and
//! generates the tonic client and server plus a descriptor set for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it was compiled: checkouts that
    // share a target directory share this script's binary.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        root.join("passare/imports/v1/imports.proto"),
        root.join("passare/imports/v1/profiles.proto"),
        root.join("passare/imports/events/v1/record_event.proto"),
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    // The files themselves too: a directory alone was seen not to trigger a
    // rebuild after a merge changed a file.
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out.join("passare_imports_v1_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
