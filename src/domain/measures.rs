//! Reward and punishment measures (守信激励、失信惩戒措施): a catalogue as data, and which
//! measures apply to an enterprise — or to its legal representative — on a day, and why.
//!
//! A measure is triggered by the enterprise's class in the scoring run in force, by a
//! listing, or by a record (a penalty in publicity, a false commitment). It lasts while
//! its trigger holds, or, with `years`, for that many years from the trigger's start
//! (counted as every legal period is, [`super::period`]) — ending earlier if the listing
//! is removed or the record repaired, since an approved repair lifts the consequences.
//! The built-in catalogue (`measures_shanghai.toml`) names a source for every measure;
//! a regulator's own list (Shanghai applies 3 incentive and 39 punishment measures)
//! replaces it with `store.measures_file`.

use serde::Deserialize;

use super::{
    period, ruleset::RuleBook, scoring::RecordRef, Date, DomainError, EnterpriseRecords, ListKind,
    RiskClass,
};

/// Incentive (守信激励) or punishment (失信惩戒).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeasureKind {
    /// A measure for trustworthy enterprises.
    Incentive,
    /// A measure for untrustworthy ones.
    Punishment,
}

/// Whom a measure binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The enterprise itself.
    Enterprise,
    /// Its legal representative (法定代表人) as a person, wherever they serve.
    LegalRepresentative,
}

/// The record kinds a measure can be triggered by, as a catalogue names them.
pub const RECORD_KINDS: [&str; 2] = ["PENALTY_IN_PUBLICITY", "FALSE_COMMITMENT"];

/// What makes a measure apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The enterprise's class in the run in force is one of these.
    Class(Vec<RiskClass>),
    /// An entry on this list (open, or within `years` of its listing and not removed).
    Listing(ListKind),
    /// A penalty in its publicity window (SAMR Order 45).
    PenaltyInPublicity,
    /// A false commitment found (a repair approval revoked for one).
    FalseCommitment,
}

impl Trigger {
    /// Parses `CLASS:C,D`, `LISTING:SERIOUS_ILLEGAL` or `RECORD:PENALTY_IN_PUBLICITY`;
    /// an unknown class, list or record kind is refused naming `field`.
    pub fn parse(field: &str, s: &str) -> Result<Trigger, DomainError> {
        let bad = |why: String| DomainError::invalid(field, why);
        let (what, value) = s.split_once(':').ok_or_else(|| {
            bad(format!(
                "{s:?} is not CLASS:<A-D,…>, LISTING:<list> or RECORD:<record kind>"
            ))
        })?;
        match what {
            "CLASS" => {
                let mut classes = value
                    .split(',')
                    .map(|c| RiskClass::parse(field, c.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                classes.sort();
                classes.dedup();
                Ok(Trigger::Class(classes))
            }
            "LISTING" => [
                ListKind::AbnormalOperations,
                ListKind::SeriousIllegal,
                ListKind::AbnormalStatusMark,
            ]
            .into_iter()
            .find(|k| k.name() == value)
            .map(Trigger::Listing)
            .ok_or_else(|| {
                bad(format!(
                    "{value:?} is not a list (ABNORMAL_OPERATIONS, SERIOUS_ILLEGAL, ABNORMAL_STATUS_MARK)"
                ))
            }),
            "RECORD" => match value {
                "PENALTY_IN_PUBLICITY" => Ok(Trigger::PenaltyInPublicity),
                "FALSE_COMMITMENT" => Ok(Trigger::FalseCommitment),
                _ => Err(bad(format!(
                    "{value:?} is not a record kind ({})",
                    RECORD_KINDS.join(", ")
                ))),
            },
            _ => Err(bad(format!(
                "{what:?} is not a trigger kind (CLASS, LISTING, RECORD)"
            ))),
        }
    }

    /// The catalogue spelling of the trigger.
    pub fn spelled(&self) -> String {
        match self {
            Trigger::Class(cs) => format!(
                "CLASS:{}",
                cs.iter().map(|c| c.letter()).collect::<Vec<_>>().join(",")
            ),
            Trigger::Listing(k) => format!("LISTING:{}", k.name()),
            Trigger::PenaltyInPublicity => "RECORD:PENALTY_IN_PUBLICITY".into(),
            Trigger::FalseCommitment => "RECORD:FALSE_COMMITMENT".into(),
        }
    }
}

/// One measure of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measure {
    /// Stable code (e.g. `P-SI-05`).
    pub code: String,
    /// The measure as its source words it (Chinese).
    pub name: String,
    /// What it means, in English.
    pub description: String,
    /// Incentive or punishment.
    pub kind: MeasureKind,
    /// Whom it binds.
    pub subject: Subject,
    /// Its legal basis: the instrument and article.
    pub basis: String,
    /// The evidence mark of the basis as DOMAIN.md uses them (V, R or U).
    pub evidence: String,
    /// Who applies it: market regulation, or another department (跨部门联合惩戒).
    pub applied_by: String,
    /// Applied by another department under a joint-punishment arrangement.
    pub joint: bool,
    /// What makes it apply.
    pub trigger: Trigger,
    /// Years it lasts from the trigger's start; `None`: while the trigger holds.
    pub years: Option<u32>,
}

/// The catalogue in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    /// Its version (in every answer).
    pub version: String,
    /// The measures, in catalogue order.
    pub measures: Vec<Measure>,
}

/// The built-in catalogue's text.
pub const BUILTIN: &str = include_str!("measures_shanghai.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: String,
    measure: Vec<RawMeasure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    code: String,
    name: String,
    description: String,
    kind: String,
    #[serde(default = "enterprise")]
    subject: String,
    basis: String,
    evidence: String,
    applied_by: String,
    #[serde(default)]
    joint: bool,
    trigger: String,
    years: Option<u32>,
}

fn enterprise() -> String {
    "ENTERPRISE".into()
}

impl Catalogue {
    /// The built-in catalogue.
    pub fn builtin() -> Catalogue {
        Catalogue::parse(BUILTIN)
            .unwrap_or_else(|e| unreachable!("the built-in measures catalogue is valid: {e}"))
    }

    /// Parses and checks a catalogue; the error names the measure and key
    /// (`measure[3].trigger`).
    pub fn parse(text: &str) -> Result<Catalogue, DomainError> {
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| DomainError::invalid("measures", e.to_string()))?;
        super::records::check_text("measures.version", &raw.version, true, 64)?;
        let mut measures: Vec<Measure> = Vec::with_capacity(raw.measure.len());
        for (i, m) in raw.measure.into_iter().enumerate() {
            let f = |key: &str| format!("measure[{i}].{key}");
            super::records::check_text(&f("code"), &m.code, true, 32)?;
            if measures.iter().any(|x| x.code == m.code) {
                return Err(DomainError::invalid(
                    f("code"),
                    format!("{:?} appears twice", m.code),
                ));
            }
            super::records::check_text(&f("name"), &m.name, true, 200)?;
            super::records::check_text(&f("description"), &m.description, true, 500)?;
            super::records::check_text(&f("basis"), &m.basis, true, 300)?;
            super::records::check_text(&f("applied_by"), &m.applied_by, true, 100)?;
            let kind = match m.kind.as_str() {
                "INCENTIVE" => MeasureKind::Incentive,
                "PUNISHMENT" => MeasureKind::Punishment,
                k => {
                    return Err(DomainError::invalid(
                        f("kind"),
                        format!("{k:?} is not INCENTIVE or PUNISHMENT"),
                    ))
                }
            };
            let subject = match m.subject.as_str() {
                "ENTERPRISE" => Subject::Enterprise,
                "LEGAL_REPRESENTATIVE" => Subject::LegalRepresentative,
                s => {
                    return Err(DomainError::invalid(
                        f("subject"),
                        format!("{s:?} is not ENTERPRISE or LEGAL_REPRESENTATIVE"),
                    ))
                }
            };
            if !matches!(m.evidence.as_str(), "V" | "R" | "U") {
                return Err(DomainError::invalid(
                    f("evidence"),
                    format!("{:?} is not V, R or U", m.evidence),
                ));
            }
            let trigger = Trigger::parse(&f("trigger"), &m.trigger)?;
            if m.years == Some(0) || m.years.is_some_and(|y| y > 50) {
                return Err(DomainError::invalid(f("years"), "must be 1..=50"));
            }
            if m.years.is_some() && matches!(trigger, Trigger::Class(_)) {
                return Err(DomainError::invalid(
                    f("years"),
                    "a class-triggered measure lasts while the class holds",
                ));
            }
            if trigger == Trigger::FalseCommitment && m.years.is_none() {
                return Err(DomainError::invalid(
                    f("years"),
                    "is required with RECORD:FALSE_COMMITMENT (a found false commitment has no end of its own)",
                ));
            }
            if subject == Subject::LegalRepresentative && kind == MeasureKind::Incentive {
                return Err(DomainError::invalid(
                    f("subject"),
                    "an incentive binds the enterprise",
                ));
            }
            measures.push(Measure {
                code: m.code,
                name: m.name,
                description: m.description,
                kind,
                subject,
                basis: m.basis,
                evidence: m.evidence,
                applied_by: m.applied_by,
                joint: m.joint,
                trigger,
                years: m.years,
            });
        }
        if measures.is_empty() {
            return Err(DomainError::invalid("measure", "the catalogue is empty"));
        }
        Ok(Catalogue {
            version: raw.version,
            measures,
        })
    }
}

/// A measure that applies, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<'a> {
    /// The measure.
    pub measure: &'a Measure,
    /// The record or class that triggers it, readable.
    pub because: String,
    /// The triggering record's id as credit reports, factors and objections name records
    /// ([`RecordRef::id`]: `listing/…`, `penalty/…`, `commitment/…`, `repair_case/…`),
    /// or empty for a class.
    pub record_id: String,
    /// First day it applies (for a class: the run's as-of date).
    pub since: Date,
    /// Last day it applies, when known (`None`: while the trigger holds).
    pub until: Option<Date>,
    /// For a measure binding the legal representative: the person it binds (id hash) —
    /// the one named when a listing was made (企业信息公示暂行条例 Art. 17), else the one
    /// named now; `None` if the registry knows neither.
    pub person: Option<[u8; 32]>,
}

/// The class an enterprise has in the run in force: (class, run id, run as-of date).
pub type ClassInForce = (RiskClass, u64, Date);

/// The last day of a `years`-year measure counted from `start` ([`period`]).
fn years_end(start: Date, years: u32) -> Date {
    period::last_day(start, years * 12)
}

/// The measures of `cat` that apply on `as_of` to the enterprise of `d` (of `subject`:
/// to the enterprise itself or to its legal representative), with why; catalogue
/// order, then by record.
pub fn applicable<'a>(
    cat: &'a Catalogue,
    subject: Subject,
    d: &EnterpriseRecords,
    class: Option<ClassInForce>,
    rules: &RuleBook,
    as_of: Date,
) -> Vec<Applied<'a>> {
    let mut out = Vec::new();
    let entity_type = d.enterprise.as_ref().map(|e| e.entity_type);
    let current_rep = d.enterprise.as_ref().and_then(|e| e.legal_rep_hash);
    for m in cat.measures.iter().filter(|m| m.subject == subject) {
        // A measure binding the legal representative binds, unless a listing says whom,
        // the person named now.
        let lr_person = current_rep.filter(|_| m.subject == Subject::LegalRepresentative);
        match &m.trigger {
            Trigger::Class(classes) => {
                if let Some((c, run, on)) = class.filter(|(c, _, _)| classes.contains(c)) {
                    out.push(Applied {
                        measure: m,
                        because: format!("class {} in scoring run {run}", c.letter()),
                        record_id: String::new(),
                        since: on,
                        until: None,
                        person: lr_person,
                    });
                }
            }
            Trigger::Listing(kind) => {
                for l in d.listings.iter().filter(|l| l.kind == *kind) {
                    // Open on the day, or (with years) within its years of the listing
                    // and not removed by then.
                    let (applies, until) = match m.years {
                        None => {
                            let removed = l.removed_on.map(|r| r.add_days(-1));
                            let until = match (l.term_ends_on, removed) {
                                (Some(t), Some(r)) => Some(t.min(r)),
                                (t, r) => t.or(r),
                            };
                            (l.is_open_on(as_of), until)
                        }
                        Some(y) => {
                            let end = years_end(l.listed_on, y);
                            let until = match l.removed_on {
                                Some(r) => end.min(r.add_days(-1)),
                                None => end,
                            };
                            (l.listed_on <= as_of && as_of <= until, Some(until))
                        }
                    };
                    if applies {
                        let person = (m.subject == Subject::LegalRepresentative)
                            .then(|| l.legal_rep_hash.or(current_rep))
                            .flatten();
                        out.push(Applied {
                            measure: m,
                            because: format!("listed on {} ({})", l.listed_on, kind.name()),
                            record_id: RecordRef::Listing(l).id(),
                            since: l.listed_on,
                            until,
                            person,
                        });
                    }
                }
            }
            Trigger::PenaltyInPublicity => {
                let Some(et) = entity_type else { continue };
                for p in &d.penalties {
                    let publicity = rules.in_force(p.decided_on).publicity.publicity(p, et);
                    let Some((start, end)) = publicity.window else {
                        continue;
                    };
                    if !publicity.in_publicity_on(as_of, p.publicity_ended_on) {
                        continue;
                    }
                    let mut until = p
                        .publicity_ended_on
                        .map_or(end, |e| end.min(e.add_days(-1)));
                    if let Some(y) = m.years {
                        until = until.min(years_end(start, y));
                        if as_of > until {
                            continue;
                        }
                    }
                    out.push(Applied {
                        measure: m,
                        because: format!("penalty {} in publicity", p.decision_number),
                        record_id: RecordRef::Penalty(&p.decision_number).id(),
                        since: start,
                        until: Some(until),
                        person: lr_person,
                    });
                }
            }
            Trigger::FalseCommitment => {
                let years = m.years.unwrap_or(1);
                for c in d.commitments.iter().filter(|c| c.is_false_on(as_of)) {
                    let Some(found) = c.broken_on() else { continue };
                    let mut until = years_end(found, years);
                    if let Some(r) = c.repaired_on {
                        until = until.min(r.add_days(-1));
                    }
                    if as_of <= until {
                        out.push(Applied {
                            measure: m,
                            because: format!(
                                "commitment {} found broken on {found}",
                                c.commitment_id
                            ),
                            record_id: c.record_id(),
                            since: found,
                            until: Some(until),
                            person: lr_person,
                        });
                    }
                }
                for (case, found) in &d.false_commitments {
                    let until = years_end(*found, years);
                    if *found <= as_of && as_of <= until {
                        out.push(Applied {
                            measure: m,
                            because: format!(
                                "false commitment found on {found} (repair case {case} revoked)"
                            ),
                            record_id: RecordRef::RepairCase(*case).id(),
                            since: *found,
                            until: Some(until),
                            person: lr_person,
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        fixtures::{self, day as d},
        Listing,
    };

    fn serious(listed: &str, removed: Option<&str>) -> Listing {
        Listing {
            removed_on: removed.map(d),
            ..fixtures::listing(ListKind::SeriousIllegal, d(listed))
        }
    }

    fn dossier(listings: Vec<Listing>) -> EnterpriseRecords {
        EnterpriseRecords {
            listings,
            ..fixtures::dossier("2010-01-01")
        }
    }

    #[test]
    fn the_builtin_catalogue_parses_and_cites_a_source_for_each_measure() {
        let c = Catalogue::builtin();
        assert!(c.measures.len() >= 10);
        assert!(c.measures.iter().any(|m| m.kind == MeasureKind::Incentive));
        for m in &c.measures {
            assert!(!m.basis.trim().is_empty(), "{} has no basis", m.code);
        }
    }

    /// 企业信息公示暂行条例 Art. 17 (DOMAIN.md §4, [V]): the legal representative of a firm
    /// on the serious-illegal list may not head another firm for 3 years.
    #[test]
    fn a_serious_listing_bars_the_legal_representative_for_three_years() {
        let c = Catalogue::builtin();
        let rules = RuleBook::builtin();
        let r = dossier(vec![serious("2024-03-15", None)]);
        let bars = |on: &str| {
            applicable(&c, Subject::LegalRepresentative, &r, None, &rules, d(on))
                .into_iter()
                .map(|a| (a.measure.code.clone(), a.until))
                .collect::<Vec<_>>()
        };
        let on = bars("2025-01-01");
        assert_eq!(on.len(), 1, "{on:?}");
        // Three years from 15 March 2024 end on 15 March 2027 (民法典 Art. 201-202).
        assert_eq!(on[0].1, Some(d("2027-03-15")));
        assert_eq!(bars("2027-03-15").len(), 1);
        assert!(bars("2027-03-16").is_empty());
        assert!(bars("2024-03-14").is_empty());
        // A listing removed (by repair) ends the bar the day before its removal.
        let removed = dossier(vec![serious("2024-03-15", Some("2025-06-01"))]);
        let a = applicable(
            &c,
            Subject::LegalRepresentative,
            &removed,
            None,
            &rules,
            d("2025-05-31"),
        );
        assert_eq!(a[0].until, Some(d("2025-05-31")));
        assert!(applicable(
            &c,
            Subject::LegalRepresentative,
            &removed,
            None,
            &rules,
            d("2025-06-01")
        )
        .is_empty());
    }

    /// Art. 17 bars the person who headed the firm when it was listed, not a successor.
    #[test]
    fn the_bar_binds_the_representative_named_when_listed() {
        let c = Catalogue::builtin();
        let rules = RuleBook::builtin();
        let mut listed = serious("2024-03-15", None);
        listed.legal_rep_hash = Some([7; 32]);
        let mut r = dossier(vec![listed]);
        r.enterprise.as_mut().unwrap().legal_rep_hash = Some([9; 32]);
        let a = applicable(
            &c,
            Subject::LegalRepresentative,
            &r,
            None,
            &rules,
            d("2025-01-01"),
        );
        assert_eq!(a[0].person, Some([7; 32]));
        // A listing recorded before the snapshot existed binds the person named now.
        r.listings[0].legal_rep_hash = None;
        let a = applicable(
            &c,
            Subject::LegalRepresentative,
            &r,
            None,
            &rules,
            d("2025-01-01"),
        );
        assert_eq!(a[0].person, Some([9; 32]));
    }

    #[test]
    fn class_measures_follow_the_class_in_force() {
        let c = Catalogue::builtin();
        let rules = RuleBook::builtin();
        let r = dossier(vec![]);
        let codes = |class: Option<RiskClass>| {
            applicable(
                &c,
                Subject::Enterprise,
                &r,
                class.map(|k| (k, 7, d("2025-01-01"))),
                &rules,
                d("2025-02-01"),
            )
            .into_iter()
            .map(|a| (a.measure.kind, a.because))
            .collect::<Vec<_>>()
        };
        assert!(codes(None).is_empty());
        let a = codes(Some(RiskClass::A));
        assert!(!a.is_empty() && a.iter().all(|(k, _)| *k == MeasureKind::Incentive));
        assert!(a[0].1.contains("class A in scoring run 7"));
        let dd = codes(Some(RiskClass::D));
        assert!(!dd.is_empty() && dd.iter().all(|(k, _)| *k == MeasureKind::Punishment));
        assert!(codes(Some(RiskClass::B)).is_empty());
    }

    #[test]
    fn bad_catalogues_are_refused_naming_the_key() {
        let one = |trigger: &str, extra: &str| {
            format!(
                "version = \"t\"\n[[measure]]\ncode = \"X\"\nname = \"n\"\ndescription = \"d\"\nkind = \"PUNISHMENT\"\nbasis = \"b\"\nevidence = \"R\"\napplied_by = \"market regulation\"\ntrigger = \"{trigger}\"\n{extra}"
            )
        };
        assert!(Catalogue::parse(&one("CLASS:D", "")).is_ok());
        for (trigger, extra, field, says) in [
            ("CLASS:E", "", "measure[0].trigger", "not a risk class"),
            ("LISTING:BLACK", "", "measure[0].trigger", "not a list"),
            (
                "RECORD:GOSSIP",
                "",
                "measure[0].trigger",
                "not a record kind",
            ),
            ("COLOUR:RED", "", "measure[0].trigger", "not a trigger kind"),
            (
                "RECORD:FALSE_COMMITMENT",
                "",
                "measure[0].years",
                "required",
            ),
            (
                "CLASS:D",
                "years = 3",
                "measure[0].years",
                "while the class",
            ),
            (
                "LISTING:SERIOUS_ILLEGAL",
                "years = 0",
                "measure[0].years",
                "1..=50",
            ),
            (
                "CLASS:D",
                "subject = \"CEO\"",
                "measure[0].subject",
                "not ENTERPRISE",
            ),
        ] {
            let e = Catalogue::parse(&one(trigger, extra)).unwrap_err();
            assert_eq!(e.field, field, "{trigger} {extra}: {e}");
            assert!(e.reason.contains(says), "{trigger} {extra}: {e}");
        }
        let twice = format!(
            "{}\n{}",
            one("CLASS:D", ""),
            one("CLASS:C", "").replace("version = \"t\"\n", "")
        );
        assert_eq!(
            Catalogue::parse(&twice).unwrap_err().field,
            "measure[1].code"
        );
        assert!(Catalogue::parse("version = \"t\"\nmeasure = []\n").is_err());
        assert!(Catalogue::parse(&one("CLASS:D", "colour = 1")).is_err());
    }
}
