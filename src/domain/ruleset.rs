//! Rules as dated data (规则版本): every parameter the law or local practice sets —
//! publicity periods and thresholds, list terms, repair and objection deadlines,
//! spot-check exemptions — lives in a versioned [`RuleSet`] with a jurisdiction and an
//! `effective_from` date. A [`RuleBook`] holds every version; an as-of date picks the
//! one in force then, so a decision about 2023 uses the 2023 rules even after a change.
//!
//! The built-in book is Shanghai's (`rules_shanghai.toml`, each value with its source
//! and evidence mark in a comment); `store.rules_files` adds versions. A bad key, a zero
//! period, overlapping effective dates or a ratio outside [0, 1] stops the server naming
//! the key. [`PARAMETERS`] describes every parameter (unit, source, evidence, where it
//! is used) for `GetRules` and docs/RULES.md.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    period,
    rules::{PublicityRules, SweepRules},
    spotcheck::ExemptionRules,
    Date, DomainError, EnterpriseRecords, ListKind, Listing, RegionCode, RiskClass, Uscc,
};

/// Terms of the lists (经营异常名录, 严重违法失信名单).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRules {
    /// Years a serious-illegal listing lasts; it ends by itself after them.
    pub serious_term_years: u32,
    /// Years on the serious-illegal list before an early removal by repair may be asked.
    pub serious_early_removal_after_years: u32,
    /// Days after a listing within which an objection to it may be filed.
    pub listing_objection_days: u32,
}

impl Default for ListRules {
    fn default() -> Self {
        ListRules {
            serious_term_years: 3,
            serious_early_removal_after_years: 1,
            listing_objection_days: 30,
        }
    }
}

/// Credit-repair and objection deadlines (信用修复, 异议).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairRules {
    /// Working days to accept or not a repair application.
    pub accept_within_wd: u32,
    /// Working days to decide an accepted abnormal-list removal.
    pub decide_abnormal_listing_wd: u32,
    /// Working days to decide any other accepted case (penalty publicity, serious list).
    pub decide_other_wd: u32,
    /// Years a revoked approval (a false commitment) bars a new application.
    pub false_commitment_bar_years: u32,
    /// Months a commitment found broken (a false commitment record) must stand before
    /// its repair may be asked (不实承诺信息信用修复). Defaults to 3 in a rules file that
    /// predates it.
    #[serde(default = "default_false_commitment_min_months")]
    pub false_commitment_min_months: u32,
    /// Working days to decide an objection to a credit record.
    pub objection_decide_wd: u32,
}

fn default_false_commitment_min_months() -> u32 {
    3
}

impl Default for RepairRules {
    fn default() -> Self {
        RepairRules {
            accept_within_wd: 2,
            decide_abnormal_listing_wd: 3,
            decide_other_wd: 15,
            false_commitment_bar_years: 3,
            false_commitment_min_months: 3,
            objection_decide_wd: 5,
        }
    }
}

/// Per-class sampling ratios of spot checks (抽查比例): the range a plan's ratio must
/// fall in, and the default when a plan gives none. Class-based supervision: the ratio
/// rises with risk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingPolicy {
    pub a_min: f64,
    pub a_max: f64,
    pub a_default: f64,
    pub b_min: f64,
    pub b_max: f64,
    pub b_default: f64,
    pub c_min: f64,
    pub c_max: f64,
    pub c_default: f64,
    pub d_min: f64,
    pub d_max: f64,
    pub d_default: f64,
}

impl Default for SamplingPolicy {
    fn default() -> Self {
        SamplingPolicy {
            a_min: 0.0,
            a_max: 0.05,
            a_default: 0.03,
            b_min: 0.05,
            b_max: 0.20,
            b_default: 0.10,
            c_min: 0.21,
            c_max: 0.60,
            c_default: 0.30,
            d_min: 0.61,
            d_max: 1.0,
            d_default: 0.80,
        }
    }
}

impl SamplingPolicy {
    /// (min, max, default) of `class`.
    pub fn of(&self, class: RiskClass) -> (f64, f64, f64) {
        match class {
            RiskClass::A => (self.a_min, self.a_max, self.a_default),
            RiskClass::B => (self.b_min, self.b_max, self.b_default),
            RiskClass::C => (self.c_min, self.c_max, self.c_default),
            RiskClass::D => (self.d_min, self.d_max, self.d_default),
        }
    }

    fn validate(&self) -> Result<(), DomainError> {
        let mut last_default = 0.0;
        for class in RiskClass::ALL {
            let l = class.letter().to_lowercase();
            let (min, max, default) = self.of(class);
            for (k, v) in [("min", min), ("max", max), ("default", default)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(DomainError::invalid(
                        format!("sampling.{l}_{k}"),
                        format!("{v} is outside [0, 1]"),
                    ));
                }
            }
            if !(min <= default && default <= max) {
                return Err(DomainError::invalid(
                    format!("sampling.{l}_default"),
                    format!("{default} is outside [{l}_min {min}, {l}_max {max}]"),
                ));
            }
            if default < last_default {
                return Err(DomainError::invalid(
                    format!("sampling.{l}_default"),
                    "defaults must not fall as risk rises (A ≤ B ≤ C ≤ D)",
                ));
            }
            last_default = default;
        }
        Ok(())
    }
}

/// One dated version of the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    /// Unique name of the version, e.g. `shanghai-2022-07-01`.
    pub version: String,
    /// Region code of the jurisdiction (`310000`: Shanghai).
    pub jurisdiction: RegionCode,
    /// First day the version applies.
    pub effective_from: Date,
    pub publicity: PublicityRules,
    pub lists: ListRules,
    pub sweep: SweepRules,
    pub repair: RepairRules,
    pub sampling: SamplingPolicy,
    pub exemptions: ExemptionRules,
}

/// The file form of a rule set (every section and key required).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    version: String,
    jurisdiction: String,
    effective_from: String,
    publicity: PublicityRules,
    lists: ListRules,
    sweep: SweepRules,
    repair: RepairRules,
    sampling: SamplingPolicy,
    exemptions: ExemptionRules,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    ruleset: Vec<RawSet>,
}

/// What one parameter is: its unit, its source, its evidence mark, where it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Dotted key in the rules file (`publicity.short_months`).
    pub key: &'static str,
    pub unit: &'static str,
    pub source: &'static str,
    /// DOMAIN.md evidence mark: V, R, U (or a combination).
    pub evidence: &'static str,
    /// Where the service applies it.
    pub used_in: &'static str,
}

/// Every parameter of a rule set. A test checks that this list and [`RuleSet::values`]
/// name the same keys, so no parameter goes without a source.
pub const PARAMETERS: &[ParamInfo] = &[
    ParamInfo {
        key: "publicity.lower_fine_organisation_fen",
        unit: "fen (inclusive)",
        source: "Shanghai lower-amount fine thresholds 2022-07-01..2027-06-30 (DOMAIN §5)",
        evidence: "R",
        used_in: "penalty publicity window (GetCreditReport, ListPenalties, repair eligibility)",
    },
    ParamInfo {
        key: "publicity.lower_fine_natural_person_fen",
        unit: "fen (inclusive)",
        source: "Shanghai lower-amount fine thresholds 2022-07-01..2027-06-30 (DOMAIN §5)",
        evidence: "R",
        used_in: "penalty publicity window of individual businesses",
    },
    ParamInfo {
        key: "publicity.short_months",
        unit: "months",
        source: "SAMR Order 45 Art. 14: public criticism or lower-amount fine (DOMAIN §5)",
        evidence: "V",
        used_in: "penalty publicity window",
    },
    ParamInfo {
        key: "publicity.long_years",
        unit: "years",
        source: "SAMR Order 45 Art. 14: other published penalties (DOMAIN §5)",
        evidence: "V",
        used_in: "penalty publicity window",
    },
    ParamInfo {
        key: "publicity.early_end_after_months",
        unit: "months",
        source: "SAMR Order 45 Art. 16: early end after at least 6 months (DOMAIN §5)",
        evidence: "V/R",
        used_in: "repair eligibility (early end of publicity)",
    },
    ParamInfo {
        key: "publicity.early_end_after_months_sensitive",
        unit: "months",
        source: "SAMR Order 45 Art. 16: at least 1 year for food, drugs, special equipment (DOMAIN §5)",
        evidence: "V/R",
        used_in: "repair eligibility (early end of publicity)",
    },
    ParamInfo {
        key: "lists.serious_term_years",
        unit: "years",
        source: "SAMR Order 44 (严重违法失信名单管理办法): listing ends after 3 years (DOMAIN §5; older text 5)",
        evidence: "U",
        used_in: "whether a serious listing is open (classification hard rule, pools, repair, sweep)",
    },
    ParamInfo {
        key: "lists.serious_early_removal_after_years",
        unit: "years",
        source: "SAMR credit-repair measures (2021): early serious-list removal after 1 year (DOMAIN §5)",
        evidence: "R",
        used_in: "repair eligibility (serious list)",
    },
    ParamInfo {
        key: "lists.listing_objection_days",
        unit: "days",
        source: "objection to a listing within 30 days of it (DOMAIN §4)",
        evidence: "R",
        used_in: "FileObjection on a listing (FAILED_PRECONDITION after the period)",
    },
    ParamInfo {
        key: "sweep.years_to_serious",
        unit: "years",
        source: "企业信息公示暂行条例 Art. 17: 3 years on the abnormal list without cure (DOMAIN §4)",
        evidence: "V",
        used_in: "SweepAnnualReports (move to the serious list)",
    },
    ParamInfo {
        key: "repair.accept_within_wd",
        unit: "working days",
        source: "SAMR credit-repair measures (2021) (DOMAIN §6)",
        evidence: "U",
        used_in: "SubmitRepair (accept_due)",
    },
    ParamInfo {
        key: "repair.decide_abnormal_listing_wd",
        unit: "working days",
        source: "SAMR credit-repair measures (2021) (DOMAIN §6)",
        evidence: "U",
        used_in: "AcceptRepair (decide_due, abnormal-list removal)",
    },
    ParamInfo {
        key: "repair.decide_other_wd",
        unit: "working days",
        source: "SAMR credit-repair measures (2021) (DOMAIN §6)",
        evidence: "U",
        used_in: "AcceptRepair (decide_due, penalty publicity and serious list)",
    },
    ParamInfo {
        key: "repair.false_commitment_bar_years",
        unit: "years",
        source: "SAMR credit-repair measures (2021): false commitment bars re-application (DOMAIN §6)",
        evidence: "U",
        used_in: "repair eligibility after a revoked approval",
    },
    ParamInfo {
        key: "repair.false_commitment_min_months",
        unit: "months",
        source: "不实承诺信息信用修复 (Shanghai credit-commitment loop, issue 18): a false-commitment record is repairable after a minimum period; the period is not in DOMAIN.md",
        evidence: "U",
        used_in: "SubmitRepair of a false commitment (target commitment_id)",
    },
    ParamInfo {
        key: "repair.objection_decide_wd",
        unit: "working days",
        source: "Shanghai social-credit regulation (2017 text): objections decided in 5 wd (DOMAIN §6)",
        evidence: "V",
        used_in: "FileObjection (decide_due)",
    },
    ParamInfo {
        key: "sampling.a_min",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class A ≤ 5 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-A ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.a_max",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class A ≤ 5 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-A ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.a_default",
        unit: "share of the stratum's population, 0 to 1",
        source: "our default inside the range (DOMAIN §3)",
        evidence: "U",
        used_in: "PlanDraw: the ratio of a class-A stratum given without ratio or count",
    },
    ParamInfo {
        key: "sampling.b_min",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class B 5–20 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-B ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.b_max",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class B 5–20 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-B ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.b_default",
        unit: "share of the stratum's population, 0 to 1",
        source: "our default inside the range (DOMAIN §3)",
        evidence: "U",
        used_in: "PlanDraw: the ratio of a class-B stratum given without ratio or count",
    },
    ParamInfo {
        key: "sampling.c_min",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class C 21–60 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-C ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.c_max",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class C 21–60 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-C ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.c_default",
        unit: "share of the stratum's population, 0 to 1",
        source: "our default inside the range (DOMAIN §3)",
        evidence: "U",
        used_in: "PlanDraw: the ratio of a class-C stratum given without ratio or count",
    },
    ParamInfo {
        key: "sampling.d_min",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class D 61–100 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-D ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.d_max",
        unit: "share of the stratum's population, 0 to 1",
        source: "DOMAIN §3 example, one city 2024: class D 61–100 %; class-based supervision (国市监信发〔2022〕6号)",
        evidence: "R",
        used_in: "PlanDraw: a class-D ratio outside the range needs an override reason",
    },
    ParamInfo {
        key: "sampling.d_default",
        unit: "share of the stratum's population, 0 to 1",
        source: "our default inside the range (DOMAIN §3)",
        evidence: "U",
        used_in: "PlanDraw: the ratio of a class-D stratum given without ratio or count",
    },
    ParamInfo {
        key: "exemptions.suspended",
        unit: "switch",
        source: "Shanghai 2023 report: suspended (歇业) firms exempt (DOMAIN §3)",
        evidence: "V",
        used_in: "spot-check candidate pools and draws",
    },
    ParamInfo {
        key: "exemptions.clean_two_years",
        unit: "switch",
        source: "Shanghai 2023 report: no problem found in two years exempt (DOMAIN §3)",
        evidence: "V",
        used_in: "spot-check candidate pools and draws",
    },
    ParamInfo {
        key: "exemptions.never_exempt_classes",
        unit: "classes",
        source: "class-based supervision, 国市监信发〔2022〕6号: D strict, much higher ratios (DOMAIN §2–§3)",
        evidence: "U",
        used_in: "spot-check candidate pools and draws (checked before the exemptions)",
    },
    ParamInfo {
        key: "exemptions.never_exempt_listed",
        unit: "switch",
        source: "class-based supervision: listed firms are high-risk (DOMAIN §2–§3; issue 14 review)",
        evidence: "U",
        used_in: "spot-check candidate pools and draws (checked before the exemptions)",
    },
    ParamInfo {
        key: "exemptions.max_checks_per_year",
        unit: "checks per calendar year (0 = off)",
        source: "Shanghai 2024 district plans: at most 2 checks per firm per year (DOMAIN §3)",
        evidence: "R",
        used_in: "spot-check candidate pools and draws",
    },
];

impl RuleSet {
    /// Every parameter as (dotted key, value), section by section, keys sorted.
    pub fn values(&self) -> Vec<(String, String)> {
        fn flatten(section: &str, v: &impl Serialize, out: &mut Vec<(String, String)>) {
            if let Ok(toml::Value::Table(t)) = toml::Value::try_from(v) {
                for (k, v) in t {
                    let text = match v {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.push((format!("{section}.{k}"), text));
                }
            }
        }
        let mut out = Vec::new();
        flatten("publicity", &self.publicity, &mut out);
        flatten("lists", &self.lists, &mut out);
        flatten("sweep", &self.sweep, &mut out);
        flatten("repair", &self.repair, &mut out);
        flatten("sampling", &self.sampling, &mut out);
        flatten("exemptions", &self.exemptions, &mut out);
        out
    }

    /// Checks the values: periods that must be positive are, thresholds are set.
    fn validate(&self) -> Result<(), DomainError> {
        let positive = [
            (
                "publicity.lower_fine_organisation_fen",
                self.publicity.lower_fine_organisation_fen,
            ),
            (
                "publicity.lower_fine_natural_person_fen",
                self.publicity.lower_fine_natural_person_fen,
            ),
            (
                "publicity.short_months",
                u64::from(self.publicity.short_months),
            ),
            ("publicity.long_years", u64::from(self.publicity.long_years)),
            (
                "publicity.early_end_after_months",
                u64::from(self.publicity.early_end_after_months),
            ),
            (
                "publicity.early_end_after_months_sensitive",
                u64::from(self.publicity.early_end_after_months_sensitive),
            ),
            (
                "lists.serious_term_years",
                u64::from(self.lists.serious_term_years),
            ),
            (
                "lists.listing_objection_days",
                u64::from(self.lists.listing_objection_days),
            ),
            (
                "sweep.years_to_serious",
                u64::from(self.sweep.years_to_serious),
            ),
            (
                "repair.accept_within_wd",
                u64::from(self.repair.accept_within_wd),
            ),
            (
                "repair.decide_abnormal_listing_wd",
                u64::from(self.repair.decide_abnormal_listing_wd),
            ),
            (
                "repair.decide_other_wd",
                u64::from(self.repair.decide_other_wd),
            ),
            (
                "repair.objection_decide_wd",
                u64::from(self.repair.objection_decide_wd),
            ),
            (
                "repair.false_commitment_min_months",
                u64::from(self.repair.false_commitment_min_months),
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(DomainError::invalid(key, "must be positive"));
            }
        }
        self.sampling.validate()?;
        if self.publicity.short_months > self.publicity.long_years.saturating_mul(12) {
            return Err(DomainError::invalid(
                "publicity.short_months",
                "longer than publicity.long_years",
            ));
        }
        Ok(())
    }
}

/// Every rules version the service knows, ordered by jurisdiction and date.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleBook {
    sets: Vec<Arc<RuleSet>>,
    /// The jurisdiction the service applies (that of the built-in rules).
    home: RegionCode,
}

/// The built-in rules file.
pub const BUILTIN_RULES: &str = include_str!("rules_shanghai.toml");

impl RuleBook {
    /// The built-in book (Shanghai).
    pub fn builtin() -> RuleBook {
        RuleBook::parse(&[("built-in", BUILTIN_RULES)])
            .unwrap_or_else(|e| unreachable!("the built-in rules are valid: {e}"))
    }

    /// The built-in book plus the versions in `files` ((name, text) pairs).
    pub fn with_files(files: &[(String, String)]) -> Result<RuleBook, DomainError> {
        let mut all: Vec<(&str, &str)> = vec![("built-in", BUILTIN_RULES)];
        all.extend(files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        RuleBook::parse(&all)
    }

    /// Parses and checks rules files ((name, text) pairs); the first set of the first
    /// file names the home jurisdiction. Errors name the file and the key.
    pub fn parse(files: &[(&str, &str)]) -> Result<RuleBook, DomainError> {
        let mut sets: Vec<Arc<RuleSet>> = Vec::new();
        for (name, text) in files {
            let raw: RawFile = toml::from_str(text).map_err(|e| {
                DomainError::invalid(
                    format!("rules file {name}"),
                    e.to_string().replace('\n', " "),
                )
            })?;
            for (i, r) in raw.ruleset.into_iter().enumerate() {
                let at = |key: &str| format!("rules file {name}: ruleset[{i}].{key}");
                if r.version.trim().is_empty() {
                    return Err(DomainError::invalid(at("version"), "empty"));
                }
                let jurisdiction = RegionCode::parse(&at("jurisdiction"), &r.jurisdiction)?;
                let effective_from = Date::parse(&at("effective_from"), &r.effective_from)?;
                let set = RuleSet {
                    version: r.version.trim().to_string(),
                    jurisdiction,
                    effective_from,
                    publicity: r.publicity,
                    lists: r.lists,
                    sweep: r.sweep,
                    repair: r.repair,
                    sampling: r.sampling,
                    exemptions: r.exemptions,
                };
                set.validate()
                    .map_err(|e| DomainError::invalid(at(&e.field), e.reason))?;
                if let Some(o) = sets.iter().find(|o| o.version == set.version) {
                    return Err(DomainError::invalid(
                        at("version"),
                        format!("{:?} is defined twice", o.version),
                    ));
                }
                if let Some(o) = sets.iter().find(|o| {
                    o.jurisdiction == set.jurisdiction && o.effective_from == set.effective_from
                }) {
                    return Err(DomainError::invalid(
                        at("effective_from"),
                        format!(
                            "{} overlaps version {:?} of the same jurisdiction from the same day",
                            set.effective_from, o.version
                        ),
                    ));
                }
                sets.push(Arc::new(set));
            }
        }
        let home = sets
            .first()
            .map(|s| s.jurisdiction)
            .ok_or_else(|| DomainError::invalid("rules", "no rule set"))?;
        sets.sort_by(|a, b| {
            (a.jurisdiction.as_str(), a.effective_from)
                .cmp(&(b.jurisdiction.as_str(), b.effective_from))
        });
        Ok(RuleBook { sets, home })
    }

    /// The home jurisdiction.
    pub fn home(&self) -> RegionCode {
        self.home
    }

    /// The rules the service applies on `as_of` (home jurisdiction).
    pub fn in_force(&self, as_of: Date) -> &RuleSet {
        self.lookup(&self.home, as_of)
            .map(|(s, _)| s)
            .unwrap_or_else(|| unreachable!("the home jurisdiction has a rule set"))
    }

    /// The version of `jurisdiction` in force on `as_of`, and the first day of the next
    /// version (if any). Before the earliest version, the earliest applies. `None` for a
    /// jurisdiction without rules.
    pub fn lookup(
        &self,
        jurisdiction: &RegionCode,
        as_of: Date,
    ) -> Option<(&RuleSet, Option<Date>)> {
        let of: Vec<&Arc<RuleSet>> = self
            .sets
            .iter()
            .filter(|s| s.jurisdiction == *jurisdiction)
            .collect();
        let i = of
            .iter()
            .rposition(|s| s.effective_from <= as_of)
            .unwrap_or(0);
        let set = of.get(i)?;
        Some((set, of.get(i + 1).map(|n| n.effective_from)))
    }

    /// Every version, ordered by jurisdiction and date.
    pub fn versions(&self) -> impl Iterator<Item = &RuleSet> {
        self.sets.iter().map(|s| &**s)
    }

    /// Sets the derived term of a listing: a serious-illegal listing ends after
    /// `lists.serious_term_years` of the rules in force on its listing day (counted per
    /// 民法典 Art. 201–202); other lists have no term.
    pub fn apply_terms(&self, l: &mut Listing) {
        l.term_ends_on = (l.kind == ListKind::SeriousIllegal).then(|| {
            let years = self.in_force(l.listed_on).lists.serious_term_years;
            period::last_day(l.listed_on, years * 12)
        });
    }

    /// Puts back what a stored dossier leaves out and the rules derive: its USCC (kept
    /// in the key) and its listings' terms.
    pub fn restore(&self, u: Uscc, d: &mut EnterpriseRecords) {
        d.set_uscc(u);
        d.listings.iter_mut().for_each(|l| self.apply_terms(l));
    }
}

impl RuleBook {
    /// The rules page a legal officer checks line by line (docs/RULES.md): every
    /// version, every parameter with its value, unit, source, evidence mark and use.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# Rules the service applies\n\n\
             Generated from the built-in rules (`src/domain/rules_shanghai.toml`) and\n\
             `src/domain/ruleset.rs` by `cargo run -- docs`;\n\
             a test fails when this page and the code disagree. `GetRules(as_of,\n\
             jurisdiction)` serves the same table for any version in force.\n\n\
             Evidence marks (DOMAIN.md): **V** read in the regulation's own text, **R** reported\n\
             by a secondary or local source, **U** unconfirmed — a configurable default.\n\n\
             ## Versions and dates\n\n\
             Each version has a jurisdiction and a first day (`effective_from`); it applies until\n\
             the next version of the same jurisdiction. A decision uses the version in force on\n\
             its own date: a penalty's publicity window the version of its decision date; a\n\
             repair deadline, an eligibility check, a sweep or a draw's exemptions the version\n\
             of the day they are made. Before the earliest version the earliest applies.\n\n\
             Add a version with `store.rules_files = [\"rules-2027.toml\"]`: a file of\n\
             `[[ruleset]]` tables, each complete (every key below, no other). A bad key, a zero\n\
             period, a repeated version name or two versions of one jurisdiction from the same\n\
             day stop the server at start, naming the file and the key.\n\n\
             ## Counting periods\n\n\
             One convention everywhere (`src/domain/period.rs`), from the Civil Code (民法典)\n\
             Art. 201–202: the day of the event is not counted, and a period of months or years\n\
             ends on the corresponding day of its last month (the month's last day if there is\n\
             none). So 3 months of publicity from 15 January 2025 last until 15 April 2025\n\
             inclusive; a minimum of 6 months from 15 January 2025 has elapsed on 16 July 2025;\n\
             a serious listing of 10 May 2023 with a 3-year term is open on 10 May 2026 and ended\n\
             on 11 May 2026. Working-day deadlines count working days after the event day on the\n\
             PRC holiday calendar; a deadline in a year the calendar does not cover counts\n\
             Monday to Friday and is flagged as an estimate (`due_estimated`).\n\n\
             A penalty's publicity counts from the day it was published (自公示之日起, SAMR\n\
             Order 45), which may be up to 20 working days after the decision. Where the\n\
             publication date (`published_on`) is not recorded, the window counts from the\n\
             decision day, the earliest it can be, and says so (`starts_on_estimated`). The\n\
             rules version is the one in force on the decision day. A penalty weighs in the\n\
             credit-risk score until its publicity ends, or until a repair ended it early\n\
             (docs/MODEL.md).\n\n",
        );
        for set in self.versions() {
            out.push_str(&format!(
                "## {} — jurisdiction {}, from {}\n\n\
                 | parameter | value | unit | source | evidence | used in |\n\
                 |---|---|---|---|---|---|\n",
                set.version,
                set.jurisdiction.as_str(),
                set.effective_from
            ));
            for (key, value) in set.values() {
                let i = PARAMETERS.iter().find(|p| p.key == key);
                out.push_str(&format!(
                    "| `{key}` | {value} | {} | {} | {} | {} |\n",
                    i.map(|i| i.unit).unwrap_or_default(),
                    i.map(|i| i.source).unwrap_or_default(),
                    i.map(|i| i.evidence).unwrap_or_default(),
                    i.map(|i| i.used_in).unwrap_or_default(),
                ));
            }
            out.push('\n');
        }
        out
    }
}

impl Default for RuleBook {
    fn default() -> Self {
        RuleBook::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    #[test]
    fn the_builtin_book_is_shanghai_and_matches_the_defaults() {
        let b = RuleBook::builtin();
        let s = b.in_force(d("2026-01-01"));
        assert_eq!(s.jurisdiction.as_str(), "310000");
        assert_eq!(s.publicity, PublicityRules::default());
        assert_eq!(s.sweep, SweepRules::default());
        assert_eq!(s.repair, RepairRules::default());
        assert_eq!(s.lists, ListRules::default());
        assert_eq!(s.exemptions, ExemptionRules::default());
        assert_eq!(s.sampling, SamplingPolicy::default());
    }

    #[test]
    fn every_parameter_has_a_source_and_every_source_a_parameter() {
        let s = RuleBook::builtin().in_force(d("2026-01-01")).clone();
        let mut keys: Vec<String> = s.values().into_iter().map(|(k, _)| k).collect();
        let mut described: Vec<String> = PARAMETERS.iter().map(|p| p.key.to_string()).collect();
        keys.sort();
        described.sort();
        assert_eq!(keys, described);
        for p in PARAMETERS {
            assert!(!p.source.is_empty() && !p.evidence.is_empty() && !p.used_in.is_empty());
            assert!(
                p.evidence.split('/').all(|m| ["V", "R", "U"].contains(&m)),
                "{}",
                p.key
            );
        }
    }

    /// A later version: the built-in text with another version, date and short period.
    fn later(version: &str, from: &str, short_months: u32) -> String {
        BUILTIN_RULES
            .replace("shanghai-2022-07-01", version)
            .replace(
                "effective_from = \"2022-07-01\"",
                &format!("effective_from = \"{from}\""),
            )
            .replace(
                "short_months = 3",
                &format!("short_months = {short_months}"),
            )
    }

    #[test]
    fn two_versions_coexist_and_the_as_of_date_picks_one() {
        let b = RuleBook::with_files(&[("x".into(), later("sh-2027", "2027-07-01", 6))]).unwrap();
        // Rows: (as of, version, short months, next version from).
        for (as_of, version, months, next) in [
            ("2020-01-01", "shanghai-2022-07-01", 3, Some("2027-07-01")), // before both: earliest
            ("2027-06-30", "shanghai-2022-07-01", 3, Some("2027-07-01")), // last day of the old
            ("2027-07-01", "sh-2027", 6, None),                           // first day of the new
        ] {
            let (s, until) = b.lookup(&b.home(), d(as_of)).unwrap();
            assert_eq!(s.version, version, "{as_of}");
            assert_eq!(s.publicity.short_months, months, "{as_of}");
            assert_eq!(until, next.map(d), "{as_of}");
            assert_eq!(b.in_force(d(as_of)).version, version);
        }
    }

    /// A serious-illegal listing ends after its term (SAMR Order 44, 3 years [U]),
    /// counted per 民法典 Art. 201–202, under the rules in force on its listing day.
    #[test]
    fn serious_listings_end_after_the_term_of_their_listing_day() {
        let five = later("sh-2024", "2024-01-01", 3)
            .replace("serious_term_years = 3", "serious_term_years = 5");
        let b = RuleBook::with_files(&[("x".into(), five)]).unwrap();
        let listing = |on: &str| crate::domain::fixtures::listing(ListKind::SeriousIllegal, d(on));
        // Rows: listed on, last day listed, first day not listed.
        for (on, last, after) in [
            ("2023-05-10", "2026-05-10", "2026-05-11"), // 3 years under the 2022 rules
            ("2023-12-31", "2026-12-31", "2027-01-01"), // last day of the old version
            ("2024-01-01", "2029-01-01", "2029-01-02"), // 5 years under the 2024 rules
        ] {
            let mut l = listing(on);
            b.apply_terms(&mut l);
            assert_eq!(l.term_ends_on, Some(d(last)), "{on}");
            assert!(l.is_open_on(d(last)), "{on}");
            assert!(!l.is_open_on(d(after)), "{on}");
        }
        let mut abnormal = listing("2020-01-01");
        abnormal.kind = ListKind::AbnormalOperations;
        b.apply_terms(&mut abnormal);
        assert_eq!(abnormal.term_ends_on, None, "the abnormal list has no term");
        assert!(abnormal.is_open_on(d("2030-01-01")));
    }

    #[test]
    fn bad_rules_are_refused_naming_the_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                BUILTIN_RULES.replace("short_months = 3", "short_monthz = 3"),
                "short_monthz",
            ),
            (
                BUILTIN_RULES.replace("short_months = 3", "short_months = -3"),
                "short_months",
            ),
            (
                BUILTIN_RULES.replace("long_years = 3", "long_years = 0"),
                "publicity.long_years",
            ),
            (
                BUILTIN_RULES.replace("objection_decide_wd = 5\n", ""),
                "objection_decide_wd",
            ),
            (later("other", "2022-07-01", 3), "effective_from"),
            (later("shanghai-2022-07-01", "2024-01-01", 3), "version"),
            (later("x", "2024-13-01", 3), "effective_from"),
            (
                BUILTIN_RULES.replace("\"310000\"", "\"31\""),
                "jurisdiction",
            ),
            (
                BUILTIN_RULES.replace("d_max = 1.0", "d_max = 1.5"),
                "sampling.d_max",
            ),
            (
                BUILTIN_RULES.replace("c_default = 0.30", "c_default = 0.9"),
                "sampling.c_default",
            ),
            (
                BUILTIN_RULES.replace("b_min = 0.05", "b_min = -0.1"),
                "sampling.b_min",
            ),
        ];
        for (text, key) in cases {
            let e = RuleBook::with_files(&[("bad.toml".into(), text)]).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(key), "{key}: {msg}");
            assert!(msg.contains("bad.toml"), "{msg}");
        }
    }
}
