//! proto ↔ domain conversions. Parsing a request names the offending field as the client
//! spelled it (`penalty.fine_fen`), so a refusal can be acted on.

use prost_types::Timestamp;

use crate::{
    domain::{
        rules::{self},
        ruleset::RuleBook,
        AnnualReport, ComplaintSummary, Date, DomainError, Enterprise, EnterpriseStatus,
        EntityType, IndustryCode, InspectionResult, Lenience, ListKind, Listing, ListingReason,
        Penalty, PenaltyKind, Procedure, QualitySampling, RegionCode, SamplingCategory,
        SupervisionFlag, Uscc, ViolationDomain,
    },
    proto as pb,
};

type R<T> = Result<T, DomainError>;

fn unknown(field: &str, v: i32) -> DomainError {
    DomainError::invalid(field, format!("unknown enum value {v}"))
}

fn required(field: &str) -> DomainError {
    DomainError::invalid(field, "is required (UNSPECIFIED given)")
}

/// Parses a USCC for `field`.
pub fn uscc(field: &str, s: &str) -> R<Uscc> {
    Uscc::parse(s).map_err(|e| DomainError::invalid(field, e.reason))
}

/// Parses a legal representative's id hash (SHA-256, 64 hex digits); empty: none.
pub fn legal_rep_hash(field: &str, s: &str) -> R<Option<[u8; 32]>> {
    match s.trim() {
        "" => Ok(None),
        h => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.to_ascii_lowercase(), &mut out).map_err(|_| {
                DomainError::invalid(
                    field,
                    "must be 64 hex characters (SHA-256 of the id, never the id itself)",
                )
            })?;
            Ok(Some(out))
        }
    }
}

/// Parses an optional as-of date; empty = `today` (the store's clock, Asia/Shanghai).
pub fn as_of(field: &str, s: &str, today: Date) -> R<Date> {
    Ok(Date::parse_opt(field, s)?.unwrap_or(today))
}

/// [`as_of`] for an answer about the records as they stand: a date after `today` is
/// refused (the records of a future day are not known, and a later date would change
/// the answer — a yearly check count reset, a publicity ended, a case overdue).
pub fn past_as_of(field: &str, s: &str, today: Date) -> R<Date> {
    let d = as_of(field, s, today)?;
    if d > today {
        return Err(DomainError::invalid(
            field,
            format!("{d} is in the future (today is {today})"),
        ));
    }
    Ok(d)
}

fn fen(field: &str, v: i64) -> R<u64> {
    u64::try_from(v).map_err(|_| DomainError::invalid(field, format!("{v} is negative")))
}

/// Parses an entity-type enum.
pub fn entity_type(field: &str, v: i32) -> R<EntityType> {
    match pb::EntityType::try_from(v).map_err(|_| unknown(field, v))? {
        pb::EntityType::Unspecified => Err(required(field)),
        pb::EntityType::Enterprise => Ok(EntityType::Enterprise),
        pb::EntityType::IndividualBusiness => Ok(EntityType::IndividualBusiness),
        pb::EntityType::FarmerCooperative => Ok(EntityType::FarmerCooperative),
    }
}

/// An entity type as its proto enum.
pub fn entity_type_pb(t: EntityType) -> pb::EntityType {
    match t {
        EntityType::Enterprise => pb::EntityType::Enterprise,
        EntityType::IndividualBusiness => pb::EntityType::IndividualBusiness,
        EntityType::FarmerCooperative => pb::EntityType::FarmerCooperative,
    }
}

/// Parses a status enum.
pub fn status(field: &str, v: i32) -> R<EnterpriseStatus> {
    match pb::EnterpriseStatus::try_from(v).map_err(|_| unknown(field, v))? {
        pb::EnterpriseStatus::Unspecified => Err(required(field)),
        pb::EnterpriseStatus::Operating => Ok(EnterpriseStatus::Operating),
        pb::EnterpriseStatus::Suspended => Ok(EnterpriseStatus::Suspended),
        pb::EnterpriseStatus::Deregistered => Ok(EnterpriseStatus::Deregistered),
        pb::EnterpriseStatus::Revoked => Ok(EnterpriseStatus::Revoked),
    }
}

/// A status as its proto enum.
pub fn status_pb(s: EnterpriseStatus) -> pb::EnterpriseStatus {
    match s {
        EnterpriseStatus::Operating => pb::EnterpriseStatus::Operating,
        EnterpriseStatus::Suspended => pb::EnterpriseStatus::Suspended,
        EnterpriseStatus::Deregistered => pb::EnterpriseStatus::Deregistered,
        EnterpriseStatus::Revoked => pb::EnterpriseStatus::Revoked,
    }
}

const FLAGS: [(pb::SupervisionFlag, SupervisionFlag); 7] = [
    (
        pb::SupervisionFlag::SpecialFood,
        SupervisionFlag::SpecialFood,
    ),
    (pb::SupervisionFlag::Food, SupervisionFlag::Food),
    (pb::SupervisionFlag::Drugs, SupervisionFlag::Drugs),
    (
        pb::SupervisionFlag::MedicalDevices,
        SupervisionFlag::MedicalDevices,
    ),
    (
        pb::SupervisionFlag::SpecialEquipment,
        SupervisionFlag::SpecialEquipment,
    ),
    (
        pb::SupervisionFlag::LicensedIndustrialProducts,
        SupervisionFlag::LicensedIndustrialProducts,
    ),
    (
        pb::SupervisionFlag::HazardousChemicals,
        SupervisionFlag::HazardousChemicals,
    ),
];

const DOMAINS: [(pb::ViolationDomain, ViolationDomain); 14] = [
    (
        pb::ViolationDomain::Advertising,
        ViolationDomain::Advertising,
    ),
    (pb::ViolationDomain::Food, ViolationDomain::Food),
    (pb::ViolationDomain::Drugs, ViolationDomain::Drugs),
    (
        pb::ViolationDomain::MedicalDevices,
        ViolationDomain::MedicalDevices,
    ),
    (
        pb::ViolationDomain::SpecialEquipment,
        ViolationDomain::SpecialEquipment,
    ),
    (
        pb::ViolationDomain::ProductQuality,
        ViolationDomain::ProductQuality,
    ),
    (
        pb::ViolationDomain::UnfairCompetition,
        ViolationDomain::UnfairCompetition,
    ),
    (pb::ViolationDomain::Metrology, ViolationDomain::Metrology),
    (pb::ViolationDomain::Pricing, ViolationDomain::Pricing),
    (
        pb::ViolationDomain::ConsumerProtection,
        ViolationDomain::ConsumerProtection,
    ),
    (
        pb::ViolationDomain::Registration,
        ViolationDomain::Registration,
    ),
    (
        pb::ViolationDomain::IntellectualProperty,
        ViolationDomain::IntellectualProperty,
    ),
    (pb::ViolationDomain::Standards, ViolationDomain::Standards),
    (pb::ViolationDomain::Other, ViolationDomain::Other),
];

const KINDS: [(pb::PenaltyKind, PenaltyKind); 12] = [
    (pb::PenaltyKind::Warning, PenaltyKind::Warning),
    (
        pb::PenaltyKind::PublicCriticism,
        PenaltyKind::PublicCriticism,
    ),
    (pb::PenaltyKind::Fine, PenaltyKind::Fine),
    (pb::PenaltyKind::Confiscation, PenaltyKind::Confiscation),
    (
        pb::PenaltyKind::LicenceSuspension,
        PenaltyKind::LicenceSuspension,
    ),
    (
        pb::PenaltyKind::QualificationDowngrade,
        PenaltyKind::QualificationDowngrade,
    ),
    (
        pb::PenaltyKind::LicenceRevocation,
        PenaltyKind::LicenceRevocation,
    ),
    (
        pb::PenaltyKind::BusinessLicenceRevocation,
        PenaltyKind::BusinessLicenceRevocation,
    ),
    (
        pb::PenaltyKind::OperatingRestriction,
        PenaltyKind::OperatingRestriction,
    ),
    (pb::PenaltyKind::Closure, PenaltyKind::Closure),
    (pb::PenaltyKind::OrderedClosure, PenaltyKind::OrderedClosure),
    (pb::PenaltyKind::PracticeBan, PenaltyKind::PracticeBan),
];

const LIST_KINDS: [(pb::ListKind, ListKind); 3] = [
    (
        pb::ListKind::AbnormalOperations,
        ListKind::AbnormalOperations,
    ),
    (pb::ListKind::SeriousIllegal, ListKind::SeriousIllegal),
    (
        pb::ListKind::AbnormalStatusMark,
        ListKind::AbnormalStatusMark,
    ),
];

const REASONS: [(pb::ListingReason, ListingReason); 7] = [
    (
        pb::ListingReason::AnnualReportNotFiled,
        ListingReason::AnnualReportNotFiled,
    ),
    (
        pb::ListingReason::UnreachableAtAddress,
        ListingReason::UnreachableAtAddress,
    ),
    (
        pb::ListingReason::FalsePublicity,
        ListingReason::FalsePublicity,
    ),
    (
        pb::ListingReason::PublicityOrderIgnored,
        ListingReason::PublicityOrderIgnored,
    ),
    (
        pb::ListingReason::AbnormalThreeYears,
        ListingReason::AbnormalThreeYears,
    ),
    (
        pb::ListingReason::SeriousViolation,
        ListingReason::SeriousViolation,
    ),
    (pb::ListingReason::Other, ListingReason::Other),
];

/// Looks up a proto enum value in a (proto, domain) table.
const LENIENCE: [(pb::Lenience, Lenience); 2] = [
    (pb::Lenience::Lighter, Lenience::Lighter),
    (pb::Lenience::Mitigated, Lenience::Mitigated),
];

const SAMPLING_CATEGORIES: [(pb::SamplingCategory, SamplingCategory); 2] = [
    (pb::SamplingCategory::Food, SamplingCategory::Food),
    (pb::SamplingCategory::Product, SamplingCategory::Product),
];

fn lookup<P: Copy + Into<i32>, D: Copy>(table: &[(P, D)], field: &str, v: i32) -> R<D> {
    if v == 0 {
        return Err(required(field));
    }
    table
        .iter()
        .find(|(p, _)| (*p).into() == v)
        .map(|(_, d)| *d)
        .ok_or_else(|| unknown(field, v))
}

fn reverse<P: Copy + Into<i32>, D: Copy + PartialEq>(table: &[(P, D)], d: D) -> i32 {
    table
        .iter()
        .find(|(_, x)| *x == d)
        .map(|(p, _)| (*p).into())
        .unwrap_or(0)
}

/// Parses a list-kind enum.
pub fn list_kind(field: &str, v: i32) -> R<ListKind> {
    lookup(&LIST_KINDS, field, v)
}

/// Parses a listing-reason enum.
pub fn listing_reason(field: &str, v: i32) -> R<ListingReason> {
    lookup(&REASONS, field, v)
}

/// A list kind as its proto enum.
pub fn list_kind_pb(k: ListKind) -> i32 {
    reverse(&LIST_KINDS, k)
}

/// A listing reason as its proto enum.
pub fn listing_reason_pb(r: ListingReason) -> i32 {
    reverse(&REASONS, r)
}

/// Unix milliseconds as a protobuf timestamp; `None` for 0 (not recorded).
pub fn timestamp(ms: i64) -> Option<Timestamp> {
    (ms > 0).then(|| Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn opt_date(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// Parses an `Enterprise` message.
pub fn enterprise(m: &pb::Enterprise) -> R<Enterprise> {
    let f = |n: &str| format!("enterprise.{n}");
    let mut supervision = Vec::new();
    for (i, v) in m.supervision_flags.iter().enumerate() {
        let flag = lookup(&FLAGS, &format!("enterprise.supervision_flags[{i}]"), *v)?;
        if supervision.contains(&flag) {
            return Err(DomainError::invalid(
                format!("enterprise.supervision_flags[{i}]"),
                "duplicate flag",
            ));
        }
        supervision.push(flag);
    }
    supervision.sort_by_key(|f| *f as u8);
    let legal_rep_hash = legal_rep_hash(&f("legal_rep_id_hash"), &m.legal_rep_id_hash)?;
    Ok(Enterprise {
        uscc: uscc(&f("uscc"), &m.uscc)?,
        name: m.name.trim().to_string(),
        entity_type: entity_type(&f("entity_type"), m.entity_type)?,
        region: RegionCode::parse(&f("region_code"), &m.region_code)?,
        industry: IndustryCode::parse("enterprise.", &m.industry_section, &m.industry_code)?,
        established_on: Date::parse(&f("established_on"), &m.established_on)?,
        status: status(&f("status"), m.status)?,
        registered_capital_fen: fen(&f("registered_capital_fen"), m.registered_capital_fen)?,
        supervision,
        legal_rep_hash,
        recorded_at_ms: 0,
    })
}

/// Renders an enterprise.
pub fn enterprise_pb(e: &Enterprise) -> pb::Enterprise {
    pb::Enterprise {
        uscc: e.uscc.to_string(),
        name: e.name.clone(),
        entity_type: entity_type_pb(e.entity_type) as i32,
        region_code: e.region.to_string(),
        industry_section: e.industry.section_str(),
        industry_code: e.industry.code().to_string(),
        established_on: e.established_on.to_string(),
        status: status_pb(e.status) as i32,
        registered_capital_fen: e.registered_capital_fen as i64,
        supervision_flags: e.supervision.iter().map(|f| reverse(&FLAGS, *f)).collect(),
        legal_rep_id_hash: e.legal_rep_hash.map(hex::encode).unwrap_or_default(),
        recorded_at: timestamp(e.recorded_at_ms),
    }
}

/// Parses a `Penalty` message.
pub fn penalty(m: &pb::Penalty) -> R<Penalty> {
    let f = |n: &str| format!("penalty.{n}");
    let mut kinds = Vec::new();
    for (i, v) in m.kinds.iter().enumerate() {
        let k = lookup(&KINDS, &format!("penalty.kinds[{i}]"), *v)?;
        if kinds.contains(&k) {
            return Err(DomainError::invalid(
                format!("penalty.kinds[{i}]"),
                "duplicate kind",
            ));
        }
        kinds.push(k);
    }
    kinds.sort();
    let procedure = match pb::PenaltyProcedure::try_from(m.procedure)
        .map_err(|_| unknown(&f("procedure"), m.procedure))?
    {
        pb::PenaltyProcedure::Unspecified => return Err(required(&f("procedure"))),
        pb::PenaltyProcedure::Simple => Procedure::Simple,
        pb::PenaltyProcedure::Ordinary => Procedure::Ordinary,
    };
    Ok(Penalty {
        decision_number: m.decision_number.trim().to_string(),
        uscc: uscc(&f("uscc"), &m.uscc)?,
        decided_on: Date::parse(&f("decided_on"), &m.decided_on)?,
        authority: m.authority.trim().to_string(),
        domain: lookup(&DOMAINS, &f("domain"), m.domain)?,
        procedure,
        kinds,
        fine_fen: fen(&f("fine_fen"), m.fine_fen)?,
        confiscation_fen: fen(&f("confiscation_fen"), m.confiscation_fen)?,
        heavier: m.heavier,
        restriction_ends_on: Date::parse_opt(&f("restriction_ends_on"), &m.restriction_ends_on)?,
        no_penalty: m.no_penalty,
        publicity_ended_on: None,
        recorded_at_ms: 0,
        published_on: Date::parse_opt(&f("published_on"), &m.published_on)?,
        // LENIENCE_NONE (0) is no lenient treatment, not a missing value.
        lenience: match m.lenience {
            0 => None,
            v => Some(lookup(&LENIENCE, &f("lenience"), v)?),
        },
        first_violation: m.first_violation,
    })
}

/// Renders a penalty with its publicity as of `as_of`.
pub fn penalty_pb(p: &Penalty, entity: EntityType, rules: &RuleBook, as_of: Date) -> pb::Penalty {
    // The rules in force when the penalty was decided set its publicity.
    let set = rules.in_force(p.decided_on);
    let pub_ = set.publicity.publicity(p, entity);
    pb::Penalty {
        decision_number: p.decision_number.clone(),
        uscc: p.uscc.to_string(),
        decided_on: p.decided_on.to_string(),
        authority: p.authority.clone(),
        domain: reverse(&DOMAINS, p.domain),
        procedure: match p.procedure {
            Procedure::Simple => pb::PenaltyProcedure::Simple,
            Procedure::Ordinary => pb::PenaltyProcedure::Ordinary,
        } as i32,
        kinds: p.kinds.iter().map(|k| reverse(&KINDS, *k)).collect(),
        fine_fen: p.fine_fen as i64,
        confiscation_fen: p.confiscation_fen as i64,
        heavier: p.heavier,
        restriction_ends_on: opt_date(p.restriction_ends_on),
        no_penalty: p.no_penalty,
        publicity: Some(pb::PenaltyPublicity {
            published: pub_.published,
            starts_on: opt_date(pub_.window.map(|w| w.0)),
            ends_on: opt_date(pub_.window.map(|w| w.1)),
            early_end_from: opt_date(pub_.early_end_from),
            in_publicity: pub_.in_publicity_on(as_of, p.publicity_ended_on),
            rule: pub_.rule.to_string(),
            ended_early_on: opt_date(p.publicity_ended_on),
            rules_version: set.version.clone(),
            starts_on_estimated: pub_.start_estimated,
        }),
        recorded_at: timestamp(p.recorded_at_ms),
        published_on: opt_date(p.published_on),
        lenience: p.lenience.map_or(0, |l| reverse(&LENIENCE, l)),
        first_violation: p.first_violation,
    }
}

/// Parses an `AnnualReport` message.
pub fn report(m: &pb::AnnualReport) -> R<AnnualReport> {
    let year = u16::try_from(m.year)
        .map_err(|_| DomainError::invalid("report.year", format!("{} is out of range", m.year)))?;
    Ok(AnnualReport {
        uscc: uscc("report.uscc", &m.uscc)?,
        year,
        filed_on: Date::parse("report.filed_on", &m.filed_on)?,
        recorded_at_ms: 0,
    })
}

/// Renders an annual report.
pub fn report_pb(r: &AnnualReport) -> pb::AnnualReport {
    pb::AnnualReport {
        uscc: r.uscc.to_string(),
        year: i32::from(r.year),
        filed_on: r.filed_on.to_string(),
        deadline: rules::report_deadline(r.year).to_string(),
        on_time: rules::report_on_time(r),
        recorded_at: timestamp(r.recorded_at_ms),
    }
}

/// Parses a `Listing` message.
pub fn listing(m: &pb::Listing) -> R<Listing> {
    let report_year = match m.report_year {
        0 => None,
        y => Some(u16::try_from(y).map_err(|_| {
            DomainError::invalid("listing.report_year", format!("{y} is out of range"))
        })?),
    };
    Ok(Listing {
        uscc: uscc("listing.uscc", &m.uscc)?,
        kind: list_kind("listing.kind", m.kind)?,
        listed_on: Date::parse("listing.listed_on", &m.listed_on)?,
        reason: lookup(&REASONS, "listing.reason", m.reason)?,
        reason_text: m.reason_text.trim().to_string(),
        authority: m.authority.trim().to_string(),
        report_year,
        removed_on: Date::parse_opt("listing.removed_on", &m.removed_on)?,
        removal_reason: m.removal_reason.trim().to_string(),
        recorded_at_ms: 0,
        legal_rep_hash: None,
        term_ends_on: None,
    })
}

/// Renders a listing, open or not at `as_of`.
pub fn listing_pb(l: &Listing, as_of: Date) -> pb::Listing {
    pb::Listing {
        uscc: l.uscc.to_string(),
        kind: reverse(&LIST_KINDS, l.kind),
        reason: reverse(&REASONS, l.reason),
        reason_text: l.reason_text.clone(),
        listed_on: l.listed_on.to_string(),
        authority: l.authority.clone(),
        removed_on: opt_date(l.removed_on),
        removal_reason: l.removal_reason.clone(),
        report_year: l.report_year.map(i32::from).unwrap_or(0),
        listing_id: l.listing_id(),
        open: l.is_open_on(as_of),
        recorded_at: timestamp(l.recorded_at_ms),
        term_ends_on: opt_date(l.term_ends_on),
    }
}

/// Parses an `InspectionResult` message.
pub fn inspection(m: &pb::InspectionResult) -> R<InspectionResult> {
    Ok(InspectionResult {
        task_id: m.task_id.trim().to_string(),
        uscc: uscc("result.uscc", &m.uscc)?,
        inspected_on: Date::parse("result.inspected_on", &m.inspected_on)?,
        check_items: m.check_items.iter().map(|s| s.trim().to_string()).collect(),
        problems_found: m.problems_found,
        recorded_at_ms: 0,
        problem_items: m
            .problem_items
            .iter()
            .map(|s| s.trim().to_string())
            .collect(),
    })
}

/// Renders an inspection result.
pub fn inspection_pb(i: &InspectionResult) -> pb::InspectionResult {
    pb::InspectionResult {
        task_id: i.task_id.clone(),
        uscc: i.uscc.to_string(),
        inspected_on: i.inspected_on.to_string(),
        check_items: i.check_items.clone(),
        problems_found: i.problems_found,
        recorded_at: timestamp(i.recorded_at_ms),
        problem_items: i.problem_items.clone(),
    }
}

/// Parses a `QualitySamplingResult` message.
pub fn sampling(m: &pb::QualitySamplingResult) -> R<QualitySampling> {
    let category = lookup(&SAMPLING_CATEGORIES, "sampling.category", m.category)?;
    Ok(QualitySampling {
        sample_id: m.sample_id.trim().to_string(),
        uscc: uscc("sampling.uscc", &m.uscc)?,
        sampled_on: Date::parse("sampling.sampled_on", &m.sampled_on)?,
        category,
        product: m.product.trim().to_string(),
        batch: m.batch.trim().to_string(),
        passed: m.passed,
        authority: m.authority.trim().to_string(),
        recorded_at_ms: 0,
    })
}

/// Renders a quality sampling result.
pub fn sampling_pb(x: &QualitySampling) -> pb::QualitySamplingResult {
    pb::QualitySamplingResult {
        sample_id: x.sample_id.clone(),
        uscc: x.uscc.to_string(),
        sampled_on: x.sampled_on.to_string(),
        category: reverse(&SAMPLING_CATEGORIES, x.category),
        product: x.product.clone(),
        batch: x.batch.clone(),
        passed: x.passed,
        authority: x.authority.clone(),
        recorded_at: timestamp(x.recorded_at_ms),
    }
}

/// Parses a `ComplaintSummary` message.
pub fn complaints(m: &pb::ComplaintSummary) -> R<ComplaintSummary> {
    Ok(ComplaintSummary {
        uscc: uscc("complaints.uscc", &m.uscc)?,
        month: crate::domain::stats::Month::parse("complaints.month", &m.month)?,
        complaints: m.complaints,
        reports: m.reports,
        verified: m.verified,
        source: m.source.trim().to_string(),
        recorded_at_ms: 0,
    })
}

/// Renders a complaint summary.
pub fn complaints_pb(x: &ComplaintSummary) -> pb::ComplaintSummary {
    pb::ComplaintSummary {
        uscc: x.uscc.to_string(),
        month: x.month.to_string(),
        complaints: x.complaints,
        reports: x.reports,
        verified: x.verified,
        source: x.source.clone(),
        recorded_at: timestamp(x.recorded_at_ms),
    }
}
