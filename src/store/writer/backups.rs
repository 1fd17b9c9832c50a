//! The writer's part of an online backup (see `store::backup`): start noting written
//! keys, and the catch-up that reads them back with no write interleaving.

use super::*;

impl Writer {
    pub(super) fn backup_begin(&self) -> Result<Outcome> {
        self.tracker.begin()?;
        Ok(Outcome::BackupStarted)
    }

    /// Stops noting and reads every noted key's value now (or its absence).
    pub(super) fn backup_catch_up(&self) -> Result<Outcome> {
        let keys = self.tracker.finish()?;
        let mut items = Vec::with_capacity(keys.len());
        for k in keys {
            let v = self.tree.get(&k)?.map(|v| v.to_vec());
            items.push((k, v));
        }
        Ok(Outcome::BackupCatchUp(items))
    }

    /// Stops noting after a failed backup.
    pub(super) fn backup_abort(&self) -> Result<Outcome> {
        self.tracker.finish()?;
        Ok(Outcome::BackupStopped)
    }
}
