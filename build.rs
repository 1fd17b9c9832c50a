//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates the tonic
//! client and server code. The file descriptor set is written to `OUT_DIR` for reflection.
use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["proto/creditrisk/v1", "proto/creditrisk/bench/v1"] {
        files.extend(
            fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "proto")),
        );
    }
    files.sort();
    let fds = protox::compile(&files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("creditrisk_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec with the request guards of `src/wire.rs`.
        .codec_path("crate::wire::GuardedCodec")
        .compile_fds(fds)?;
    Ok(())
}
