//! Compile `proto/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["bootstrap.proto", "nameserver.proto", "node.proto"];
    // The folder as cargo gives it when the script runs, not as it was when the script was
    // compiled: cargo may reuse a compiled build script for a checkout in another folder.
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", dir.join(proto).display());
    }
    let descriptors = protox::compile(protos, [&dir])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
