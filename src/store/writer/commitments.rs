//! Credit commitments (信用承诺): recording one, and its verification (守信核查). Both
//! change the enterprise's dossier, so a broken commitment re-scores it (the
//! FALSE_COMMITMENT indicator) in the batch of the finding.

use super::*;
use crate::domain::commitment::{Commitment, Verification};

/// Records a credit commitment of an enterprise.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordCommitment(#[serde(with = "wire::keyed")] pub Commitment);

impl Operation for RecordCommitment {
    /// The commitment as stored, and whether it was new.
    type Output = (Commitment, bool);
    /// An unverified commitment does not weigh: nothing to re-score.
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        format!("RecordCommitment {}", self.0.record_id())
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<(Commitment, bool)> {
        let (ctx, p) = tx.ctx();
        ctx.record_commitment(p, self.0)
    }
    fn subject(out: &(Commitment, bool)) -> Option<Uscc> {
        Some(out.0.uscc)
    }
    logged!(RecordCommitment);
}

/// Records the verification of a commitment: kept, or broken (a false commitment).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyCommitment {
    pub uscc: Uscc,
    pub commitment_id: String,
    pub verification: Verification,
}

impl Operation for VerifyCommitment {
    type Output = Commitment;
    fn cause(&self) -> String {
        format!(
            "VerifyCommitment {} {}",
            crate::domain::scoring::RecordRef::Commitment(&self.commitment_id).id(),
            self.verification.verdict.name()
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Commitment> {
        let (ctx, p) = tx.ctx();
        ctx.verify_commitment(p, self)
    }
    fn subject(out: &Commitment) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(VerifyCommitment);
}

impl Ctx<'_> {
    /// Stores a new commitment; the same one again is unchanged, a different one under
    /// the same id ALREADY_EXISTS.
    pub(super) fn record_commitment(
        &self,
        p: &mut Pending,
        x: Commitment,
    ) -> Result<Applied<Commitment>> {
        x.validate(self.today)?;
        let after = format!(
            "{} {} made {} due {}",
            x.record_id(),
            x.kind.name(),
            x.made_on,
            x.due_on
        );
        self.store_commitment(p, x, after)
    }

    /// Stores an imported commitment, with its verification if history has one
    /// (checked as [`Commitment::verify`] checks a new one).
    pub(super) fn import_commitment(
        &self,
        p: &mut Pending,
        mut x: Commitment,
    ) -> Result<Applied<Commitment>> {
        let Some(mut v) = x.verification.take() else {
            return self.record_commitment(p, x);
        };
        x.validate(self.today)?;
        v.recorded_at_ms = self.now_ms;
        x.verify(v, self.today)
            .map_err(|e| e.within("commitment.verification"))?;
        let after = format!("{} imported", x.record_id());
        self.store_commitment(p, x, after)
    }

    /// Stores `x` unless its id is taken: by the same commitment (what happened to it
    /// since — a verification, a repair — is not part of it as made: unchanged; a
    /// verification the stored one lacks is recorded), or by another (ALREADY_EXISTS).
    fn store_commitment(
        &self,
        p: &mut Pending,
        mut x: Commitment,
        after: String,
    ) -> Result<Applied<Commitment>> {
        let d = p.registered(&x.uscc, "commitment.uscc")?;
        if let Some(old) = d
            .commitments
            .iter()
            .find(|c| c.commitment_id == x.commitment_id)
            .cloned()
        {
            x.recorded_at_ms = old.recorded_at_ms;
            x.repaired_on = old.repaired_on;
            match (x.verification.as_mut(), old.verification.as_ref()) {
                (None, v) => x.verification = v.cloned(),
                (Some(a), Some(b)) => a.recorded_at_ms = b.recorded_at_ms,
                (Some(_), None) => {
                    // History that since has its verification: the same commitment,
                    // verified now, as VerifyCommitment would.
                    let verification = x.verification.take();
                    if let (true, Some(verification)) = (old == x, verification) {
                        let c = self.verify_commitment(
                            p,
                            VerifyCommitment {
                                uscc: x.uscc,
                                commitment_id: x.commitment_id,
                                verification,
                            },
                        )?;
                        return Ok((c, true));
                    }
                    return Err(Error::AlreadyExists(format!(
                        "commitment: {} of {}",
                        x.commitment_id, x.uscc
                    )));
                }
            }
            if old == x {
                return Ok((old.clone(), false));
            }
            return Err(Error::AlreadyExists(format!(
                "commitment: {} of {}",
                x.commitment_id, x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.change = Some(Change {
            after,
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "commitment.uscc")?;
        let at = d
            .commitments
            .partition_point(|c| c.commitment_id < x.commitment_id);
        d.commitments.insert(at, x.clone());
        Ok((x, true))
    }

    /// Records a verification: the same finding again changes nothing; a different one,
    /// or one dated before the commitment, is refused naming the field.
    pub(super) fn verify_commitment(
        &self,
        p: &mut Pending,
        op: VerifyCommitment,
    ) -> Result<Commitment> {
        let VerifyCommitment {
            uscc,
            commitment_id,
            mut verification,
        } = op;
        verification.recorded_at_ms = self.now_ms;
        let today = self.today;
        let d = p.registered(&uscc, "uscc")?;
        let c = d
            .commitments
            .iter()
            .find(|c| c.commitment_id == commitment_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "commitment_id: commitment {commitment_id} of {uscc}"
                ))
            })?;
        let mut changed = c.clone();
        if !changed.verify(verification, today)? {
            return Ok(c.clone());
        }
        let v = changed
            .verification
            .as_ref()
            .ok_or_else(|| Error::Corrupt("verification lost".into()))?;
        p.change = Some(Change {
            before: format!("{} unverified", changed.record_id()),
            after: format!(
                "{} {} on {}",
                changed.record_id(),
                v.verdict.name(),
                v.verified_on
            ),
            reason: v.note.clone(),
            ..Change::default()
        });
        let d = p.registered_mut(&uscc, "uscc")?;
        if let Some(slot) = d
            .commitments
            .iter_mut()
            .find(|c| c.commitment_id == commitment_id)
        {
            *slot = changed.clone();
        }
        Ok(changed)
    }
}
