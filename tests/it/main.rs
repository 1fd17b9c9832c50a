//! The integration tests: the real server on loopback ports, called with the generated
//! clients; the binary for the CLI and store cases. One test binary with a module per
//! area (each links the library once, instead of once per file).
//!
//! Run one area with `cargo test --test it AREA::` (e.g. `spotcheck::`).

mod common;

mod alerts;
mod audit;
mod auth;
mod backup;
mod classification;
mod cli;
mod clock;
mod commitment;
mod docs;
mod durability;
mod families;
mod federated;
mod joint;
mod limits;
mod lists;
mod measures;
mod metrics;
mod operations;
mod python_client;
mod readme;
mod registry;
mod repair;
mod replay;
mod replication;
mod report;
mod rules;
mod social;
mod spotcheck;
mod statistics;
mod tls;
mod validation_props;
mod wire;
