//! credit-risk: enterprise credit records, risk classes and spot-check answers for
//! market regulators, served over gRPC from an embedded sled store.
//!
//! # Layout
//! - [`domain`]: pure types and rules (USCC, records, publicity, annual-report sweep);
//!   no sled, no tonic.
//! - [`store`]: owns sled: keyspaces, key and value encodings, indexes, the group-commit
//!   writer, schema version.
//! - [`service`]: thin gRPC handlers: proto ↔ domain, error → status.
//! - [`server`]: builds the tonic server (health, reflection, limits, shutdown).
//! - [`config`]: configuration file, environment and flags.
//! - [`generate`]: deterministic synthetic registry data.
//! - [`client`]: client-side commands (import).
//! - [`demo`]: `serve --demo` data.
//! - [`proto`]: generated code of `proto/creditrisk/v1`.
//! - [`apidoc`]: `docs/API.md` generated from the proto doc comments.

pub mod apidoc;
pub mod auth;
pub mod bench;
pub mod bench_suite;
pub mod client;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod demo;
pub mod domain;
pub mod error;
pub mod fault;
pub mod generate;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod operator;
pub mod report;
pub mod server;
pub mod service;
pub mod store;
pub mod wire;

/// Generated protobuf and gRPC code of package `creditrisk.v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("creditrisk.v1");

    /// Encoded file descriptor set of every `.proto` (for reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/creditrisk_descriptor.bin"));
}

/// The benchmark-only echo service (baseline for unary throughput).
pub mod bench_proto {
    tonic::include_proto!("creditrisk.bench.v1");
}

pub use error::{Error, Result};
