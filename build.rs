//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates the tonic
//! client and server code. The file descriptor set of `creditrisk.v1` is written to
//! `OUT_DIR` for reflection; the benchmark's echo service (`creditrisk.bench.v1`) is
//! generated for the `credit-risk` binary only.
use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let api = protox::compile(proto_files("proto/creditrisk/v1")?, ["proto"])?;
    fs::write(out.join("creditrisk_descriptor.bin"), api.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec with the request guards of `src/server/wire.rs`.
        .codec_path("crate::server::wire::GuardedCodec")
        .compile_fds(api)?;
    // The echo baseline of `credit-risk bench` uses the same codec as the real services,
    // reached from the binary through the library.
    let bench = protox::compile(proto_files("proto/creditrisk/bench/v1")?, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("credit_risk::server::wire::GuardedCodec")
        .compile_fds(bench)?;
    Ok(())
}

/// The `.proto` files of `dir`, sorted.
fn proto_files(dir: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    Ok(files)
}
