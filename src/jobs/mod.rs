//! Jobs that run beside the services: long, store-wide work with progress.

pub mod batch_scoring;
pub mod deadlines;
pub mod usage;
