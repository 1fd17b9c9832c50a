//! The pure domain: codes, records and rules. Knows nothing of sled or tonic.
//!
//! Every type here validates itself on construction, so a value that exists is valid.

pub mod alert;
pub mod calendar;
pub mod checkitem;
pub mod clock;
pub mod codes;
pub mod commitment;
pub mod date;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod joint;
pub mod measures;
pub mod model;
pub mod parallel;
pub mod period;
pub mod records;
pub mod repair;
pub mod rules;
pub mod ruleset;
pub mod sampler;
pub mod scoring;
pub mod spotcheck;
pub mod stats;
pub mod uscc;

pub use clock::Clock;
pub use codes::{IndustryCode, RegionCode};
pub use date::Date;
pub use model::{Centi, Indicator, Model, RiskClass};
pub use records::*;
pub use uscc::Uscc;

/// A domain rule was broken by the input. `field` names the offending field as the
/// client spelled it (e.g. `penalty.fine_fen`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DomainError {
    /// Path of the offending field.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

impl DomainError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with its field nested under `prefix` (`prefix.field`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}
