//! Test fixtures shared by the domain's unit tests: one plain enterprise, listing and
//! penalty, which each test adjusts with struct-update syntax or by mutation.

use super::{
    Date, Enterprise, EnterpriseRecords, EnterpriseStatus, EntityType, IndustryCode, ListKind,
    Listing, ListingReason, Penalty, PenaltyKind, Procedure, RegionCode, Uscc, ViolationDomain,
};

/// A date from `YYYY-MM-DD`; panics on a typo in the test.
pub fn day(s: &str) -> Date {
    Date::parse("date", s).expect("test date")
}

/// An operating enterprise in Pudong (310115), manufacturing (C), no capital recorded.
pub fn enterprise(established: &str) -> Enterprise {
    Enterprise {
        uscc: Uscc::placeholder(),
        name: "x".into(),
        entity_type: EntityType::Enterprise,
        region: RegionCode::parse("region", "310115").expect("region"),
        industry: IndustryCode::parse("", "C", "").expect("industry"),
        established_on: day(established),
        status: EnterpriseStatus::Operating,
        registered_capital_fen: 0,
        supervision: vec![],
        legal_rep_hash: None,
        recorded_at_ms: 0,
    }
}

/// The dossier of [`enterprise`] with no records.
pub fn dossier(established: &str) -> EnterpriseRecords {
    EnterpriseRecords {
        enterprise: Some(enterprise(established)),
        ..EnterpriseRecords::default()
    }
}

/// A current listing of `kind` from `on`, reason "other".
pub fn listing(kind: ListKind, on: Date) -> Listing {
    Listing {
        uscc: Uscc::placeholder(),
        kind,
        listed_on: on,
        reason: ListingReason::Other,
        reason_text: String::new(),
        authority: "a".into(),
        report_year: None,
        removed_on: None,
        removal_reason: String::new(),
        recorded_at_ms: 0,
        legal_rep_hash: None,
        term_ends_on: None,
    }
}

/// An ordinary-procedure food-safety fine of nothing, decided `on`, not heavier.
pub fn penalty(decision_number: &str, on: Date) -> Penalty {
    Penalty {
        decision_number: decision_number.into(),
        uscc: Uscc::placeholder(),
        decided_on: on,
        authority: "a".into(),
        domain: ViolationDomain::Food,
        procedure: Procedure::Ordinary,
        kinds: vec![PenaltyKind::Fine],
        fine_fen: 0,
        confiscation_fen: 0,
        heavier: false,
        restriction_ends_on: None,
        no_penalty: false,
        publicity_ended_on: None,
        recorded_at_ms: 0,
        published_on: None,
        lenience: None,
        first_violation: false,
    }
}
