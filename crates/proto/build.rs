//! Compile `proto/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["bootstrap.proto", "nameserver.proto", "node.proto"];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", dir.join(proto).display());
    }
    let descriptors = protox::compile(protos, [&dir])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
