//! The writer's part of an online backup (see `store::backup`): start noting written
//! keys, and the catch-up that reads them back with no write interleaving. These
//! operations touch no record and are never replicated (each replica backs up itself).

use super::*;

/// Starts noting written keys for a backup (FAILED_PRECONDITION if one runs).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BackupBegin;

impl Operation for BackupBegin {
    type Output = ();
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        String::new()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        tx.w.tracker.begin()
    }
    local_only!();
}

/// Ends a backup's noting: reads the current value of every key written since
/// [`BackupBegin`] (no write interleaves: this is the writer).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BackupCatchUp;

/// A backup's catch-up: each key written since it began, with its value now.
pub type CatchUp = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl Operation for BackupCatchUp {
    type Output = CatchUp;
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        String::new()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<CatchUp> {
        let keys = tx.w.tracker.finish()?;
        let mut items = Vec::with_capacity(keys.len());
        for k in keys {
            let v = tx.w.tree.get(&k)?.map(|v| v.to_vec());
            items.push((k, v));
        }
        Ok(items)
    }
    local_only!();
}

/// Stops noting after a failed backup.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BackupAbort;

impl Operation for BackupAbort {
    type Output = ();
    const RESCORES: bool = false;
    fn cause(&self) -> String {
        String::new()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        tx.w.tracker.finish().map(drop)
    }
    local_only!();
}
