//! The risk-classification model (企业信用风险分类模型) as data: indicators with points,
//! windows and decay, cut points per class, and hard rules. A model is a versioned TOML
//! document; [`Model::builtin`] is the default, and a file may replace it. Validation
//! refuses unknown indicators, missing or negative weights, windows an indicator needs
//! but lacks, and cut points that do not rise strictly, naming the offending key.
//!
//! Points are risk points: more is riskier. Internally they are held in hundredths
//! ([`Centi`]) so that scoring is exact integer arithmetic.

use std::{collections::BTreeSet, fmt};

use serde::{Deserialize, Serialize};

use super::{records::Enterprise, DomainError, IndustryCode, SupervisionFlag};

/// Hundredths of a risk point.
pub type Centi = i64;

/// Risk class (信用风险分类).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RiskClass {
    /// 信用风险低 — low.
    A,
    /// 信用风险一般 — general.
    B,
    /// 信用风险较高 — higher.
    C,
    /// 信用风险高 — high.
    D,
}

impl RiskClass {
    /// All classes, lowest risk first.
    pub const ALL: [RiskClass; 4] = [RiskClass::A, RiskClass::B, RiskClass::C, RiskClass::D];

    /// Index 0..4.
    pub fn index(self) -> usize {
        self as usize
    }

    /// From an index 0..4.
    pub fn from_index(i: u8) -> Option<RiskClass> {
        RiskClass::ALL.get(usize::from(i)).copied()
    }

    /// Letter.
    pub fn letter(self) -> &'static str {
        ["A", "B", "C", "D"][self.index()]
    }

    /// Parses a letter.
    pub fn parse(field: &str, s: &str) -> Result<RiskClass, DomainError> {
        match s {
            "A" => Ok(RiskClass::A),
            "B" => Ok(RiskClass::B),
            "C" => Ok(RiskClass::C),
            "D" => Ok(RiskClass::D),
            _ => Err(DomainError::invalid(
                field,
                format!("{s:?} is not a risk class (A, B, C or D)"),
            )),
        }
    }
}

impl fmt::Display for RiskClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// Indicator dimension, as in the national scheme (DOMAIN.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// 企业基础属性
    Basic,
    /// 企业动态
    Dynamic,
    /// 监管信息
    Supervision,
    /// 关联关系
    Relations,
    /// 社会评价
    Social,
}

impl Dimension {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Basic => "basic",
            Dimension::Dynamic => "dynamic",
            Dimension::Supervision => "supervision",
            Dimension::Relations => "relations",
            Dimension::Social => "social",
        }
    }
}

/// The record kind an indicator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Enterprise,
    Penalty,
    AnnualReport,
    Listing,
    Inspection,
    /// A credit-repair case (revoked for a false commitment).
    RepairCase,
    /// The general model's class (an input of a specialised model).
    GeneralClass,
    /// A quality sampling result (质量抽检).
    QualitySampling,
    /// A monthly complaint and report summary (投诉举报).
    ComplaintSummary,
}

impl RecordKind {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Enterprise => "enterprise",
            RecordKind::Penalty => "penalty",
            RecordKind::AnnualReport => "annual_report",
            RecordKind::Listing => "listing",
            RecordKind::Inspection => "inspection",
            RecordKind::RepairCase => "repair_case",
            RecordKind::GeneralClass => "general_class",
            RecordKind::QualitySampling => "quality_sampling",
            RecordKind::ComplaintSummary => "complaint_summary",
        }
    }
}

/// How an indicator's points fade with the age of its record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Full points for the whole window.
    #[default]
    None,
    /// Points fall linearly from full (age 0) to zero (end of window).
    Linear,
}

/// The indicators this build knows. A model chooses which to use and with what points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Indicator {
    /// Established within the window.
    NewEnterprise,
    /// Registered capital below `threshold_fen` (enterprises only).
    LowRegisteredCapital,
    /// Industry section among `sections`.
    HighRiskIndustry,
    /// Under key supervision (any supervision flag).
    KeySupervision,
    /// Suspended (歇业).
    Suspended,
    /// Each annual report filed late, deadline within the window.
    AnnualReportLate,
    /// Each annual report not filed, deadline within the window.
    AnnualReportMissing,
    /// Each warning-or-criticism-only penalty within the window.
    PenaltyMinor,
    /// Each fine or confiscation penalty within the window.
    PenaltyFine,
    /// Each heavier penalty or licence-level sanction within the window.
    PenaltySevere,
    /// Each penalty whose fine plus confiscation reaches `threshold_fen`.
    PenaltyLargeAmount,
    /// An open abnormal-operations listing (经营异常名录). An individual business's
    /// abnormal-status mark scores the indicator's points but is not this condition.
    AbnormalListingOpen,
    /// An abnormal-operations listing removed within the window.
    AbnormalListingPast,
    /// An open serious-illegal-dishonest listing.
    SeriousIllegalListing,
    /// Each spot check within the window that found problems.
    InspectionProblem,
    /// The latest spot check within the window found no problem (mitigating).
    InspectionClean,
    /// Shares its legal representative with a D-class or serious-illegal-listed enterprise.
    RelatedHighRisk,
    /// Each false commitment (失信承诺) found within the window and not repaired: a
    /// credit commitment verified broken, or a repair approval revoked for one.
    FalseCommitment,
    /// Each penalty in the food domain (食品领域行政处罚) within the window.
    FoodPenalty,
    /// The general model's class (综合信用风险分类), points per class above A: a
    /// specialised model's input (the general model cannot read itself).
    GeneralClass,
    /// Each failed food-safety sampling (食品安全抽检不合格) within the window.
    FoodSamplingFailed,
    /// Failed quality samplings (any category) in two consecutive calendar years within
    /// the window (连续多年抽检不合格), once.
    SamplingRepeatedFailure,
    /// Each complaint or report found true (投诉举报查证属实) in a month within the window.
    ComplaintsVerified,
}

/// What the catalogue knows of an indicator.
#[derive(Clone, Copy, Debug)]
pub struct IndicatorInfo {
    /// Dimension.
    pub dimension: Dimension,
    /// Record kind read.
    pub reads: RecordKind,
    /// Whether it needs `window_days`.
    pub windowed: bool,
    /// Whether its points may be negative (a mitigating indicator).
    pub mitigating: bool,
    /// Chinese description.
    pub zh: &'static str,
    /// English description.
    pub en: &'static str,
}

impl Indicator {
    /// Every indicator, in catalogue order.
    pub const ALL: [Indicator; 23] = [
        Indicator::NewEnterprise,
        Indicator::LowRegisteredCapital,
        Indicator::HighRiskIndustry,
        Indicator::KeySupervision,
        Indicator::Suspended,
        Indicator::AnnualReportLate,
        Indicator::AnnualReportMissing,
        Indicator::PenaltyMinor,
        Indicator::PenaltyFine,
        Indicator::PenaltySevere,
        Indicator::PenaltyLargeAmount,
        Indicator::AbnormalListingOpen,
        Indicator::AbnormalListingPast,
        Indicator::SeriousIllegalListing,
        Indicator::InspectionProblem,
        Indicator::InspectionClean,
        Indicator::RelatedHighRisk,
        Indicator::FalseCommitment,
        Indicator::FoodPenalty,
        Indicator::GeneralClass,
        Indicator::FoodSamplingFailed,
        Indicator::SamplingRepeatedFailure,
        Indicator::ComplaintsVerified,
    ];

    /// The stable code, as written in model files.
    pub fn code(self) -> &'static str {
        use Indicator::*;
        match self {
            NewEnterprise => "NEW_ENTERPRISE",
            LowRegisteredCapital => "LOW_REGISTERED_CAPITAL",
            HighRiskIndustry => "HIGH_RISK_INDUSTRY",
            KeySupervision => "KEY_SUPERVISION",
            Suspended => "SUSPENDED",
            AnnualReportLate => "ANNUAL_REPORT_LATE",
            AnnualReportMissing => "ANNUAL_REPORT_MISSING",
            PenaltyMinor => "PENALTY_MINOR",
            PenaltyFine => "PENALTY_FINE",
            PenaltySevere => "PENALTY_SEVERE",
            PenaltyLargeAmount => "PENALTY_LARGE_AMOUNT",
            AbnormalListingOpen => "ABNORMAL_LISTING_OPEN",
            AbnormalListingPast => "ABNORMAL_LISTING_PAST",
            SeriousIllegalListing => "SERIOUS_ILLEGAL_LISTING",
            InspectionProblem => "INSPECTION_PROBLEM",
            InspectionClean => "INSPECTION_CLEAN",
            RelatedHighRisk => "RELATED_HIGH_RISK",
            FalseCommitment => "FALSE_COMMITMENT",
            FoodPenalty => "FOOD_PENALTY",
            GeneralClass => "GENERAL_CLASS",
            FoodSamplingFailed => "FOOD_SAMPLING_FAILED",
            SamplingRepeatedFailure => "SAMPLING_REPEATED_FAILURE",
            ComplaintsVerified => "COMPLAINTS_VERIFIED",
        }
    }

    /// Parses a code.
    pub fn from_code(s: &str) -> Option<Indicator> {
        Indicator::ALL.into_iter().find(|i| i.code() == s)
    }

    /// Catalogue entry.
    pub fn info(self) -> IndicatorInfo {
        use Dimension as Dm;
        use Indicator::*;
        use RecordKind as R;
        let (dimension, reads, windowed, mitigating, zh, en) = match self {
            NewEnterprise => (
                Dm::Basic,
                R::Enterprise,
                true,
                false,
                "新设立企业",
                "newly established",
            ),
            LowRegisteredCapital => (
                Dm::Basic,
                R::Enterprise,
                false,
                false,
                "注册资本较低",
                "low registered capital",
            ),
            HighRiskIndustry => (
                Dm::Basic,
                R::Enterprise,
                false,
                false,
                "高风险行业",
                "high-risk industry",
            ),
            KeySupervision => (
                Dm::Basic,
                R::Enterprise,
                false,
                false,
                "重点监管对象",
                "under key supervision",
            ),
            Suspended => (
                Dm::Dynamic,
                R::Enterprise,
                false,
                false,
                "歇业",
                "suspended",
            ),
            AnnualReportLate => (
                Dm::Dynamic,
                R::AnnualReport,
                true,
                false,
                "年报逾期报送",
                "annual report filed late",
            ),
            AnnualReportMissing => (
                Dm::Dynamic,
                R::AnnualReport,
                true,
                false,
                "年报未报送",
                "annual report not filed",
            ),
            PenaltyMinor => (
                Dm::Supervision,
                R::Penalty,
                true,
                false,
                "警告或通报批评",
                "warning or public criticism",
            ),
            PenaltyFine => (
                Dm::Supervision,
                R::Penalty,
                true,
                false,
                "罚款或没收",
                "fine or confiscation",
            ),
            PenaltySevere => (
                Dm::Supervision,
                R::Penalty,
                true,
                false,
                "从重处罚或资格类处罚",
                "heavier or licence-level penalty",
            ),
            PenaltyLargeAmount => (
                Dm::Supervision,
                R::Penalty,
                true,
                false,
                "罚没金额较大",
                "large fine or confiscation",
            ),
            AbnormalListingOpen => (
                Dm::Supervision,
                R::Listing,
                false,
                false,
                "列入经营异常名录",
                "on the abnormal-operations list",
            ),
            AbnormalListingPast => (
                Dm::Supervision,
                R::Listing,
                true,
                false,
                "曾列入经营异常名录",
                "recently removed from the abnormal-operations list",
            ),
            SeriousIllegalListing => (
                Dm::Supervision,
                R::Listing,
                false,
                false,
                "列入严重违法失信名单",
                "on the serious-illegal-dishonest list",
            ),
            InspectionProblem => (
                Dm::Supervision,
                R::Inspection,
                true,
                false,
                "抽查发现问题",
                "spot check found problems",
            ),
            InspectionClean => (
                Dm::Supervision,
                R::Inspection,
                true,
                true,
                "抽查未发现问题",
                "latest spot check found no problem",
            ),
            RelatedHighRisk => (
                Dm::Relations,
                R::Enterprise,
                false,
                false,
                "法定代表人关联高风险企业",
                "legal representative linked to a high-risk enterprise",
            ),
            // Supervision information, not social evaluation: the finding is the
            // regulator's own, made in its repair procedure (issue 14, defect 6).
            FalseCommitment => (
                Dm::Supervision,
                R::RepairCase,
                true,
                false,
                "失信承诺",
                "false commitment (a commitment found broken, or a repair revoked for one)",
            ),
            FoodPenalty => (
                Dm::Supervision,
                R::Penalty,
                true,
                false,
                "食品领域行政处罚",
                "penalty in the food domain",
            ),
            GeneralClass => (
                Dm::Supervision,
                R::GeneralClass,
                false,
                false,
                "综合信用风险分类",
                "general credit-risk class (points per class above A)",
            ),
            FoodSamplingFailed => (
                Dm::Supervision,
                R::QualitySampling,
                true,
                false,
                "食品安全抽检不合格",
                "food-safety sampling failed",
            ),
            SamplingRepeatedFailure => (
                Dm::Supervision,
                R::QualitySampling,
                true,
                false,
                "连续多年抽检不合格",
                "quality sampling failed in consecutive years",
            ),
            // Social evaluation: what the public reports and the regulator confirms.
            ComplaintsVerified => (
                Dm::Social,
                R::ComplaintSummary,
                true,
                false,
                "投诉举报查证属实",
                "complaints or reports found true",
            ),
        };
        IndicatorInfo {
            dimension,
            reads,
            windowed,
            mitigating,
            zh,
            en,
        }
    }
}

/// Conditions a hard rule may test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Condition {
    /// An open serious-illegal-dishonest listing.
    SeriousIllegalListingOpen,
    /// An open abnormal-operations listing (经营异常名录). An individual business's
    /// abnormal-status mark scores the indicator's points but is not this condition.
    AbnormalListingOpen,
    /// Business licence revoked (吊销).
    BusinessLicenceRevoked,
}

impl Condition {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Condition::SeriousIllegalListingOpen => "SERIOUS_ILLEGAL_LISTING_OPEN",
            Condition::AbnormalListingOpen => "ABNORMAL_LISTING_OPEN",
            Condition::BusinessLicenceRevoked => "BUSINESS_LICENCE_REVOKED",
        }
    }
}

/// One indicator as a model uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSpec {
    /// Which indicator.
    pub indicator: Indicator,
    /// Points, in hundredths.
    pub points: Centi,
    /// Window in days (windowed indicators).
    pub window_days: Option<u32>,
    /// Decay over the window.
    pub decay: Decay,
    /// Amount threshold in fen (capital, large amount).
    pub threshold_fen: Option<u64>,
    /// Industry sections (high-risk industry).
    pub sections: Vec<u8>,
    /// Most points the indicator may add in total, in hundredths (count-based ones).
    pub max_points: Option<Centi>,
}

/// A hard rule: when `condition` holds, the class is at least `at_least`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardRule {
    /// Condition.
    pub condition: Condition,
    /// Floor class.
    pub at_least: RiskClass,
}

/// A validated model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Version, stamped on every classification.
    pub version: String,
    /// The family it belongs to: [`GENERAL`] (every enterprise), or a specialised
    /// rating such as `food` (食品安全信用等级) with its own runs and activation.
    pub family: String,
    /// Which enterprises a specialised model rates; `None` for the general model.
    pub scope: Option<Scope>,
    /// What it is for.
    pub description: String,
    /// Indicators in catalogue order.
    pub indicators: Vec<IndicatorSpec>,
    /// Lowest score (hundredths) of classes B, C and D; strictly rising.
    pub cut_points: [Centi; 3],
    /// Hard rules.
    pub hard_rules: Vec<HardRule>,
    /// What share of its points a leniently treated penalty weighs (行政处罚法 Art. 32).
    pub lenience: LenienceWeights,
    /// The TOML text it was read from.
    pub source: String,
    /// Position in `indicators` of each catalogue indicator (O(1) lookups in scoring).
    #[serde(skip)]
    lookup: [Option<u8>; Indicator::ALL.len()],
}

/// The built-in default model.
pub const BUILTIN_MODEL: &str = include_str!("default_model.toml");

/// The share of its indicators' points a penalty with lenient treatment weighs, in
/// thousandths (`[lenience]` in a model file; 1,000 = full weight, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LenienceWeights {
    /// A lighter penalty within the range (从轻处罚).
    pub lighter: u16,
    /// A penalty below the range (减轻处罚).
    pub mitigated: u16,
}

impl Default for LenienceWeights {
    fn default() -> Self {
        LenienceWeights {
            lighter: 1000,
            mitigated: 1000,
        }
    }
}

impl LenienceWeights {
    /// The thousandths a penalty with `lenience` weighs.
    pub fn of(&self, lenience: Option<super::Lenience>) -> i64 {
        i64::from(match lenience {
            None => 1000,
            Some(super::Lenience::Lighter) => self.lighter,
            Some(super::Lenience::Mitigated) => self.mitigated,
        })
    }
}

/// The built-in food-safety model (食品安全信用风险分级, SAMR Order 49; docs/MODEL.md).
pub const BUILTIN_FOOD_MODEL: &str = include_str!("food_model.toml");

/// The family of the general model, which rates every enterprise.
pub const GENERAL: &str = "general";

/// Which enterprises a specialised model rates (适用范围): holders of a licence (a
/// key-supervision category, e.g. the food production or business licence) or
/// enterprises in one of the industries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Licence kinds (key-supervision categories) whose holders are in scope.
    pub licences: Vec<SupervisionFlag>,
    /// GB/T 4754 industries: a section, or a code under it matched as a prefix.
    pub industries: Vec<IndustryCode>,
}

impl Scope {
    /// Whether the enterprise is in scope.
    pub fn admits(&self, e: &Enterprise) -> bool {
        self.admits_key(SupervisionFlag::mask(&e.supervision), e.industry.key())
    }

    /// Whether an enterprise with these licences (a [`SupervisionFlag::mask`]) and this
    /// industry is in scope.
    pub fn admits_key(&self, licences: u8, industry: super::codes::IndustryKey) -> bool {
        self.licences.iter().any(|f| licences & f.bit() != 0)
            || self.industries.iter().any(|i| industry.under(&i.key()))
    }

    /// Its licence kinds by their file names ("food", …).
    pub fn licence_names(&self) -> Vec<String> {
        self.licences
            .iter()
            .filter_map(|f| {
                LICENCE_KINDS
                    .iter()
                    .find(|(_, k)| k == f)
                    .map(|(n, _)| n.to_string())
            })
            .collect()
    }

    /// Its industries as written ("C14", "H").
    pub fn industry_names(&self) -> Vec<String> {
        self.industries
            .iter()
            .map(|i| format!("{}{}", i.section_str(), i.code()))
            .collect()
    }

    /// Whether it names no licence and no industry.
    pub fn is_empty(&self) -> bool {
        self.licences.is_empty() && self.industries.is_empty()
    }

    /// Parses licence kinds (names of [`LICENCE_KINDS`]) and industries (a section letter
    /// and 0-4 digits, e.g. "C14"); errors name `{prefix}licences[i]` or
    /// `{prefix}industries[i]`.
    pub fn parse(
        prefix: &str,
        licences: &[String],
        industries: &[String],
    ) -> Result<Scope, DomainError> {
        let mut scope = Scope::default();
        for (i, l) in licences.iter().enumerate() {
            let flag = LICENCE_KINDS
                .iter()
                .find(|(n, _)| n == l)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    let known: Vec<_> = LICENCE_KINDS.iter().map(|(n, _)| *n).collect();
                    DomainError::invalid(
                        format!("{prefix}licences[{i}]"),
                        format!("unknown licence kind {l:?}; known: {}", known.join(", ")),
                    )
                })?;
            scope.licences.push(flag);
        }
        for (i, code) in industries.iter().enumerate() {
            let field = format!("{prefix}industries[{i}]");
            let code = code.trim();
            let (sec, digits) =
                code.split_at(code.char_indices().nth(1).map_or(code.len(), |(p, _)| p));
            let c = IndustryCode::parse("", sec, digits).map_err(|e| {
                DomainError::invalid(
                    &field,
                    format!(
                        "{code:?} is not a GB/T 4754 industry (a section letter and 0-4 digits): {}",
                        e.reason
                    ),
                )
            })?;
            scope.industries.push(c);
        }
        Ok(scope)
    }
}

/// The licence kinds a scope may name, by their names in model files.
pub const LICENCE_KINDS: [(&str, SupervisionFlag); 7] = [
    ("food", SupervisionFlag::Food),
    ("special_food", SupervisionFlag::SpecialFood),
    ("drugs", SupervisionFlag::Drugs),
    ("medical_devices", SupervisionFlag::MedicalDevices),
    ("special_equipment", SupervisionFlag::SpecialEquipment),
    (
        "licensed_industrial_products",
        SupervisionFlag::LicensedIndustrialProducts,
    ),
    ("hazardous_chemicals", SupervisionFlag::HazardousChemicals),
];

// ---- the file format -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    version: Option<String>,
    family: Option<String>,
    scope: Option<ScopeFile>,
    #[serde(default)]
    description: String,
    cut_points: Option<CutPointsFile>,
    #[serde(default)]
    indicator: Vec<IndicatorFile>,
    #[serde(default)]
    hard_rule: Vec<HardRuleFile>,
    lenience: Option<LenienceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LenienceFile {
    lighter: Option<f64>,
    mitigated: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    #[serde(default)]
    licences: Vec<String>,
    #[serde(default)]
    industries: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CutPointsFile {
    b: Option<f64>,
    c: Option<f64>,
    d: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorFile {
    code: String,
    dimension: Option<String>,
    reads: Option<String>,
    points: Option<f64>,
    window_days: Option<u32>,
    #[serde(default)]
    decay: Option<String>,
    threshold_yuan: Option<f64>,
    #[serde(default)]
    sections: Vec<String>,
    max_points: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HardRuleFile {
    condition: String,
    at_least: String,
}

fn centi(field: &str, v: f64) -> Result<Centi, DomainError> {
    if !v.is_finite() || v.abs() > 1.0e6 {
        return Err(DomainError::invalid(
            field,
            format!("{v} is not a usable number"),
        ));
    }
    Ok((v * 100.0).round() as Centi)
}

impl Model {
    /// The built-in default.
    pub fn builtin() -> Model {
        Model::parse(BUILTIN_MODEL).unwrap_or_else(|e| panic!("built-in model is invalid: {e}"))
    }

    /// The built-in food-safety model.
    pub fn builtin_food() -> Model {
        Model::parse(BUILTIN_FOOD_MODEL)
            .unwrap_or_else(|e| panic!("built-in food model is invalid: {e}"))
    }

    /// Whether this is the general model (it rates every enterprise).
    pub fn is_general(&self) -> bool {
        self.family == GENERAL
    }

    /// Whether the model rates this enterprise (the general model rates all).
    pub fn rates(&self, e: &Enterprise) -> bool {
        self.scope.as_ref().is_none_or(|s| s.admits(e))
    }

    /// Parses and validates a model file. Errors name the offending key, e.g.
    /// `indicator[3].points`.
    pub fn parse(text: &str) -> Result<Model, DomainError> {
        let f: ModelFile = toml::from_str(text).map_err(|e| {
            DomainError::invalid(
                "model",
                e.message().to_string() + &span_hint(text, e.span()),
            )
        })?;
        let version = f
            .version
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| DomainError::invalid("version", "required"))?;
        if version.len() > 64 || !version.chars().all(|c| c.is_ascii_graphic()) {
            return Err(DomainError::invalid(
                "version",
                "at most 64 printable ASCII characters",
            ));
        }
        let family = f.family.unwrap_or_else(|| GENERAL.to_string());
        if family.is_empty()
            || family.len() > 32
            || !family.starts_with(|c: char| c.is_ascii_lowercase())
            || !family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(DomainError::invalid(
                "family",
                format!("{family:?}: 1-32 characters a-z, 0-9, _, starting with a letter"),
            ));
        }
        let scope = match (family == GENERAL, f.scope) {
            (true, None) => None,
            (true, Some(_)) => {
                return Err(DomainError::invalid(
                    "scope",
                    "the general model rates every enterprise and takes no scope",
                ))
            }
            (false, None) => {
                return Err(DomainError::invalid(
                    "scope",
                    format!("a specialised model ({family}) needs a scope: licences or industries"),
                ))
            }
            (false, Some(sf)) => Some(parse_scope(sf)?),
        };
        let cp = f
            .cut_points
            .ok_or_else(|| DomainError::invalid("cut_points", "required (b, c, d)"))?;
        let mut cut = [0; 3];
        for (i, (name, v)) in [("b", cp.b), ("c", cp.c), ("d", cp.d)]
            .into_iter()
            .enumerate()
        {
            let field = format!("cut_points.{name}");
            let v = v.ok_or_else(|| DomainError::invalid(&field, "required"))?;
            cut[i] = centi(&field, v)?;
        }
        if !(cut[0] < cut[1] && cut[1] < cut[2]) {
            return Err(DomainError::invalid(
                "cut_points",
                "b < c < d required (the class ranges may not overlap)",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut indicators = Vec::new();
        for (i, x) in f.indicator.into_iter().enumerate() {
            let at = |k: &str| format!("indicator[{i}].{k}");
            let ind = Indicator::from_code(&x.code).ok_or_else(|| {
                DomainError::invalid(at("code"), format!("unknown indicator {:?}", x.code))
            })?;
            if ind == Indicator::GeneralClass && family == GENERAL {
                return Err(DomainError::invalid(
                    at("code"),
                    "GENERAL_CLASS is the general model's own class: only a specialised model reads it",
                ));
            }
            if !seen.insert(ind) {
                return Err(DomainError::invalid(
                    at("code"),
                    format!("{} appears twice", x.code),
                ));
            }
            let info = ind.info();
            if let Some(d) = &x.dimension {
                // Models registered before cr-2026.3 filed FALSE_COMMITMENT under
                // "social"; they still parse (a registered model is never refused).
                let legacy = ind == Indicator::FalseCommitment && d == "social";
                if d != info.dimension.name() && !legacy {
                    return Err(DomainError::invalid(
                        at("dimension"),
                        format!("{} belongs to {}, not {d}", x.code, info.dimension.name()),
                    ));
                }
            }
            if let Some(r) = &x.reads {
                if r != info.reads.name() {
                    return Err(DomainError::invalid(
                        at("reads"),
                        format!("{} reads {}, not {r}", x.code, info.reads.name()),
                    ));
                }
            }
            let points = centi(
                &at("points"),
                x.points
                    .ok_or_else(|| DomainError::invalid(at("points"), "required (the weight)"))?,
            )?;
            if points < 0 && !info.mitigating {
                return Err(DomainError::invalid(
                    at("points"),
                    format!("{} is a risk indicator: points may not be negative", x.code),
                ));
            }
            if info.mitigating && points > 0 {
                return Err(DomainError::invalid(
                    at("points"),
                    format!("{} is mitigating: points may not be positive", x.code),
                ));
            }
            let window_days = match (info.windowed, x.window_days) {
                (true, None) | (true, Some(0)) => {
                    return Err(DomainError::invalid(
                        at("window_days"),
                        format!("{} needs a window of at least one day", x.code),
                    ))
                }
                (false, Some(_)) => {
                    return Err(DomainError::invalid(
                        at("window_days"),
                        format!("{} has no window", x.code),
                    ))
                }
                (_, w) => w,
            };
            let decay = match x.decay.as_deref() {
                None | Some("none") => Decay::None,
                Some("linear") if info.windowed => Decay::Linear,
                Some(d) => {
                    return Err(DomainError::invalid(
                        at("decay"),
                        format!("{d:?}: expected \"none\" or \"linear\" (linear needs a window)"),
                    ))
                }
            };
            let needs_threshold = matches!(
                ind,
                Indicator::LowRegisteredCapital | Indicator::PenaltyLargeAmount
            );
            let threshold_fen = match (needs_threshold, x.threshold_yuan) {
                (true, Some(y)) if y.is_finite() && y > 0.0 && y < 1.0e13 => {
                    Some((y * 100.0).round() as u64)
                }
                (true, _) => {
                    return Err(DomainError::invalid(
                        at("threshold_yuan"),
                        format!("{} needs a positive threshold in yuan", x.code),
                    ))
                }
                (false, Some(_)) => {
                    return Err(DomainError::invalid(
                        at("threshold_yuan"),
                        format!("{} has no threshold", x.code),
                    ))
                }
                (false, None) => None,
            };
            let mut sections = Vec::new();
            for (j, s) in x.sections.iter().enumerate() {
                let c = IndustryCode::parse("", s, "").map_err(|e| {
                    DomainError::invalid(format!("indicator[{i}].sections[{j}]"), e.reason)
                })?;
                sections.push(c.section());
            }
            match (ind == Indicator::HighRiskIndustry, sections.is_empty()) {
                (true, true) => {
                    return Err(DomainError::invalid(
                        at("sections"),
                        "HIGH_RISK_INDUSTRY needs at least one GB/T 4754 section letter",
                    ))
                }
                (false, false) => {
                    return Err(DomainError::invalid(
                        at("sections"),
                        format!("{} takes no sections", x.code),
                    ))
                }
                _ => {}
            }
            let max_points = match x.max_points {
                Some(m) => {
                    let m = centi(&at("max_points"), m)?;
                    if m <= 0 {
                        return Err(DomainError::invalid(at("max_points"), "must be positive"));
                    }
                    Some(m)
                }
                None => None,
            };
            indicators.push(IndicatorSpec {
                indicator: ind,
                points,
                window_days,
                decay,
                threshold_fen,
                sections,
                max_points,
            });
        }
        if indicators.is_empty() {
            return Err(DomainError::invalid("indicator", "at least one indicator"));
        }
        indicators.sort_by_key(|s| s.indicator);
        let mut hard_rules = Vec::new();
        for (i, h) in f.hard_rule.into_iter().enumerate() {
            let condition = match h.condition.as_str() {
                "SERIOUS_ILLEGAL_LISTING_OPEN" => Condition::SeriousIllegalListingOpen,
                "ABNORMAL_LISTING_OPEN" => Condition::AbnormalListingOpen,
                "BUSINESS_LICENCE_REVOKED" => Condition::BusinessLicenceRevoked,
                c => {
                    return Err(DomainError::invalid(
                        format!("hard_rule[{i}].condition"),
                        format!("unknown condition {c:?}"),
                    ))
                }
            };
            let at_least = RiskClass::parse(&format!("hard_rule[{i}].at_least"), &h.at_least)?;
            hard_rules.push(HardRule {
                condition,
                at_least,
            });
        }
        let mut lenience = LenienceWeights::default();
        if let Some(l) = f.lenience {
            let share = |name: &str, v: f64| -> Result<u16, DomainError> {
                let permille = (v * 1000.0).round();
                if !(v.is_finite() && permille >= 1.0 && v <= 1.0) {
                    return Err(DomainError::invalid(
                        format!("lenience.{name}"),
                        format!("{v}: a share of the points, at least 0.001 and at most 1"),
                    ));
                }
                Ok(permille as u16)
            };
            if let Some(v) = l.lighter {
                lenience.lighter = share("lighter", v)?;
            }
            // Unset, a mitigated penalty weighs as a lighter one.
            lenience.mitigated = match l.mitigated {
                Some(v) => share("mitigated", v)?,
                None => lenience.lighter,
            };
            if lenience.mitigated > lenience.lighter {
                return Err(DomainError::invalid(
                    "lenience.mitigated",
                    "a penalty below the range (减轻) may not weigh more than a lighter one (从轻)",
                ));
            }
        }
        let mut lookup = [None; Indicator::ALL.len()];
        for (i, s) in indicators.iter().enumerate() {
            lookup[s.indicator as usize] = Some(i as u8);
        }
        Ok(Model {
            version,
            family,
            scope,
            description: f.description,
            indicators,
            cut_points: cut,
            hard_rules,
            lenience,
            source: text.to_string(),
            lookup,
        })
    }

    /// The spec of `indicator`, if the model uses it.
    pub fn spec(&self, indicator: Indicator) -> Option<&IndicatorSpec> {
        self.lookup[indicator as usize].map(|i| &self.indicators[usize::from(i)])
    }

    /// The class a score falls in, before hard rules.
    pub fn class_of(&self, score: Centi) -> RiskClass {
        match self.cut_points.iter().filter(|&&c| score >= c).count() {
            0 => RiskClass::A,
            1 => RiskClass::B,
            2 => RiskClass::C,
            _ => RiskClass::D,
        }
    }
}

fn parse_scope(f: ScopeFile) -> Result<Scope, DomainError> {
    let scope = Scope::parse("scope.", &f.licences, &f.industries)?;
    if scope.licences.is_empty() && scope.industries.is_empty() {
        return Err(DomainError::invalid(
            "scope",
            "names no licence kind and no industry: it would rate nobody",
        ));
    }
    Ok(scope)
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_uses_every_dimension_it_can_feed() {
        let m = Model::builtin();
        assert!(m.version.starts_with("cr-"));
        // Every indicator but HIGH_RISK_INDUSTRY, which has no published basis
        // (issue 14, defect 6) and is left to a regulator's own model.
        let unused: Vec<_> = Indicator::ALL
            .into_iter()
            .filter(|i| m.spec(*i).is_none())
            .collect();
        // FOOD_PENALTY, GENERAL_CLASS and the sampling indicators are the food
        // model's (issue 18).
        assert_eq!(
            unused,
            [
                Indicator::HighRiskIndustry,
                Indicator::FoodPenalty,
                Indicator::GeneralClass,
                Indicator::FoodSamplingFailed,
                Indicator::SamplingRepeatedFailure,
            ]
        );
        assert!(m.is_general() && m.scope.is_none());
        assert_eq!(
            Indicator::FalseCommitment.info().dimension,
            Dimension::Supervision
        );
        assert_eq!(m.class_of(0), RiskClass::A);
        assert_eq!(m.class_of(m.cut_points[0]), RiskClass::B);
        assert_eq!(m.class_of(m.cut_points[1] - 1), RiskClass::B);
        assert_eq!(m.class_of(m.cut_points[2]), RiskClass::D);
        assert_eq!(m.hard_rules.len(), 2);
    }

    #[test]
    fn the_food_model_rates_food_licence_holders_and_food_industries() {
        use crate::domain::{fixtures, SupervisionFlag};
        let m = Model::builtin_food();
        assert_eq!(m.family, "food");
        assert!(!m.is_general());
        assert!(m.spec(Indicator::GeneralClass).is_some());
        assert!(m.spec(Indicator::FoodPenalty).is_some());
        assert!(m.spec(Indicator::FoodSamplingFailed).is_some());
        assert!(m.spec(Indicator::SamplingRepeatedFailure).is_some());
        let mut e = fixtures::dossier("2015-03-01").enterprise.unwrap();
        e.industry = IndustryCode::parse("", "C", "1711").unwrap(); // textiles
        e.supervision.clear();
        assert!(!m.rates(&e));
        assert!(
            Model::builtin().rates(&e),
            "the general model rates everyone"
        );
        e.supervision = vec![SupervisionFlag::Food];
        assert!(m.rates(&e), "a food licence holder");
        e.supervision.clear();
        e.industry = IndustryCode::parse("", "H", "6210").unwrap(); // restaurants
        assert!(m.rates(&e), "catering (H62)");
        e.industry = IndustryCode::parse("", "F", "5123").unwrap(); // F512 food wholesale
        assert!(m.rates(&e));
        e.industry = IndustryCode::parse("", "F", "5131").unwrap(); // textiles wholesale
        assert!(!m.rates(&e));
    }

    #[test]
    fn bad_scopes_and_families_are_refused_naming_the_key() {
        let base = "[cut_points]\nb = 10\nc = 20\nd = 30\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5\n";
        let cases = [
            (
                "family = \"food\"\n[scope]\nlicences = [\"food\", \"fireworks\"]\n",
                "scope.licences[1]",
            ),
            (
                "family = \"food\"\n[scope]\nindustries = [\"C14\", \"C99\"]\n",
                "scope.industries[1]",
            ),
            (
                "family = \"food\"\n[scope]\nindustries = [\"Z1\"]\n",
                "scope.industries[0]",
            ),
            (
                "family = \"food\"\n[scope]\nindustries = [\"C1\"]\n",
                "scope.industries[0]",
            ),
            ("family = \"food\"\n", "scope"),
            ("family = \"food\"\n[scope]\n", "scope"),
            ("[scope]\nlicences = [\"food\"]\n", "scope"),
            (
                "family = \"Food!\"\n[scope]\nlicences = [\"food\"]\n",
                "family",
            ),
        ];
        for (head, field) in cases {
            let text = format!("version = \"f-1\"\n{head}{base}");
            let e = Model::parse(&text).expect_err(&text);
            assert_eq!(e.field, field, "{text}\n=> {e}");
        }
        // The general model cannot read its own class.
        let e = Model::parse(&minimal(
            "[[indicator]]\ncode = \"GENERAL_CLASS\"\npoints = 3",
        ))
        .unwrap_err();
        assert_eq!(e.field, "indicator[0].code");
        let ok = format!("version = \"f-1\"\nfamily = \"food\"\n[scope]\nindustries = [\"H\", \"C14\"]\n{base}[[indicator]]\ncode = \"GENERAL_CLASS\"\npoints = 3\n");
        let m = Model::parse(&ok).unwrap();
        assert_eq!(m.scope.unwrap().industries.len(), 2);
    }

    fn minimal(extra: &str) -> String {
        format!(
            "version = \"t-1\"\n[cut_points]\nb = 10\nc = 20\nd = 30\n{extra}\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5\n"
        )
    }

    #[test]
    fn bad_models_are_refused_naming_the_key() {
        let cases = [
            (minimal("[[indicator]]\ncode = \"NOPE\"\npoints = 1"), "indicator[0].code"),
            (minimal("[[indicator]]\ncode = \"PENALTY_FINE\"\nwindow_days = 9"), "indicator[0].points"),
            (minimal("[[indicator]]\ncode = \"PENALTY_FINE\"\npoints = 3"), "indicator[0].window_days"),
            (minimal("[[indicator]]\ncode = \"PENALTY_FINE\"\npoints = -3\nwindow_days = 9"), "indicator[0].points"),
            (minimal("[[indicator]]\ncode = \"SUSPENDED\"\npoints = 3"), "indicator[1].code"),
            (minimal("[[indicator]]\ncode = \"PENALTY_FINE\"\npoints = 3\nwindow_days = 9\nreads = \"listing\""), "indicator[0].reads"),
            (minimal("[[hard_rule]]\ncondition = \"X\"\nat_least = \"D\""), "hard_rule[0].condition"),
            (minimal("[[hard_rule]]\ncondition = \"ABNORMAL_LISTING_OPEN\"\nat_least = \"E\""), "hard_rule[0].at_least"),
            ("version = \"t\"\n[cut_points]\nb = 10\nc = 10\nd = 30\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5".into(), "cut_points"),
            ("version = \"t\"\n[cut_points]\nb = 10\nd = 30\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5".into(), "cut_points.c"),
            ("[cut_points]\nb = 10\nc = 20\nd = 30\n[[indicator]]\ncode = \"SUSPENDED\"\npoints = 5".into(), "version"),
            ("version = \"t\"\nweights = 3\n".into(), "model"),
            (minimal("[lenience]\nlighter = 1.5"), "lenience.lighter"),
            (minimal("[lenience]\nmitigated = 0"), "lenience.mitigated"),
            (minimal("[lenience]\nlighter = 0.5\nmitigated = 0.75"), "lenience.mitigated"),
            (minimal("[lenience]\nlighter = 0.0004"), "lenience.lighter"),
        ];
        for (text, field) in cases {
            let e = Model::parse(&text).expect_err(&text);
            assert_eq!(e.field, field, "{text}\n=> {e}");
        }
        assert!(Model::parse(&minimal("")).is_ok());
        // Only `lighter`: a mitigated penalty weighs as much.
        let m = Model::parse(&minimal("[lenience]\nlighter = 0.8")).unwrap();
        assert_eq!((m.lenience.lighter, m.lenience.mitigated), (800, 800));
        // A model registered before cr-2026.3 (FALSE_COMMITMENT under "social") parses.
        let legacy = "[[indicator]]\ncode = \"FALSE_COMMITMENT\"\ndimension = \"social\"\npoints = 15\nwindow_days = 1095";
        assert!(Model::parse(&minimal(legacy)).is_ok());
        let wrong = "[[indicator]]\ncode = \"PENALTY_MINOR\"\ndimension = \"social\"\npoints = 1\nwindow_days = 9";
        assert_eq!(
            Model::parse(&minimal(wrong)).unwrap_err().field,
            "indicator[0].dimension"
        );
    }
}
