//! credit-risk: enterprise credit records, risk classes and spot-check answers for
//! market regulators, served over gRPC from an embedded sled store.
//!
//! The library is what the server and a Rust client need; the `credit-risk` binary's
//! command-line tools and benchmarks live beside it (`src/cli/`, `src/bench/`), not in it.
//!
//! # Layout
//! - [`domain`]: pure types and rules (USCC, records, rules, scoring model, draw, repair
//!   state machine, working-day calendar, clock); no sled, no tonic.
//! - [`store`]: owns sled: keyspaces, key and value encodings, indexes, the group-commit
//!   writer, schema version, seal, backup.
//! - [`jobs`]: work beside the services (batch scoring).
//! - [`replication`]: the replicated mode: writes through a NATS JetStream log, applied
//!   by every replica in order.
//! - [`server`]: the gRPC server: configuration, services (proto ↔ domain, error →
//!   status), auth, limits, deadlines, metrics, connection and message guards, demo data.
//! - [`client`]: connecting to a server from Rust (address, token, TLS).
//! - [`synthetic`]: deterministic synthetic registry data (demo, `generate`, benchmarks).
//! - [`proto`]: generated code of `proto/creditrisk/v1`.
//! - [`fault`]: failpoints for the durability tests (`CREDIT_RISK_FAULT`).

pub mod client;
pub mod domain;
pub mod error;
pub mod fault;
pub mod jobs;
pub mod replication;
pub mod server;
pub mod store;
pub mod synthetic;

/// Generated protobuf and gRPC code of package `creditrisk.v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("creditrisk.v1");

    /// Encoded file descriptor set of every `.proto` (for reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/creditrisk_descriptor.bin"));
}

pub use error::{Error, Result};
