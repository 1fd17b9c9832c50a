//! Credit commitments (信用承诺) and their verification (守信核查): an enterprise promises
//! something by a day — to supply what a licence granted on notification-commitment
//! (告知承诺) still needs, to comply, or (in a repair) to keep to the law — and an
//! authority later finds the promise kept or broken. A broken commitment is a false
//! commitment (失信承诺): it scores under supervision information
//! ([`super::Indicator::FalseCommitment`]), triggers measures, and can itself be
//! repaired through the repair workflow after its minimum period (不实承诺信息信用修复,
//! `repair.false_commitment_min_months`), which ends its effect from the approval on.

use serde::{Deserialize, Serialize};

use super::{records::check_text, Date, DomainError, Uscc};

/// What was promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommitmentKind {
    /// A licence granted on the applicant's commitment to meet its conditions
    /// (告知承诺制).
    LicensingNotification,
    /// A commitment to comply (合规承诺), e.g. after a warning or in a spot check.
    Compliance,
    /// The integrity commitment of a credit-repair application (信用修复承诺).
    Repair,
}

impl CommitmentKind {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            CommitmentKind::LicensingNotification => "LICENSING_NOTIFICATION",
            CommitmentKind::Compliance => "COMPLIANCE",
            CommitmentKind::Repair => "REPAIR",
        }
    }
}

/// The finding of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The commitment was kept (守诺).
    Kept,
    /// It was broken: a false commitment (失诺).
    Broken,
}

impl Verdict {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Kept => "KEPT",
            Verdict::Broken => "BROKEN",
        }
    }
}

/// A verification of a commitment (守信核查).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Kept or broken.
    pub verdict: Verdict,
    /// The day it was verified.
    pub verified_on: Date,
    /// Who verified it (the principal).
    pub by: String,
    /// What was found.
    pub note: String,
    /// When recorded (Unix milliseconds).
    pub recorded_at_ms: i64,
}

/// A credit commitment of one enterprise. Its id is unique within the enterprise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Id within the enterprise (e.g. the licensing file number).
    pub commitment_id: String,
    /// The committing enterprise; kept in the store key.
    #[serde(skip, default = "Uscc::placeholder")]
    pub uscc: Uscc,
    /// What was promised.
    pub kind: CommitmentKind,
    /// The day it was made.
    pub made_on: Date,
    /// The day by which it must be kept (and may be verified).
    pub due_on: Date,
    /// What was promised, in words.
    pub content: String,
    /// The authority it was made to.
    pub authority: String,
    /// The verification, once made.
    pub verification: Option<Verification>,
    /// A broken commitment whose repair was approved: no longer weighs from this day.
    pub repaired_on: Option<Date>,
    /// When stored (Unix milliseconds).
    pub recorded_at_ms: i64,
}

impl Commitment {
    /// Checks the fields of a new commitment.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        check_text("commitment.commitment_id", &self.commitment_id, true, 64)?;
        check_text("commitment.content", &self.content, true, 500)?;
        check_text("commitment.authority", &self.authority, true, 100)?;
        super::records::check_not_future("commitment.made_on", self.made_on, today)?;
        if self.due_on < self.made_on {
            return Err(DomainError::invalid(
                "commitment.due_on",
                format!("{} is before made_on {}", self.due_on, self.made_on),
            ));
        }
        if self.verification.is_some() || self.repaired_on.is_some() {
            return Err(DomainError::invalid(
                "commitment.verification",
                "a new commitment is unverified (VerifyCommitment records the finding)",
            ));
        }
        Ok(())
    }

    /// Records a verification made on `v.verified_on` (today at the latest). The same
    /// finding again changes nothing (`Ok(false)`); a different one is refused, as is a
    /// verification before the commitment was made.
    pub fn verify(&mut self, v: Verification, today: Date) -> Result<bool, DomainError> {
        super::records::check_not_future("verified_on", v.verified_on, today)?;
        check_text("note", &v.note, v.verdict == Verdict::Broken, 500)?;
        if v.verified_on < self.made_on {
            return Err(DomainError::invalid(
                "verified_on",
                format!(
                    "{} is before the commitment was made ({})",
                    v.verified_on, self.made_on
                ),
            ));
        }
        if let Some(old) = &self.verification {
            if old.verdict == v.verdict {
                return Ok(false);
            }
            return Err(DomainError::invalid(
                "verdict",
                format!(
                    "commitment {} was verified {} on {}; a second verification with a different result is refused (file an objection to correct it)",
                    self.commitment_id,
                    old.verdict.name(),
                    old.verified_on
                ),
            ));
        }
        self.verification = Some(v);
        Ok(true)
    }

    /// The day it was found broken, if it was.
    pub fn broken_on(&self) -> Option<Date> {
        self.verification
            .as_ref()
            .filter(|v| v.verdict == Verdict::Broken)
            .map(|v| v.verified_on)
    }

    /// Whether it stands as a false commitment on `day`: found broken by then and not
    /// repaired by then.
    pub fn is_false_on(&self, day: Date) -> bool {
        self.broken_on().is_some_and(|b| b <= day) && self.repaired_on.is_none_or(|r| day < r)
    }

    /// Whether it awaits verification on `day`: unverified and due by then.
    pub fn is_due_on(&self, day: Date) -> bool {
        self.verification.is_none() && self.due_on <= day
    }

    /// The commitment as it stood on `day`: a verification or a repair dated later is
    /// not yet known (for a credit report as of a past day).
    pub fn as_known_on(&self, day: Date) -> Commitment {
        let mut c = self.clone();
        if c.verification.as_ref().is_some_and(|v| v.verified_on > day) {
            c.verification = None;
        }
        if c.repaired_on.is_some_and(|r| r > day) {
            c.repaired_on = None;
        }
        c
    }

    /// Record id: `commitment/<id>` ([`super::scoring::RecordRef::id`]).
    pub fn record_id(&self) -> String {
        super::scoring::RecordRef::Commitment(&self.commitment_id).id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::day;

    fn commitment() -> Commitment {
        Commitment {
            commitment_id: "沪市监许〔2026〕12号".into(),
            uscc: Uscc::placeholder(),
            kind: CommitmentKind::LicensingNotification,
            made_on: day("2026-03-01"),
            due_on: day("2026-06-01"),
            content: "在三个月内补交食品经营场所平面图".into(),
            authority: "浦东新区市场监督管理局".into(),
            verification: None,
            repaired_on: None,
            recorded_at_ms: 0,
        }
    }

    fn found(verdict: Verdict, on: &str) -> Verification {
        Verification {
            verdict,
            verified_on: day(on),
            by: "inspector".into(),
            note: "场所平面图未补交".into(),
            recorded_at_ms: 0,
        }
    }

    #[test]
    fn a_new_commitment_is_checked_naming_the_field() {
        let today = day("2026-07-01");
        assert!(commitment().validate(today).is_ok());
        let bad = |c: Commitment| c.validate(today).unwrap_err().field;
        assert_eq!(
            bad(Commitment {
                due_on: day("2026-02-01"),
                ..commitment()
            }),
            "commitment.due_on"
        );
        assert_eq!(
            bad(Commitment {
                made_on: day("2026-08-01"),
                due_on: day("2026-09-01"),
                ..commitment()
            }),
            "commitment.made_on"
        );
        assert_eq!(
            bad(Commitment {
                content: " ".into(),
                ..commitment()
            }),
            "commitment.content"
        );
        assert_eq!(
            bad(Commitment {
                verification: Some(found(Verdict::Kept, "2026-06-01")),
                ..commitment()
            }),
            "commitment.verification"
        );
    }

    #[test]
    fn a_verification_is_dated_after_the_commitment_and_never_reversed() {
        let today = day("2026-07-01");
        let mut c = commitment();
        let e = c
            .verify(found(Verdict::Broken, "2026-02-28"), today)
            .unwrap_err();
        assert_eq!(e.field, "verified_on");
        assert_eq!(
            c.verify(found(Verdict::Broken, "2026-07-02"), today)
                .unwrap_err()
                .field,
            "verified_on"
        );
        assert!(c
            .verify(found(Verdict::Broken, "2026-06-10"), today)
            .unwrap());
        // The same finding again: unchanged. A different one: refused.
        assert!(!c
            .verify(found(Verdict::Broken, "2026-06-11"), today)
            .unwrap());
        let e = c
            .verify(found(Verdict::Kept, "2026-06-12"), today)
            .unwrap_err();
        assert_eq!(e.field, "verdict");
        assert!(e.reason.contains("BROKEN on 2026-06-10"), "{e}");
        assert_eq!(c.broken_on(), Some(day("2026-06-10")));
    }

    #[test]
    fn a_false_commitment_stands_from_its_finding_until_repaired() {
        let mut c = commitment();
        c.verify(found(Verdict::Broken, "2026-06-10"), day("2026-07-01"))
            .unwrap();
        assert!(!c.is_false_on(day("2026-06-09")));
        assert!(c.is_false_on(day("2026-06-10")));
        c.repaired_on = Some(day("2026-10-01"));
        assert!(c.is_false_on(day("2026-09-30")));
        assert!(!c.is_false_on(day("2026-10-01")));
        let kept = {
            let mut k = commitment();
            k.verify(found(Verdict::Kept, "2026-06-10"), day("2026-07-01"))
                .unwrap();
            k
        };
        assert!(!kept.is_false_on(day("2026-07-01")));
        let then = c.as_known_on(day("2026-06-09"));
        assert!(then.verification.is_none() && then.repaired_on.is_none());
        assert!(c.as_known_on(day("2026-10-01")).repaired_on.is_some());
        assert!(commitment().is_due_on(day("2026-06-01")));
        assert!(!commitment().is_due_on(day("2026-05-31")));
        assert!(!kept.is_due_on(day("2026-07-01")));
    }
}
