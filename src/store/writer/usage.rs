//! Usage counters: how many USCCs the match RPCs answered, per month.

use super::*;

/// Adds match counts metered in memory (`Store::note_matches`): (month, streamed,
/// USCCs answered). Not an audit event: it records usage, not a change of records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecordMatches(pub Vec<(u32, bool, u64)>);

impl Operation for RecordMatches {
    type Output = ();
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    const AUDITED: bool = false;
    fn cause(&self) -> String {
        "match volume".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        for (month, stream, n) in self.0 {
            let month = Month(month);
            tx.p.count(
                Counter::Matched { month, stream },
                n.min(i64::MAX as u64) as i64,
            );
        }
        Ok(())
    }
    logged!(RecordMatches);
}
