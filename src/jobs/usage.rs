//! The usage job: writes the match counts metered in memory
//! ([`Store::note_matches`]) every [`FLUSH_EVERY`], and once more when the server stops,
//! so `GetSpotCheckStatistics` reports match volume without a write per match request.

use std::time::Duration;

use crate::store::Store;

/// How often metered match counts are written (a crash loses at most this much of them).
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// Runs until `stopping` turns true, then writes what is left.
pub async fn run(store: Store, mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = async { drop(stopping.wait_for(|s| *s).await) } => true,
        };
        if let Err(e) = store.write_match_counts().await {
            tracing::warn!(error = %e, "writing match counts failed; kept for the next try");
        }
        if stop {
            return;
        }
    }
}
