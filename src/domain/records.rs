//! The records the registry keeps: `Enterprise`, `Penalty`, `AnnualReport`, `Listing`,
//! `InspectionResult`, `QualitySampling`, `ComplaintSummary`, and their enums. Constructors validate; fields are public for
//! reading, and the store re-attaches the USCC it keeps in the key.

use serde::{Deserialize, Serialize};

use super::{Date, DomainError, IndustryCode, RegionCode, Uscc};

/// Legal form (市场主体类型).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityType {
    /// Enterprise (企业).
    Enterprise,
    /// Individual business (个体工商户).
    IndividualBusiness,
    /// Farmer specialised cooperative (农民专业合作社).
    FarmerCooperative,
}

impl EntityType {
    /// The USCC category character (position 2) under authority 9.
    pub fn uscc_category(self) -> u8 {
        match self {
            EntityType::Enterprise => b'1',
            EntityType::IndividualBusiness => b'2',
            EntityType::FarmerCooperative => b'3',
        }
    }

    /// Index byte.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// From an index byte.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(EntityType::Enterprise),
            2 => Some(EntityType::IndividualBusiness),
            3 => Some(EntityType::FarmerCooperative),
            _ => None,
        }
    }
}

/// Registration status (登记状态).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnterpriseStatus {
    /// Operating (存续).
    Operating,
    /// Suspended (歇业).
    Suspended,
    /// Deregistered (注销).
    Deregistered,
    /// Business licence revoked (吊销).
    Revoked,
}

impl EnterpriseStatus {
    /// Index byte.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// Whether the entity still exists and so must file reports.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            EnterpriseStatus::Operating | EnterpriseStatus::Suspended
        )
    }
}

/// Key-supervision category (重点监管).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SupervisionFlag {
    /// Special-food producer (特殊食品生产).
    SpecialFood,
    /// Food production or sale (食品生产经营).
    Food,
    /// Drugs (药品).
    Drugs,
    /// Medical devices (医疗器械).
    MedicalDevices,
    /// Special equipment (特种设备).
    SpecialEquipment,
    /// Industrial products under production licence.
    LicensedIndustrialProducts,
    /// Hazardous chemicals (危险化学品).
    HazardousChemicals,
}

impl SupervisionFlag {
    /// Its bit in a licence mask (the selector's index keeps one byte per enterprise).
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The mask of `flags`.
    pub fn mask(flags: &[SupervisionFlag]) -> u8 {
        flags.iter().fold(0, |m, f| m | f.bit())
    }
}

/// A registered market entity (市场主体).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enterprise {
    /// The code; kept in the store key, not in the stored value.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Registered name.
    pub name: String,
    /// Legal form.
    pub entity_type: EntityType,
    /// Current jurisdiction (not the USCC's issuing region).
    pub region: RegionCode,
    /// GB/T 4754 industry.
    pub industry: IndustryCode,
    /// Date of establishment.
    pub established_on: Date,
    /// Registration status.
    pub status: EnterpriseStatus,
    /// Registered capital in fen.
    pub registered_capital_fen: u64,
    /// Key-supervision categories, sorted, no duplicates.
    pub supervision: Vec<SupervisionFlag>,
    /// SHA-256 of the legal representative's id, if supplied.
    pub legal_rep_hash: Option<[u8; 32]>,
    /// When stored (Unix milliseconds); set by the store.
    pub recorded_at_ms: i64,
}

/// Field of law (违法行为领域).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ViolationDomain {
    Advertising,
    Food,
    Drugs,
    MedicalDevices,
    SpecialEquipment,
    ProductQuality,
    UnfairCompetition,
    Metrology,
    Pricing,
    ConsumerProtection,
    Registration,
    IntellectualProperty,
    Standards,
    Other,
}

impl ViolationDomain {
    /// Food, drugs and special equipment need a year (not six months) before an early
    /// end of publicity (SAMR Order 45 Art. 16 as DOMAIN.md §5 reads it). Medical
    /// devices are not named there, so they take the ordinary minimum (issue 14, defect 6).
    pub fn is_sensitive(self) -> bool {
        matches!(
            self,
            ViolationDomain::Food | ViolationDomain::Drugs | ViolationDomain::SpecialEquipment
        )
    }
}

/// Procedure (程序).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Procedure {
    /// Simple, on-the-spot (简易程序).
    Simple,
    /// Ordinary (普通程序).
    Ordinary,
}

/// Penalty kind (行政处罚法 Art. 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PenaltyKind {
    /// 警告
    Warning,
    /// 通报批评
    PublicCriticism,
    /// 罚款
    Fine,
    /// 没收违法所得、没收非法财物
    Confiscation,
    /// 暂扣许可证件
    LicenceSuspension,
    /// 降低资质等级
    QualificationDowngrade,
    /// 吊销许可证件
    LicenceRevocation,
    /// 吊销营业执照
    BusinessLicenceRevocation,
    /// 限制开展生产经营活动
    OperatingRestriction,
    /// 责令停产停业
    Closure,
    /// 责令关闭
    OrderedClosure,
    /// 限制从业
    PracticeBan,
}

impl PenaltyKind {
    /// Kinds beyond a fine the scoring model treats as severe (the model's own choice,
    /// docs/MODEL.md — not the publicity rule, see [`PenaltyKind::bars_early_end`]).
    pub fn is_severe(self) -> bool {
        self == PenaltyKind::LicenceSuspension || self.bars_early_end()
    }

    /// Kinds that last until a date and need `restriction_ends_on`.
    pub fn needs_end_date(self) -> bool {
        matches!(
            self,
            PenaltyKind::OperatingRestriction | PenaltyKind::Closure | PenaltyKind::PracticeBan
        )
    }

    /// Kinds whose publicity can never be ended early: SAMR Order 45 as DOMAIN.md §5
    /// reads it — suspension of production (停产停业), restriction, practice bans,
    /// downgrades, licence and business-licence revocation. A temporary licence
    /// suspension (暂扣许可证件) is not among them (issue 14, defect 6); ordered closure
    /// (责令关闭) is kept, as the gravest of them [U: not named in DOMAIN.md §5].
    pub fn bars_early_end(self) -> bool {
        matches!(
            self,
            PenaltyKind::QualificationDowngrade
                | PenaltyKind::LicenceRevocation
                | PenaltyKind::BusinessLicenceRevocation
                | PenaltyKind::OperatingRestriction
                | PenaltyKind::Closure
                | PenaltyKind::OrderedClosure
                | PenaltyKind::PracticeBan
        )
    }
}

/// An administrative penalty decision (行政处罚决定).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    /// Decision number, unique registry-wide.
    pub decision_number: String,
    /// The penalised enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Decision date.
    pub decided_on: Date,
    /// Deciding authority.
    pub authority: String,
    /// Field of law.
    pub domain: ViolationDomain,
    /// Procedure.
    pub procedure: Procedure,
    /// Kinds imposed, sorted, no duplicates; empty iff `no_penalty`.
    pub kinds: Vec<PenaltyKind>,
    /// Fine in fen.
    pub fine_fen: u64,
    /// Confiscation in fen.
    pub confiscation_fen: u64,
    /// Heavier penalty (从重处罚).
    pub heavier: bool,
    /// End of a restriction, closure or ban.
    pub restriction_ends_on: Option<Date>,
    /// "No penalty" decision (不予处罚).
    pub no_penalty: bool,
    /// Publicity ended early by an approved repair, from this day.
    pub publicity_ended_on: Option<Date>,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
    /// Day the decision was published (公示之日). SAMR Order 45 counts publicity from
    /// it, and it may be up to 20 working days after the decision (DOMAIN §5). `None`:
    /// not recorded, so the window is estimated from the decision day.
    pub published_on: Option<Date>,
    /// Lenient treatment the decision gave (从轻 / 减轻处罚, 行政处罚法 2021 Art. 32), if
    /// any; a decision not to penalise (不予处罚, Art. 33) is `no_penalty` (dossier
    /// version 4).
    pub lenience: Option<Lenience>,
    /// The decision found a first violation (初次违法, Art. 33 para. 1: a minor first
    /// violation corrected in time may go unpenalised, 首违不罚).
    pub first_violation: bool,
}

/// Lenient treatment of a penalty (宽大处理, 行政处罚法 2021 Art. 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lenience {
    /// A lighter penalty within the legal range (从轻处罚).
    Lighter,
    /// A penalty below the legal range (减轻处罚).
    Mitigated,
}

/// An annual report filing (年度报告).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnualReport {
    /// Filing enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Year reported on.
    pub year: u16,
    /// Filing date.
    pub filed_on: Date,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
}

/// Which credit list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListKind {
    /// 经营异常名录
    AbnormalOperations,
    /// 严重违法失信名单
    SeriousIllegal,
    /// 个体工商户经营异常状态 (a mark, not a listing)
    AbnormalStatusMark,
}

impl ListKind {
    /// Key byte.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// From a key byte.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(ListKind::AbnormalOperations),
            2 => Some(ListKind::SeriousIllegal),
            3 => Some(ListKind::AbnormalStatusMark),
            _ => None,
        }
    }

    /// Stable name used in listing ids.
    pub fn name(self) -> &'static str {
        match self {
            ListKind::AbnormalOperations => "ABNORMAL_OPERATIONS",
            ListKind::SeriousIllegal => "SERIOUS_ILLEGAL",
            ListKind::AbnormalStatusMark => "ABNORMAL_STATUS_MARK",
        }
    }
}

/// Why an entry was listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListingReason {
    AnnualReportNotFiled,
    UnreachableAtAddress,
    FalsePublicity,
    PublicityOrderIgnored,
    AbnormalThreeYears,
    SeriousViolation,
    Other,
}

impl ListingReason {
    /// Key byte.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// From a key byte.
    pub fn from_code(c: u8) -> Option<Self> {
        use ListingReason::*;
        [
            AnnualReportNotFiled,
            UnreachableAtAddress,
            FalsePublicity,
            PublicityOrderIgnored,
            AbnormalThreeYears,
            SeriousViolation,
            Other,
        ]
        .get(usize::from(c).wrapping_sub(1))
        .copied()
    }

    /// Stable name used in listing ids.
    pub fn name(self) -> &'static str {
        use ListingReason::*;
        match self {
            AnnualReportNotFiled => "ANNUAL_REPORT_NOT_FILED",
            UnreachableAtAddress => "UNREACHABLE_AT_ADDRESS",
            FalsePublicity => "FALSE_PUBLICITY",
            PublicityOrderIgnored => "PUBLICITY_ORDER_IGNORED",
            AbnormalThreeYears => "ABNORMAL_THREE_YEARS",
            SeriousViolation => "SERIOUS_VIOLATION",
            Other => "OTHER",
        }
    }
}

/// An entry on a credit list. Its natural key within the enterprise is
/// (kind, listed_on, reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Listed enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Which list.
    pub kind: ListKind,
    /// Listing date.
    pub listed_on: Date,
    /// Why.
    pub reason: ListingReason,
    /// Free-text detail.
    pub reason_text: String,
    /// Deciding authority.
    pub authority: String,
    /// For a missed annual report: the year.
    pub report_year: Option<u16>,
    /// Removal date, if removed.
    pub removed_on: Option<Date>,
    /// Why removed.
    pub removal_reason: String,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
    /// The legal representative (id hash) the enterprise named when it was put on the
    /// serious-illegal list: the person 企业信息公示暂行条例 Art. 17 bars for 3 years,
    /// whoever heads the firm later. Set by the store when it records the listing;
    /// `None` on other lists and on listings recorded before dossier version 3.
    pub legal_rep_hash: Option<[u8; 32]>,
    /// Last day of a serious-illegal listing's term (`lists.serious_term_years` of the
    /// rules in force on `listed_on`): derived from the rules whenever the record is
    /// read, never stored ([`crate::domain::ruleset::RuleBook::apply_terms`]).
    #[serde(skip)]
    pub term_ends_on: Option<Date>,
}

impl Listing {
    /// Stable id within the enterprise: "KIND/LISTED_ON/REASON".
    pub fn listing_id(&self) -> String {
        Listing::id_of(self.kind, self.listed_on, self.reason)
    }

    /// The [`Listing::listing_id`] of a listing of `kind` on `listed_on` for `reason`.
    pub fn id_of(kind: ListKind, listed_on: Date, reason: ListingReason) -> String {
        format!("{}/{}/{}", kind.name(), listed_on, reason.name())
    }

    /// Whether the entry is open on `day`: listed, not yet removed, and its term (if it
    /// has one) not yet over.
    pub fn is_open_on(&self, day: Date) -> bool {
        self.listed_on <= day
            && self.removed_on.is_none_or(|r| r > day)
            && self.term_ends_on.is_none_or(|t| day <= t)
    }
}

/// Outcome of one spot check of one enterprise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionResult {
    /// Spot-check task id.
    pub task_id: String,
    /// Inspected enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Inspection date.
    pub inspected_on: Date,
    /// Check items.
    pub check_items: Vec<String>,
    /// Whether problems were found.
    pub problems_found: bool,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
    /// The check items (of `check_items`) where problems were found: the result per
    /// item of one visit, shared by every department of a joint task (dossier version 5).
    pub problem_items: Vec<String>,
}

/// What a quality sampling tested (抽检类别).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SamplingCategory {
    /// Food-safety supervisory sampling (食品安全监督抽检, 食品安全法 Art. 87).
    Food,
    /// Product-quality supervisory sampling of industrial products (产品质量监督抽查,
    /// 产品质量法 Art. 15).
    Product,
}

/// A quality sampling result (质量抽检结果): one batch of a product sampled by a
/// regulator and tested, passed or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualitySampling {
    /// The sampling report number (抽检报告编号); (sample_id, uscc) is unique.
    pub sample_id: String,
    /// The enterprise whose product was sampled; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// Sampling date.
    pub sampled_on: Date,
    /// Food or industrial product.
    pub category: SamplingCategory,
    /// The product (产品名称).
    pub product: String,
    /// The batch or production date marking (批次), may be empty.
    pub batch: String,
    /// Whether the sample passed (合格).
    pub passed: bool,
    /// The authority that ran the sampling.
    pub authority: String,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
}

impl QualitySampling {
    /// Checks the report number, date and texts.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        check_text("sampling.sample_id", &self.sample_id, true, 64)?;
        check_not_future("sampling.sampled_on", self.sampled_on, today)?;
        check_text("sampling.product", &self.product, true, 100)?;
        check_text("sampling.batch", &self.batch, false, 64)?;
        check_text("sampling.authority", &self.authority, true, 100)?;
        Ok(())
    }
}

/// Complaints and reports about an enterprise in one month (投诉举报), as the 12315
/// platform summarises them: how many were received and how many were verified
/// (查证属实). The social-evaluation signal of the national scheme (DOMAIN §2:
/// "complaint volumes"); one summary per enterprise and month, a later one replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintSummary {
    /// The enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// The month counted.
    pub month: super::stats::Month,
    /// Complaints (投诉): a consumer's own dispute.
    pub complaints: u32,
    /// Reports (举报): a tip-off of a violation.
    pub reports: u32,
    /// Of both, those found true (查证属实).
    pub verified: u32,
    /// Where the counts come from (e.g. "12315").
    pub source: String,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
}

impl ComplaintSummary {
    /// Checks the month (not after today's), the counts and the source.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        if self.month > super::stats::Month::of(today) {
            return Err(DomainError::invalid(
                "complaints.month",
                format!("{} is after this month", self.month),
            ));
        }
        for (f, n) in [
            ("complaints.complaints", self.complaints),
            ("complaints.reports", self.reports),
        ] {
            if n > 1_000_000 {
                return Err(DomainError::invalid(f, format!("{n}: at most 1,000,000")));
            }
        }
        if u64::from(self.verified) > u64::from(self.complaints) + u64::from(self.reports) {
            return Err(DomainError::invalid(
                "complaints.verified",
                format!(
                    "{} verified of {} complaints and {} reports",
                    self.verified, self.complaints, self.reports
                ),
            ));
        }
        check_text("complaints.source", &self.source, true, 64)?;
        Ok(())
    }
}

/// Everything the registry knows about one enterprise (its dossier, 档案): the store
/// keeps it as one value, so reading an enterprise or scanning the city is one read per
/// enterprise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseRecords {
    /// The registration profile (absent only while being built).
    pub enterprise: Option<Enterprise>,
    /// Penalties in decision-number order.
    pub penalties: Vec<Penalty>,
    /// Annual reports by year.
    pub reports: Vec<AnnualReport>,
    /// Listings by kind, date.
    pub listings: Vec<Listing>,
    /// Inspection results by task id.
    pub inspections: Vec<InspectionResult>,
    /// Credit commitments by id (dossier version 3).
    pub commitments: Vec<super::commitment::Commitment>,
    /// Quality sampling results by report number (dossier version 4).
    pub samplings: Vec<QualitySampling>,
    /// Complaint and report summaries by month (dossier version 4).
    pub complaints: Vec<ComplaintSummary>,
    /// Repair approvals revoked for a false commitment: (case id, date found). Kept with
    /// the repair cases, not in the stored dossier; the store attaches them on read.
    #[serde(skip)]
    pub false_commitments: Vec<(u64, Date)>,
}

impl EnterpriseRecords {
    /// Puts `u` back into every record (the store keeps it in the key only).
    pub fn set_uscc(&mut self, u: Uscc) {
        if let Some(e) = self.enterprise.as_mut() {
            e.uscc = u;
        }
        self.penalties.iter_mut().for_each(|x| x.uscc = u);
        self.reports.iter_mut().for_each(|x| x.uscc = u);
        self.listings.iter_mut().for_each(|x| x.uscc = u);
        self.inspections.iter_mut().for_each(|x| x.uscc = u);
        self.commitments.iter_mut().for_each(|x| x.uscc = u);
        self.samplings.iter_mut().for_each(|x| x.uscc = u);
        self.complaints.iter_mut().for_each(|x| x.uscc = u);
    }
}

/// Checks a free-text field's length in characters.
pub fn check_text(
    field: &str,
    s: &str,
    required: bool,
    max_chars: usize,
) -> Result<(), DomainError> {
    let n = s.chars().count();
    if required && s.trim().is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if n > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("is {n} characters, at most {max_chars} allowed"),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(DomainError::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Checks a date is not after `today`.
pub fn check_not_future(field: &str, d: Date, today: Date) -> Result<(), DomainError> {
    if d > today {
        return Err(DomainError::invalid(
            field,
            format!("{d} is in the future (today is {today})"),
        ));
    }
    Ok(())
}

impl Enterprise {
    /// Cross-field checks (each field is already typed).
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        check_text("enterprise.name", &self.name, true, 200)?;
        check_not_future("enterprise.established_on", self.established_on, today)?;
        if self.uscc.authority() == b'9' && self.uscc.category() != self.entity_type.uscc_category()
        {
            return Err(DomainError::invalid(
                "enterprise.entity_type",
                format!(
                    "{:?} does not agree with USCC category {}",
                    self.entity_type,
                    self.uscc.category() as char
                ),
            ));
        }
        Ok(())
    }
}

impl Penalty {
    /// Cross-field checks.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        check_text("penalty.decision_number", &self.decision_number, true, 100)?;
        check_text("penalty.authority", &self.authority, true, 100)?;
        check_not_future("penalty.decided_on", self.decided_on, today)?;
        if self.no_penalty && !self.kinds.is_empty() {
            return Err(DomainError::invalid(
                "penalty.kinds",
                "must be empty for a no-penalty decision",
            ));
        }
        if !self.no_penalty && self.kinds.is_empty() {
            return Err(DomainError::invalid(
                "penalty.kinds",
                "at least one kind is required (or set no_penalty)",
            ));
        }
        if self.no_penalty && self.lenience.is_some() {
            return Err(DomainError::invalid(
                "penalty.lenience",
                "a decision not to penalise (no_penalty) is lenient already: no lighter or mitigated penalty",
            ));
        }
        let has_fine = self.kinds.contains(&PenaltyKind::Fine);
        if has_fine && self.fine_fen == 0 {
            return Err(DomainError::invalid(
                "penalty.fine_fen",
                "must be > 0 with a FINE",
            ));
        }
        if !has_fine && self.fine_fen > 0 {
            return Err(DomainError::invalid(
                "penalty.fine_fen",
                "must be 0 unless kinds contains FINE",
            ));
        }
        let needs_end = self.kinds.iter().any(|k| k.needs_end_date());
        match (needs_end, self.restriction_ends_on) {
            (true, None) => {
                return Err(DomainError::invalid(
                    "penalty.restriction_ends_on",
                    "is required with a restriction, closure or practice ban",
                ))
            }
            (false, Some(_)) => {
                return Err(DomainError::invalid(
                    "penalty.restriction_ends_on",
                    "only applies to a restriction, closure or practice ban",
                ))
            }
            (true, Some(end)) if end < self.decided_on => {
                return Err(DomainError::invalid(
                    "penalty.restriction_ends_on",
                    "is before decided_on",
                ))
            }
            _ => {}
        }
        if self.procedure == Procedure::Simple
            && self
                .kinds
                .iter()
                .any(|k| !matches!(k, PenaltyKind::Warning | PenaltyKind::Fine))
        {
            return Err(DomainError::invalid(
                "penalty.procedure",
                "the simple procedure only imposes warnings and small fines",
            ));
        }
        if let Some(on) = self.published_on {
            check_not_future("penalty.published_on", on, today)?;
            if on < self.decided_on {
                return Err(DomainError::invalid(
                    "penalty.published_on",
                    "is before decided_on",
                ));
            }
            if !self.is_published() {
                return Err(DomainError::invalid(
                    "penalty.published_on",
                    "only a published penalty has a publication date (ordinary procedure, \
                     not warning-only, not a no-penalty decision)",
                ));
            }
        }
        Ok(())
    }

    /// Why the decision is not published at all (SAMR Order 45; DOMAIN §5), or `None`
    /// when it is: only ordinary-procedure decisions that impose more than a warning are.
    pub fn unpublished_because(&self) -> Option<&'static str> {
        if self.no_penalty {
            Some("not published: no-penalty decision (不予处罚)")
        } else if self.procedure == Procedure::Simple {
            Some("not published: simple procedure")
        } else if self.kinds.iter().all(|k| *k == PenaltyKind::Warning) {
            Some("not published: warning only")
        } else {
            None
        }
    }

    /// Whether the decision is published at all (see [`Penalty::unpublished_because`]).
    pub fn is_published(&self) -> bool {
        self.unpublished_because().is_none()
    }
}

impl AnnualReport {
    /// Checks the year and filing date.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        if self.year < 2000 || i32::from(self.year) >= today.year() {
            return Err(DomainError::invalid(
                "report.year",
                format!(
                    "{} is not a closed report year (2000..{})",
                    self.year,
                    today.year()
                ),
            ));
        }
        check_not_future("report.filed_on", self.filed_on, today)?;
        if self.filed_on.year() <= i32::from(self.year) {
            return Err(DomainError::invalid(
                "report.filed_on",
                format!(
                    "{} is not after the report year {}",
                    self.filed_on, self.year
                ),
            ));
        }
        Ok(())
    }
}

impl Listing {
    /// Cross-field checks; `entity_type` is the listed enterprise's.
    pub fn validate(&self, today: Date, entity_type: EntityType) -> Result<(), DomainError> {
        check_text(
            "listing.reason_text",
            &self.reason_text,
            self.reason == ListingReason::Other,
            500,
        )?;
        check_text("listing.authority", &self.authority, false, 100)?;
        check_text("listing.removal_reason", &self.removal_reason, false, 500)?;
        check_not_future("listing.listed_on", self.listed_on, today)?;
        if let Some(r) = self.removed_on {
            check_not_future("listing.removed_on", r, today)?;
            if r < self.listed_on {
                return Err(DomainError::invalid(
                    "listing.removed_on",
                    "is before listed_on",
                ));
            }
        }
        let individual = entity_type == EntityType::IndividualBusiness;
        match self.kind {
            ListKind::AbnormalOperations if individual => {
                return Err(DomainError::invalid(
                    "listing.kind",
                    "individual businesses are marked (ABNORMAL_STATUS_MARK), not listed",
                ))
            }
            ListKind::AbnormalStatusMark if !individual => {
                return Err(DomainError::invalid(
                    "listing.kind",
                    "only individual businesses get the abnormal-status mark",
                ))
            }
            _ => {}
        }
        if self.reason == ListingReason::AnnualReportNotFiled {
            match self.report_year {
                Some(y) if y >= 2000 && i32::from(y) < self.listed_on.year() => {}
                _ => {
                    return Err(DomainError::invalid(
                        "listing.report_year",
                        "is required for ANNUAL_REPORT_NOT_FILED and must precede listed_on",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Most check items of one visit merged from several departments' results (each result
/// names at most 50).
pub const MAX_VISIT_ITEMS: usize = 200;

impl InspectionResult {
    /// The visit `self` (stored) with the items of `other` (the same task and
    /// enterprise) added: how the departments of a joint task each record their items
    /// of the one visit. `Ok(None)` when `other` adds nothing (every item it names is
    /// recorded with the same outcome, and so is the visit's); `Err` names the conflict:
    /// another date, an item already recorded with another outcome, or only recorded
    /// items with another overall outcome.
    pub fn merged(&self, other: &InspectionResult) -> Result<Option<InspectionResult>, String> {
        if other.inspected_on != self.inspected_on {
            return Err(format!(
                "its visit is recorded on {}, not {}",
                self.inspected_on, other.inspected_on
            ));
        }
        let mut out = self.clone();
        for item in &other.check_items {
            let problem = other.problem_items.contains(item);
            if out.check_items.contains(item) {
                if out.problem_items.contains(item) != problem {
                    return Err(format!("item {item:?} is recorded with another outcome"));
                }
                continue;
            }
            out.check_items.push(item.clone());
            if problem {
                out.problem_items.push(item.clone());
            }
        }
        if out.check_items.len() == self.check_items.len() {
            // Nothing added: the same results again (item by item), or a changed visit:
            // problems where none were recorded, or none where the recorded problems
            // are not on any item and `other` covers every recorded item.
            let unattributed = self.problems_found && self.problem_items.is_empty();
            let covers = self
                .check_items
                .iter()
                .all(|i| other.check_items.contains(i));
            if (other.problems_found && !self.problems_found)
                || (!other.problems_found && unattributed && covers)
            {
                return Err(format!(
                    "its visit is recorded with problems_found {}",
                    self.problems_found
                ));
            }
            return Ok(None);
        }
        if out.check_items.len() > MAX_VISIT_ITEMS {
            return Err(format!(
                "its visit would name {} check items, more than {MAX_VISIT_ITEMS}",
                out.check_items.len()
            ));
        }
        out.problems_found |= other.problems_found;
        Ok(Some(out))
    }

    /// Checks the task id, date and items.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        check_text("result.task_id", &self.task_id, true, 64)?;
        check_not_future("result.inspected_on", self.inspected_on, today)?;
        if self.check_items.len() > 50 {
            return Err(DomainError::invalid(
                "result.check_items",
                "at most 50 items",
            ));
        }
        for (i, item) in self.check_items.iter().enumerate() {
            check_text(&format!("result.check_items[{i}]"), item, true, 100)?;
        }
        for (i, item) in self.problem_items.iter().enumerate() {
            if !self.check_items.contains(item) {
                return Err(DomainError::invalid(
                    format!("result.problem_items[{i}]"),
                    format!("{item:?} is not one of result.check_items"),
                ));
            }
            if self.problem_items[..i].contains(item) {
                return Err(DomainError::invalid(
                    format!("result.problem_items[{i}]"),
                    format!("{item:?} is named twice"),
                ));
            }
        }
        if !self.problem_items.is_empty() && !self.problems_found {
            return Err(DomainError::invalid(
                "result.problems_found",
                "is false, but problem_items names items where problems were found",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::day;

    fn visit(items: &[&str], problems: &[&str], found: bool) -> InspectionResult {
        InspectionResult {
            task_id: "2026-联合-001".into(),
            uscc: Uscc::placeholder(),
            inspected_on: day("2026-11-02"),
            check_items: items.iter().map(|s| s.to_string()).collect(),
            problems_found: found,
            recorded_at_ms: 1,
            problem_items: problems.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// One visit per enterprise and task: each department of a joint task adds its
    /// items' results; the same results again add nothing; a changed outcome is a
    /// conflict (issue 19 item 2). Rows: stored, recorded, merged (None: unchanged) or
    /// the conflict.
    #[test]
    fn departments_add_their_items_to_one_visit() {
        type Row = (
            InspectionResult,
            InspectionResult,
            Result<Option<InspectionResult>, ()>,
        );
        let rows: Vec<Row> = vec![
            (
                visit(&["A"], &[], false),
                visit(&["B"], &["B"], true),
                Ok(Some(visit(&["A", "B"], &["B"], true))),
            ),
            (
                visit(&["A"], &["A"], true),
                visit(&["B"], &[], false),
                Ok(Some(visit(&["A", "B"], &["A"], true))),
            ),
            // A department's unchanged result after another found problems elsewhere.
            (
                visit(&["A", "B"], &["B"], true),
                visit(&["A"], &[], false),
                Ok(None),
            ),
            // A repeated item in a result is added once.
            (
                visit(&["A"], &[], false),
                visit(&["B", "B"], &["B"], true),
                Ok(Some(visit(&["A", "B"], &["B"], true))),
            ),
            (
                visit(&["A", "B"], &["B"], true),
                visit(&["B"], &["B"], true),
                Ok(None),
            ),
            (visit(&["A"], &[], true), visit(&["A"], &[], true), Ok(None)),
            // Conflicts: the item's outcome, the visit's outcome, the date.
            (
                visit(&["A", "B"], &["B"], true),
                visit(&["B", "C"], &[], false),
                Err(()),
            ),
            (visit(&["A"], &[], true), visit(&["A"], &[], false), Err(())),
            (
                visit(&["A"], &[], false),
                InspectionResult {
                    inspected_on: day("2026-11-03"),
                    ..visit(&["B"], &[], false)
                },
                Err(()),
            ),
        ];
        for (stored, recorded, want) in rows {
            let got = stored.merged(&recorded).map_err(|_| ());
            assert_eq!(got, want, "{stored:?} + {recorded:?}");
        }
        assert!(visit(&["A"], &["B"], true)
            .validate(day("2026-12-01"))
            .is_err());
        assert_eq!(
            visit(&["A"], &["A"], false)
                .validate(day("2026-12-01"))
                .unwrap_err()
                .field,
            "result.problems_found"
        );
    }
}
