//! The seal (封存标记): a small file beside sled's files, `<data_dir>/credit-risk.seal`,
//! naming the last audit event (sequence number and digest) of the last group the writer
//! flushed. At open the store's own last event must be at least that one: a store that
//! opens without error but has lost acknowledged writes — sled recovers a damaged or
//! truncated log to a consistent earlier state, or to an empty store, without an error —
//! is refused instead of served (issue 15, probe 5).
//!
//! The seal is written after the flush (write to a temporary file, rename), without an
//! fsync of its own: after a crash it can only lag the durable state, never lead it, so it
//! gives no false alarm. It is as good as the audit trail (every acknowledged change
//! appends an event; `store.audit = false` leaves it at 0, checking nothing).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The seal's file name in the data directory.
pub const FILE: &str = "credit-risk.seal";

/// What the seal records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Sequence number of the last durable audit event.
    pub audit_seq: u64,
    /// Its digest.
    pub audit_digest: String,
}

/// Writes the seal of `dir`.
pub fn write(dir: &Path, seal: &Seal) -> Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let body = serde_json::to_vec(seal).map_err(|e| Error::Unavailable(e.to_string()))?;
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, dir.join(FILE)))
        .map_err(|e| Error::Unavailable(format!("{}: {e}", dir.join(FILE).display())))
}

/// Reads the seal of `dir`: `None` if there is none (a new or restored store) or it is
/// unreadable (a crash while writing it: warned, not trusted).
pub fn read(dir: &Path) -> Option<Seal> {
    let path = dir.join(FILE);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable seal ignored");
            None
        }
    }
}

/// Checks the store's last audit event (`seq`, `digest`) against the seal of `dir`.
pub fn verify(dir: &Path, seq: u64, digest: &str) -> Result<()> {
    let Some(seal) = read(dir) else {
        return Ok(());
    };
    if seal.audit_seq > seq {
        return Err(Error::Corrupt(format!(
            "acknowledged writes are missing: {} records audit event {} as durable, but the \
             store ends at event {seq}",
            FILE, seal.audit_seq
        )));
    }
    if seal.audit_seq == seq && seq > 0 && seal.audit_digest != digest {
        return Err(Error::Corrupt(format!(
            "audit event {seq} differs from the one {FILE} records as durable"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_its_seal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        verify(dir.path(), 0, "g").expect("no seal: nothing to check");
        write(
            dir.path(),
            &Seal {
                audit_seq: 7,
                audit_digest: "d7".into(),
            },
        )
        .unwrap();
        verify(dir.path(), 7, "d7").unwrap();
        verify(dir.path(), 9, "d9").expect("the seal may lag");
        let e = verify(dir.path(), 3, "d3").unwrap_err().to_string();
        assert!(
            e.contains("missing") && e.contains('7') && e.contains('3'),
            "{e}"
        );
        assert!(verify(dir.path(), 7, "other").is_err());
        std::fs::write(dir.path().join(FILE), b"{garbage").unwrap();
        verify(dir.path(), 0, "g").expect("an unreadable seal is not trusted");
    }
}
